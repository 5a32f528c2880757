"""%AddJar, %AddFile and %AddDeps against a real Spark Connect server.

Jars are built at test time with the JDK's javac and jar, compiled against the jars of the pyspark
package: a UserDefinedAggregateFunction (the kind of class Spark 4.0.1's CREATE TEMPORARY FUNCTION
accepts without Hive; a UDF1 class fails there with NO_HANDLER_FOR_UDAF) and a class with a static
method, called through SQL's reflect(). Both prove the uploaded class is loaded by this
connection's Spark session. Files added with %AddFile are read back with SQL from the directory
Spark fetches them into. %AddDeps resolves from a Maven repository directory the test writes
(layout and poms by hand) with the Maven installed on the machine (its plugins may come from Maven
Central on the first run), and with a stand-in `cs` script for the coursier path."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e_support import execute, get_reply, request, send, stream_text
from spark_support import RESULT_MIME, SQL_TIMEOUT, SparkKernel, error_of, outputs, texts

pytestmark = pytest.mark.spark

PYSPARK_JARS = next((Path(__file__).resolve().parents[3] / ".venv" / "lib").glob("python*/site-packages/pyspark/jars"))
MAVEN_TIMEOUT = 600.0

# --- Java sources ---------------------------------------------------------------------------------

SHOUT = """
package kludf;
public class Shout {
    public static String hello(String s) { return "hello " + s + " from %(tag)s"; }
}
"""

COUNT_SHOUT = """
package kludf;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.expressions.MutableAggregationBuffer;
import org.apache.spark.sql.expressions.UserDefinedAggregateFunction;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
public class CountShout extends UserDefinedAggregateFunction {
    public StructType inputSchema() { return new StructType().add("x", DataTypes.LongType); }
    public StructType bufferSchema() { return new StructType().add("n", DataTypes.LongType); }
    public DataType dataType() { return DataTypes.StringType; }
    public boolean deterministic() { return true; }
    public void initialize(MutableAggregationBuffer b) { b.update(0, 0L); }
    public void update(MutableAggregationBuffer b, Row r) {
        if (!r.isNullAt(0)) b.update(0, b.getLong(0) + r.getLong(0));
    }
    public void merge(MutableAggregationBuffer b, Row r) { b.update(0, b.getLong(0) + r.getLong(0)); }
    public Object evaluate(Row b) { return "SUM=" + b.getLong(0) + "!"; }
}
"""

GREETER = """
package kldeps;
public class Greeter {
    public static String greet(String n) { return Helper.prefix() + n; }
}
"""

HELPER = """
package kldeps;
public class Helper {
    public static String prefix() { return "Hello, "; }
}
"""


def build_jar(
    work: Path, name: str, sources: dict[str, str], keep: list[str] | None = None, padding: int = 0
) -> Path:
    """Compiles sources (path -> text) and jars the classes (only those under keep, when given),
    stored uncompressed with `padding` random bytes as an extra resource."""
    src = work / f"src-{name}"
    classes = work / f"classes-{name}"
    for rel, text in sources.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    if padding:
        classes.mkdir(parents=True, exist_ok=True)
        (classes / "padding.bin").write_bytes(os.urandom(padding))
    subprocess.run(
        ["javac", "-nowarn", "--release", "17", "-cp", f"{PYSPARK_JARS}/*", "-d", str(classes)]
        + [str(src / rel) for rel in sources],
        check=True,
        capture_output=True,
    )
    jar = work / f"{name}.jar"
    entries = keep or ["."]
    subprocess.run(["jar", "cf0", str(jar)] + sum((["-C", str(classes), e] for e in entries), []), check=True)
    return jar


@pytest.fixture(scope="module")
def jars(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("jars")
    out = {
        "udf": build_jar(
            work,
            "kludf",
            {"kludf/Shout.java": SHOUT % {"tag": "one"}, "kludf/CountShout.java": COUNT_SHOUT},
        ),
        "udf2": build_jar(work, "kludf2", {"kludf/Shout.java": SHOUT % {"tag": "two"}}),
        # Larger than a 32 KiB chunk: begin_chunk + chunks.
        "big": build_jar(
            work, "klbig", {"klbig/Shout.java": SHOUT.replace("kludf", "klbig") % {"tag": "big"}}, padding=150_000
        ),
        "greeter": build_jar(
            work, "greeter", {"kldeps/Greeter.java": GREETER, "kldeps/Helper.java": HELPER}, ["kldeps/Greeter.class"]
        ),
        "helper": build_jar(work, "helper", {"kldeps/Helper.java": HELPER}),
    }
    return out


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def kernel(tmp_path: Path, spark_url: str) -> Iterator[SparkKernel]:
    """A kernel with a download cache of its own."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("SPARK_REMOTE", None)
    handle = SparkKernel(tmp_path / "kernel", remote=spark_url, env=env)
    try:
        yield handle
    finally:
        handle.close()


class Served:
    """A directory served over http on 127.0.0.1, counting the GET requests per path."""

    def __init__(self, root: Path):
        self.root = root
        self.hits: dict[str, int] = {}
        served = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):  # noqa: N802
                served.hits[self.path] = served.hits.get(self.path, 0) + 1
                if self.path.startswith("/moved/"):
                    self.send_response(302)
                    self.send_header("Location", "/" + self.path[len("/moved/") :])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    root = tmp_path / "www"
    root.mkdir()
    s = Served(root)
    try:
        yield s
    finally:
        s.close()


def run(kc, code: str, timeout: float = SQL_TIMEOUT):
    return execute(kc, code, timeout=timeout)


def ok(kc, code: str, timeout: float = SQL_TIMEOUT) -> str:
    """Runs a cell that must succeed; its stdout."""
    reply, msgs = run(kc, code, timeout)
    content = reply["content"]
    assert content["status"] == "ok", f"{code!r}: {content.get('ename')}: {content.get('evalue')}"
    return stream_text(msgs)


def fails(kc, code: str, timeout: float = SQL_TIMEOUT) -> dict:
    reply, msgs = run(kc, code, timeout)
    return error_of(reply, msgs)


def sql_text(kc, query: str) -> str:
    reply, msgs = run(kc, query)
    assert reply["content"]["status"] == "ok", reply["content"].get("evalue")
    return texts(msgs)[-1]


def sql_values(kc, query: str) -> list[str]:
    """The first column of every row, untruncated (from the data-resource representation)."""
    reply, msgs = run(kc, query)
    assert reply["content"]["status"] == "ok", reply["content"].get("evalue")
    res = outputs(msgs)[-1]["content"]["data"][RESULT_MIME]
    first = res["schema"]["fields"][0]["name"]
    return [row[first] for row in res["data"]]


def added(out: str, name: str, how: str) -> None:
    """out reports name with how ("uploaded" / "already present")."""
    lines = [line for line in out.splitlines() if line.startswith(f"{name}: ")]
    assert len(lines) == 1, f"no single line for {name} in:\n{out}"
    assert lines[0].startswith(f"{name}: {how}, "), lines[0]
    assert " in " in lines[0] and lines[0].split(" in ")[1].split(" s ")[0].replace(".", "").isdigit(), lines[0]


# --- %AddJar --------------------------------------------------------------------------------------


def test_addjar_local_path_makes_the_class_usable_in_sql(kernel, jars):
    kc = kernel.kc
    err = fails(kc, "SELECT reflect('kludf.Shout', 'hello', 'x')")
    assert "kludf.Shout" in err["evalue"], "the class must not be there before %AddJar"

    out = ok(kc, f"%AddJar {jars['udf']}")
    added(out, "jars/kludf.jar", "uploaded")
    size = jars["udf"].stat().st_size
    assert f"{size / 1024:.1f} KiB" in out, out
    assert f"(from {jars['udf']})" in out

    assert "hello x from one" in sql_text(kc, "SELECT reflect('kludf.Shout', 'hello', 'x') AS r")
    # CREATE TEMPORARY FUNCTION with a class of the uploaded jar (no USING JAR needed: the jar is
    # in the session already), and the function running in tasks.
    ok(kc, "CREATE TEMPORARY FUNCTION csum AS 'kludf.CountShout'")
    assert "SUM=45!" in sql_text(kc, "SELECT csum(id) AS s FROM range(10)")

    out = ok(kc, f"%addjar {jars['udf']}")
    added(out, "jars/kludf.jar", "already present")

    # One small (batched) and one large (chunked) jar in one stream, with one already there.
    big = jars["big"]
    assert big.stat().st_size > 4 * 32 * 1024
    out = ok(kc, f"%AddJar {jars['udf2']} '{big}' {jars['udf']}")
    added(out, "jars/kludf2.jar", "uploaded")
    added(out, "jars/klbig.jar", "uploaded")
    added(out, "jars/kludf.jar", "already present")
    assert "hello z from big" in sql_text(kc, "SELECT reflect('klbig.Shout', 'hello', 'z') AS r")


def test_addjar_over_http_caches_and_force_downloads_again(kernel, jars, served):
    kc = kernel.kc
    (served.root / "lib").mkdir()
    shutil.copy(jars["udf"], served.root / "lib" / "kludf.jar")
    url = served.url("lib/kludf.jar")

    out = ok(kc, f"%AddJar {url}")
    added(out, "jars/kludf.jar", "uploaded")
    assert f"(downloaded from {url})" in out
    assert served.hits == {"/lib/kludf.jar": 1}
    assert "hello y from one" in sql_text(kc, "SELECT reflect('kludf.Shout', 'hello', 'y')")

    out = ok(kc, f"%AddJar {url}")
    added(out, "jars/kludf.jar", "already present")
    assert f"(cached download of {url})" in out
    assert served.hits == {"/lib/kludf.jar": 1}, "a cached URL is not fetched again"

    out = ok(kc, f"%AddJar -f {url}")
    added(out, "jars/kludf.jar", "already present")
    assert f"(downloaded from {url})" in out
    assert served.hits == {"/lib/kludf.jar": 2}, "-f downloads again"

    # The server now has other bytes under that name: the cache keeps the old copy until -f, and
    # then Spark cannot replace the registered jar.
    shutil.copy(jars["udf2"], served.root / "lib" / "kludf.jar")
    added(ok(kc, f"%AddJar {url}"), "jars/kludf.jar", "already present")
    err = fails(kc, f"%AddJar {url} -f")
    assert err["ename"] == "ARTIFACT_ALREADY_EXISTS"
    assert "jars/kludf.jar" in err["evalue"] and url in err["evalue"]
    assert served.hits == {"/lib/kludf.jar": 3}

    # Following a redirect, under the name of the URL that was given.
    (served.root / "other.jar").write_bytes(jars["udf2"].read_bytes())
    out = ok(kc, f"%AddJar {served.url('moved/other.jar')}")
    added(out, "jars/other.jar", "uploaded")
    assert served.hits["/moved/other.jar"] == 1 and served.hits["/other.jar"] == 1


def test_addjar_errors_name_what_failed(kernel, served, tmp_path):
    kc = kernel.kc
    url = served.url("missing.jar")
    err = fails(kc, f"%AddJar {url}")
    assert err["ename"] == "ArtifactError"
    assert err["evalue"] == f"HTTP 404 File not found from {url}"

    (served.root / "page.jar").write_text("<html><body>not a jar at all</body></html>\n")
    url = served.url("page.jar")
    err = fails(kc, f"%AddJar {url}")
    assert err["ename"] == "NotAJarError"
    assert err["evalue"].startswith(f"{url} is not a jar: it does not start with a zip local file header")

    text = tmp_path / "notes.jar"
    text.write_text("just text, long enough to be checked for a zip header\n")
    err = fails(kc, f"%AddJar {text}")
    assert err["ename"] == "NotAJarError" and err["evalue"].startswith(f"{text} is not a jar:")

    missing = tmp_path / "nope" / "x.jar"
    err = fails(kc, f"%AddJar {missing}")
    assert (err["ename"], err["evalue"]) == ("ArtifactError", f"no such file: {missing}")

    err = fails(kc, "%AddJar http://")
    assert err["evalue"].startswith("http:// is not a valid URL")
    err = fails(kc, "%AddJar http://nonexistent.invalid/x.jar")
    assert "cannot resolve the host of http://nonexistent.invalid/x.jar" in err["evalue"]
    err = fails(kc, "%AddJar s3://bucket/x.jar")
    assert "the URL scheme 's3' is not supported" in err["evalue"]
    err = fails(kc, "%AddJar")
    assert err["ename"] == "UsageError" and "%AddJar <path" in err["evalue"]
    err = fails(kc, "%AddJar x.jar --magic")
    assert "%load_magic" in err["evalue"]


# --- %AddFile -------------------------------------------------------------------------------------


def test_addfile_reaches_the_tasks(kernel, tmp_path, served):
    kc = kernel.kc
    name = f"kl_{uuid.uuid4().hex[:12]}.txt"
    path = tmp_path / name
    path.write_text("first line\nsecond line\n")
    out = ok(kc, f"%AddFile {path}")
    added(out, f"files/{name}", "uploaded")

    [root] = sql_values(kc, "SELECT reflect('org.apache.spark.SparkFiles', 'getRootDirectory')")
    # Executors fetch a session's files into a directory of that session under SparkFiles' root
    # once one of its tasks runs.
    sql_text(kc, "SELECT sum(id) FROM range(10)")
    assert sql_values(kc, f"SELECT value FROM text.`{root}/*/{name}`") == ["first line", "second line"]

    added(ok(kc, f"%AddFile {path}"), f"files/{name}", "already present")

    (served.root / "data.csv").write_text("a,b\n1,2\n")
    out = ok(kc, f"%AddFile {served.url('data.csv')}")
    added(out, "files/data.csv", "uploaded")
    err = fails(kc, f"%AddFile {served.url('nothing.csv')}")
    assert err["evalue"].startswith("HTTP 404")


# --- %AddDeps -------------------------------------------------------------------------------------


def write_repo(root: Path, jars: dict[str, Path]) -> Path:
    """A Maven repository directory: greeter 1.0 (+ an 'extra' classifier) depending on helper."""
    repo = root / "m2repo"
    base = repo / "com" / "example" / "kl"
    for artifact, deps in (("greeter", ["helper"]), ("helper", [])):
        d = base / artifact / "1.0"
        d.mkdir(parents=True)
        shutil.copy(jars[artifact], d / f"{artifact}-1.0.jar")
        dep_xml = "".join(
            f"<dependency><groupId>com.example.kl</groupId><artifactId>{x}</artifactId>"
            f"<version>1.0</version></dependency>"
            for x in deps
        )
        (d / f"{artifact}-1.0.pom").write_text(
            '<?xml version="1.0"?>\n<project xmlns="http://maven.apache.org/POM/4.0.0">'
            "<modelVersion>4.0.0</modelVersion><groupId>com.example.kl</groupId>"
            f"<artifactId>{artifact}</artifactId><version>1.0</version>"
            f"<dependencies>{dep_xml}</dependencies></project>\n"
        )
    shutil.copy(jars["greeter"], base / "greeter" / "1.0" / "greeter-1.0-extra.jar")
    return repo


@pytest.mark.timeout(int(MAVEN_TIMEOUT) * 3)
def test_adddeps_from_a_local_maven_repository(kernel, jars, tmp_path):
    if not shutil.which("mvn"):
        pytest.skip("mvn is not installed")
    kc = kernel.kc
    repo = write_repo(tmp_path, jars)
    url = f"file://{repo}"

    out = ok(kc, f"%AddDeps com.example.kl greeter 1.0 --repository {url}", MAVEN_TIMEOUT)
    assert "Resolving com.example.kl:greeter:1.0 with mvn (" in out
    assert "Resolved com.example.kl:greeter:1.0 with mvn: 1 jar in " in out
    added(out, "jars/greeter-1.0.jar", "uploaded")
    # Greeter is there but not the Helper it calls: the call fails inside the task.
    err = fails(kc, "SELECT reflect('kldeps.Greeter', 'greet', 'ann')")
    assert "InvocationTargetException" in err["evalue"], err["evalue"]

    out = ok(kc, f"%AddDeps com.example.kl greeter 1.0 --transitive --repository {url}", MAVEN_TIMEOUT)
    assert "Resolved com.example.kl:greeter:1.0 with mvn: 2 jars in " in out
    added(out, "jars/greeter-1.0.jar", "already present")
    added(out, "jars/helper-1.0.jar", "uploaded")
    assert "Hello, ann" in sql_text(kc, "SELECT reflect('kldeps.Greeter', 'greet', 'ann') AS g")

    out = ok(
        kc,
        f"%AddDeps com.example.kl:greeter:1.0 --transitive --exclude com.example.kl:helper -r {url}",
        MAVEN_TIMEOUT,
    )
    assert "with mvn: 1 jar in " in out

    out = ok(kc, f"%AddDeps com.example.kl greeter 1.0 --classifier extra --repository {url}", MAVEN_TIMEOUT)
    added(out, "jars/greeter-1.0-extra.jar", "uploaded")

    err = fails(kc, f"%AddDeps com.example.kl nosuch 2.0 --repository {url}", MAVEN_TIMEOUT)
    assert err["ename"] == "DependencyResolutionError"
    assert err["evalue"].startswith("cannot resolve com.example.kl:nosuch:2.0 with mvn (exit status 1):\n[ERROR]")
    assert "com.example.kl:nosuch:jar:2.0" in err["evalue"]
    assert "[Help 1]" not in err["evalue"], "Maven's generic advice is left out"

    err = fails(kc, "%AddDeps com.example.kl greeter")
    assert err["ename"] == "UsageError"
    err = fails(kc, "%AddDeps com.example.kl greeter 1.0 --exclude nocolon")
    assert "--exclude takes GROUP:ARTIFACT" in err["evalue"]
    err = fails(kc, "%AddDeps com.example.kl greeter 1.0 --repository ftp://x")
    assert "--repository takes an http://, https:// or file:// URL" in err["evalue"]
    err = fails(kc, "%AddDeps com.example.kl gre<eter 1.0")
    assert "is not a Maven coordinate" in err["evalue"]


def kernel_with_path(tmp_path: Path, spark_url: str, path: str) -> SparkKernel:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), PATH=path)
    env.pop("SPARK_REMOTE", None)
    return SparkKernel(tmp_path / "kernel", remote=spark_url, env=env)


def test_adddeps_without_a_resolver_says_what_to_install(tmp_path, spark_url):
    empty = tmp_path / "bin"
    empty.mkdir()
    k = kernel_with_path(tmp_path, spark_url, str(empty))
    try:
        err = fails(k.kc, "%AddDeps org.example lib 1.0")
        assert err["ename"] == "DependencyResolutionError"
        assert "install Maven (apt install maven) or coursier" in err["evalue"]
    finally:
        k.close()


FAKE_CS = """#!/bin/sh
printf '%%s\\n' "$@" > '%(args)s'
if [ "$KL_FAKE_CS_SLEEP" != "" ]; then exec /bin/sleep "$KL_FAKE_CS_SLEEP"; fi
if [ "$KL_FAKE_CS_LINGER" != "" ]; then /bin/sleep "$KL_FAKE_CS_LINGER" & fi
case "$*" in *nosuch*) echo "Error: not found: org.example:nosuch:1.0" >&2; exit 1;; esac
echo '%(jar)s'
"""


def test_adddeps_with_coursier(tmp_path, spark_url, jars):
    """The coursier path with a stand-in `cs` (coursier itself is not installed here): its
    arguments, its jar list on stdout, and its error text."""
    k, bindir = fake_cs_kernel(tmp_path, spark_url, jars["helper"])
    args = tmp_path / "cs-args"
    try:
        out = ok(
            k.kc,
            "%AddDeps org.example lib 1.0 --classifier tests --exclude org.x:y -r file:///repo",
        )
        assert f"with coursier ({bindir / 'cs'})" in out
        assert args.read_text().splitlines() == [
            "fetch",
            "--intransitive",
            "--exclude",
            "org.x:y",
            "-r",
            "file:///repo",
            "org.example:lib:1.0,classifier=tests",
        ]
        added(out, "jars/helper.jar", "uploaded")
        assert f"(from {jars['helper']})" in out
        ok(k.kc, "%AddDeps org.example lib 1.0 --transitive -f")
        assert args.read_text().splitlines() == ["fetch", "--mode", "force", "org.example:lib:1.0"]
        err = fails(k.kc, "%AddDeps org.example nosuch 1.0")
        assert err["evalue"] == (
            "cannot resolve org.example:nosuch:1.0 with coursier (exit status 1):\n"
            "Error: not found: org.example:nosuch:1.0"
        )
    finally:
        k.close()


def fake_cs_kernel(tmp_path: Path, spark_url: str, jar: Path, **env_extra: str) -> tuple[SparkKernel, Path]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    cs = bindir / "cs"
    cs.write_text(FAKE_CS % {"args": tmp_path / "cs-args", "jar": jar})
    cs.chmod(0o755)
    env = dict(os.environ, PATH=str(bindir), XDG_CACHE_HOME=str(tmp_path / "cache"), **env_extra)
    env.pop("SPARK_REMOTE", None)
    return SparkKernel(tmp_path / "kernel", remote=spark_url, env=env), bindir


def resolver_processes(bindir: Path, marker: str) -> list[str]:
    """Processes started by the stand-in resolver (they carry its PATH) running marker."""
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    own = []
    for pid in left:
        try:
            if str(bindir) in Path(f"/proc/{pid}/environ").read_text(errors="replace"):
                own.append(pid)
        except OSError:
            pass
    return own


def test_a_resolver_does_not_block_the_kernel_and_is_interruptible(tmp_path, spark_url, jars):
    k, bindir = fake_cs_kernel(tmp_path, spark_url, jars["helper"], KL_FAKE_CS_SLEEP="120")
    try:
        kc = k.kc
        msg_id = kc.execute("%AddDeps org.example lib 1.0")
        time.sleep(1.0)
        other = k.new_client()
        t0 = time.monotonic()
        reply = request(other, "kernel_info_request", {}, timeout=10)
        assert reply["content"]["status"] == "ok"
        assert time.monotonic() - t0 < 5, "kernel_info waited behind the resolver"
        # Another connection runs a cell meanwhile.
        assert "still here" in ok(other, "%echo still here")
        t0 = time.monotonic()
        send(kc, "interrupt_request", {}, channel="control")
        reply = get_reply(kc, msg_id, "shell", 30)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert "interrupted while resolving org.example:lib:1.0" in reply["content"]["evalue"]
        assert time.monotonic() - t0 < 10
        assert resolver_processes(bindir, "sleep 120") == [], "the resolver's process group was killed"
    finally:
        k.close()


def test_a_process_the_resolver_leaves_behind_does_not_hang_the_cell(tmp_path, spark_url, jars):
    k, bindir = fake_cs_kernel(tmp_path, spark_url, jars["helper"], KL_FAKE_CS_LINGER="300")
    try:
        t0 = time.monotonic()
        out = ok(k.kc, "%AddDeps org.example lib 1.0")
        assert time.monotonic() - t0 < 30
        added(out, "jars/helper.jar", "uploaded")
        assert resolver_processes(bindir, "sleep 300") == []
    finally:
        k.close()
