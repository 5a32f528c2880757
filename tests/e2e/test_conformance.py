"""Jupyter protocol conformance through jupyter_kernel_test, fed with every sample the kernel
contract lets Kindling express."""

from __future__ import annotations

import jupyter_kernel_test as jkt

import e2e_support
from e2e_support import KERNEL_NAME, KernelHandle


class _KernelWithLog:
    """Starts the kernel through KernelHandle, so its stderr is kept and checked for sanitizer
    reports and a clean exit when the class is done."""

    _start_client = True
    _handle: KernelHandle

    @classmethod
    def setUpClass(cls) -> None:
        assert e2e_support.SESSION_DIR is not None
        cls._handle = KernelHandle(
            e2e_support.SESSION_DIR / cls.__name__, own_spec=False, start_client=cls._start_client
        )
        cls.km, cls.kc = cls._handle.km, cls._handle.kc

    @classmethod
    def tearDownClass(cls) -> None:
        cls._handle.close()


class TestKindlingConformance(_KernelWithLog, jkt.KernelTests):
    kernel_name = KERNEL_NAME
    language_name = "sql"
    file_extension = ".sql"

    code_hello_world = "%echo hello, world"
    code_stderr = "%echo --stderr oops"

    completion_samples = [
        {"text": "%lsma", "matches": ["%lsmagic"]},
        {"text": "%%ht", "matches": ["%%html"]},
        {"text": "SELE", "matches": ["SELECT"]},
        {"text": "sele", "matches": ["select"]},
    ]

    complete_code_samples = [
        "SELECT 1;",
        "SELECT 'a;b';",
        "SELECT (1 + 2);",
        "SELECT 1\n\n",  # a blank line ends a statement too
        "%lsmagic",
        "%%html\n<b>bold</b>",
    ]
    incomplete_code_samples = [
        "SELECT 1",
        "SELECT 'abc;",  # the ';' is inside an open string
        "SELECT (1,",
        "SELECT 1 /* open comment;",
        "SELECT 1 -- line comment;",
    ]
    invalid_code_samples = ["SELECT 1);"]

    code_page_something = "%help"
    code_generate_error = "%nosuch"

    code_execute_result = [
        {"code": "%truncation", "result": "Truncation: on"},
        {"code": "%showtypes", "result": "ShowTypes: off"},
        {"code": "%lsmagic"},
    ]

    code_display_data = [
        {"code": "%%html\n<b>bold</b>", "mime": "text/html"},
        {"code": "%%javascript\nconsole.log('kindling');", "mime": "application/javascript"},
        {"code": "%%markdown\n# Title", "mime": "text/markdown"},
    ]

    supported_history_operations = ("tail", "range", "search")
    # Matches "%truncation" and no other input of code_execute_result.
    code_history_pattern = "%trunc*"

    code_inspect_sample = "%lsmagic"
    code_clear_output = "%clear"


class TestKindlingIopubWelcome(_KernelWithLog, jkt.IopubWelcomeTests):
    kernel_name = KERNEL_NAME
    support_iopub_welcome = True
    # The upstream test starts the channels itself and expects the welcome as the first message.
    _start_client = False
