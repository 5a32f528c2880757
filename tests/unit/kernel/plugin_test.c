/* Magic plugins: opening the example plugin and the test fixture's broken variants, and
 * registering their magics. Handlers are exercised end to end (tests/e2e/test_plugins.py). */
#include <criterion/criterion.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel/plugin.h"

#define SOURCE_DIR KL_TEST_DATA "/../.."

static char *example_path(void) {
    char *bin = strdup(KL_BINARY);
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/examples/kindling_example_magic.so", dirname(bin)) > 0);
    free(bin);
    return path;
}

/* Compiles the fixture plugin with flags into a fresh temporary directory; the .so's path. */
static char *build_fixture(const char *flags) {
    char tmpl[] = "/tmp/kl-plugin-test-XXXXXX";
    cr_assert_not_null(mkdtemp(tmpl));
    char *so = NULL, *cmd = NULL;
    cr_assert(asprintf(&so, "%s/fixture.so", tmpl) > 0);
    cr_assert(asprintf(&cmd,
                       "cc -shared -fPIC -w -I%s/include %s -o %s "
                       "%s/tests/data/plugins/fixture_plugin.c",
                       SOURCE_DIR, flags, so, SOURCE_DIR) > 0);
    cr_assert_eq(system(cmd), 0, "could not compile the fixture: %s", cmd);
    free(cmd);
    return so;
}

/* Removes a fixture and its directory (the library stays mapped: only the names go). */
static void drop_fixture(char *so) {
    unlink(so);
    rmdir(dirname(so));
    free(so);
}

static int open_err(const char *path, char *err, size_t len) {
    kl_plugin *p = NULL;
    int rc = kl_plugin_open(path, &p, err, len);
    cr_expect_null(p);
    return rc;
}

Test(plugin, example_declares_its_magics) {
    char *path = example_path();
    kl_plugin *p = NULL;
    char err[512] = "";
    cr_assert_eq(kl_plugin_open(path, &p, err, sizeof err), 0, "%s", err);
    cr_assert_eq(kl_plugin_magic_count(p), 3);
    cr_expect_str_eq(kl_plugin_path(p), path);
    const char *want[] = {"%hello", "%%upper", "%rowcount"};
    for (size_t i = 0; i < 3; i++) {
        char label[64];
        kl_plugin_magic_label(p, i, label, sizeof label);
        cr_expect_str_eq(label, want[i]);
    }
    kl_plugin_discard(p);
    free(path);
}

Test(plugin, install_registers_every_magic_once) {
    char *path = example_path();
    kl_magic_registry *reg = kl_magic_registry_new();
    kl_plugin *p = NULL;
    char err[512] = "";
    cr_assert_eq(kl_plugin_open(path, &p, err, sizeof err), 0, "%s", err);
    cr_assert_eq(kl_plugin_install(p, reg, err, sizeof err), 0, "%s", err);
    const kl_magic *m = kl_magic_find(reg, "HELLO", 5, KL_MAGIC_LINE);
    cr_assert_not_null(m);
    cr_expect_str_eq(m->name, "hello");
    cr_expect_str_eq(m->usage, "%hello [NAME]");
    cr_expect_str_eq(m->help, "Greet NAME (default: world).");
    cr_expect_not_null(kl_magic_find(reg, "upper", 5, KL_MAGIC_CELL));
    cr_expect_null(kl_magic_find(reg, "upper", 5, KL_MAGIC_LINE));
    cr_expect_not_null(kl_magic_find(reg, "rowcount", 8, KL_MAGIC_LINE));
    /* The same file again is recognised, not registered twice. */
    kl_plugin *again = NULL;
    cr_expect_eq(kl_plugin_open(path, &again, err, sizeof err), -EEXIST);
    cr_expect_null(again);
    kl_magic_registry_free(reg);
    free(path);
}

static int dummy(kl_magic_ctx *c, const char *args, const char *body) {
    (void)c, (void)args, (void)body;
    return 0;
}

Test(plugin, a_taken_name_refuses_the_whole_plugin) {
    char *path = example_path();
    kl_magic_registry *reg = kl_magic_registry_new();
    kl_magic builtin = {"Hello", KL_MAGIC_LINE, "%Hello", "a built-in", dummy};
    cr_assert_eq(kl_magic_register(reg, &builtin), 0);
    kl_plugin *p = NULL;
    char err[512] = "";
    cr_assert_eq(kl_plugin_open(path, &p, err, sizeof err), 0, "%s", err);
    cr_expect_neq(kl_plugin_install(p, reg, err, sizeof err), 0);
    cr_expect_str_eq(err, "%Hello is already a magic of the kernel");
    /* Nothing of the plugin went in. */
    cr_expect_null(kl_magic_find(reg, "upper", 5, 0));
    cr_expect_null(kl_magic_find(reg, "rowcount", 8, 0));
    kl_plugin_discard(p);
    kl_magic_registry_free(reg);
    free(path);
}

Test(plugin, a_clash_between_plugins_names_the_first) {
    char *path = example_path();
    char *clash = build_fixture("-DFIXTURE_CLASH");
    kl_magic_registry *reg = kl_magic_registry_new();
    kl_plugin *p = NULL;
    char err[512] = "";
    cr_assert_eq(kl_plugin_open(path, &p, err, sizeof err), 0, "%s", err);
    cr_assert_eq(kl_plugin_install(p, reg, err, sizeof err), 0, "%s", err);
    cr_assert_eq(kl_plugin_open(clash, &p, err, sizeof err), 0, "%s", err);
    cr_expect_neq(kl_plugin_install(p, reg, err, sizeof err), 0);
    char want[1024];
    snprintf(want, sizeof want, "%%hello is already a magic, from the plugin %s", path);
    cr_expect_str_eq(err, want);
    cr_expect_null(kl_magic_find(reg, "fx_result", 9, 0));
    kl_plugin_discard(p);
    kl_magic_registry_free(reg);
    drop_fixture(clash);
    free(path);
}

Test(plugin, missing_file_reports_dlerror) {
    char err[512] = "";
    cr_expect_eq(open_err("/nonexistent/kl.so", err, sizeof err), -1);
    cr_expect_str_eq(err, "/nonexistent/kl.so: cannot open shared object file: No such file or "
                          "directory");
}

Test(plugin, a_library_that_is_no_plugin) {
    char err[512] = "";
    cr_expect_eq(open_err("libm.so.6", err, sizeof err), -1);
    cr_expect(strstr(err, "not a Kindling magic plugin") != NULL, "%s", err);
}

Test(plugin, abi_mismatch) {
    char *so = build_fixture("-DFIXTURE_ABI=999");
    char err[512] = "";
    cr_expect_eq(open_err(so, err, sizeof err), -1);
    cr_expect_str_eq(err, "built for magic plugin ABI version 999, but this kernel has ABI "
                          "version 1: rebuild the plugin against this kernel's "
                          "include/kindling/magic.h");
    drop_fixture(so);
}

Test(plugin, no_abi_symbol) {
    char *so = build_fixture("-DFIXTURE_NO_ABI");
    char err[512] = "";
    cr_expect_eq(open_err(so, err, sizeof err), -1);
    cr_expect(strstr(err, "defines no kindling_magic_plugin_abi") != NULL, "%s", err);
    drop_fixture(so);
}

Test(plugin, no_init_function) {
    char *so = build_fixture("-DFIXTURE_NO_INIT");
    char err[512] = "";
    cr_expect_eq(open_err(so, err, sizeof err), -1);
    cr_expect_str_eq(err, "it defines no kindling_magic_plugin_init function");
    drop_fixture(so);
}

Test(plugin, invalid_name_is_refused) {
    char *so = build_fixture("-DFIXTURE_BAD_NAME");
    char err[512] = "";
    cr_expect_eq(open_err(so, err, sizeof err), -1);
    cr_expect_str_eq(err, "refused: the magic name \"bad-name\" may only hold letters, digits "
                          "and '_' (%bad-name could never be typed)");
    drop_fixture(so);
}

Test(plugin, failing_init) {
    char *so = build_fixture("-DFIXTURE_INIT_FAILS");
    char err[512] = "";
    cr_expect_eq(open_err(so, err, sizeof err), -1);
    cr_expect_str_eq(err, "its kindling_magic_plugin_init failed (returned 3)");
    drop_fixture(so);
}

Test(plugin, empty_plugin) {
    char *so = build_fixture("-DFIXTURE_EMPTY");
    char err[512] = "";
    cr_expect_eq(open_err(so, err, sizeof err), -1);
    cr_expect_str_eq(err, "it declared no magics");
    drop_fixture(so);
}

Test(plugin, fixture_registers_defaults) {
    char *so = build_fixture("");
    kl_magic_registry *reg = kl_magic_registry_new();
    kl_plugin *p = NULL;
    char err[512] = "";
    cr_assert_eq(kl_plugin_open(so, &p, err, sizeof err), 0, "%s", err);
    cr_assert_eq(kl_plugin_install(p, reg, err, sizeof err), 0, "%s", err);
    /* No usage given: "%name"; both kinds: usable either way. */
    const kl_magic *m = kl_magic_find(reg, "fx_result", 9, KL_MAGIC_LINE);
    cr_assert_not_null(m);
    cr_expect_str_eq(m->usage, "%fx_result");
    cr_expect_not_null(kl_magic_find(reg, "fx_both", 7, KL_MAGIC_LINE));
    cr_expect_not_null(kl_magic_find(reg, "fx_both", 7, KL_MAGIC_CELL));
    kl_magic_registry_free(reg);
    drop_fixture(so);
}

Test(plugin, host_table_is_complete) {
    const kindling_magic_host *h = kl_plugin_host();
    cr_expect_eq(h->abi_version, KINDLING_MAGIC_ABI_VERSION);
    cr_expect_eq(h->size, sizeof(kindling_magic_host));
    cr_expect(KINDLING_MAGIC_HOST_HAS(h, log));
    void (*const *fns)(void) = (void (*const *)(void)) & h->register_magic;
    size_t n = (sizeof *h - offsetof(kindling_magic_host, register_magic)) / sizeof(void *);
    for (size_t i = 0; i < n; i++) cr_expect_not_null(fns[i], "host function %zu is missing", i);
}
