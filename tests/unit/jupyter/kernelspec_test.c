/* Kernelspec installation: where it goes and what lands there. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jupyter/kernelspec.h"

static char tmp[64];
static char err[512];

static void setup(void) {
    strcpy(tmp, "/tmp/kl-spec-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
}

TestSuite(kernelspec, .init = setup, .fini = teardown);

static void write_bytes(const char *path, const char *data) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    fputs(data, f);
    fclose(f);
}

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

Test(kernelspec, user_dir_follows_jupyter_data_dir) {
    setenv("JUPYTER_DATA_DIR", "/data/jup", 1);
    char buf[256];
    cr_assert_eq(kl_kernelspec_user_dir(buf, sizeof buf, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(buf, "/data/jup/kernels");

    unsetenv("JUPYTER_DATA_DIR");
    unsetenv("XDG_DATA_HOME");
    setenv("HOME", "/home/someone", 1);
    cr_assert_eq(kl_kernelspec_user_dir(buf, sizeof buf, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(buf, "/home/someone/.local/share/jupyter/kernels");

    cr_assert_eq(kl_kernelspec_user_dir(buf, 8, err, sizeof err), -1);
    cr_assert(strstr(err, "too long") != NULL, "%s", err);
}

Test(kernelspec, prefix_dir) {
    char buf[256];
    cr_assert_eq(kl_kernelspec_prefix_dir("/opt/conda", buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "/opt/conda/share/jupyter/kernels");
    setenv("VIRTUAL_ENV", "/venv", 1);
    cr_assert_eq(kl_kernelspec_prefix_dir(NULL, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "/venv/share/jupyter/kernels");
    unsetenv("VIRTUAL_ENV");
    cr_assert_eq(kl_kernelspec_prefix_dir(NULL, buf, sizeof buf), -1);
}

Test(kernelspec, writes_kernel_json_and_logos_creating_parents) {
    char logos[128], kernels[128], path[256];
    snprintf(logos, sizeof logos, "%s/logos", tmp);
    cr_assert_eq(mkdir(logos, 0755), 0);
    snprintf(path, sizeof path, "%s/logo-64x64.png", logos);
    write_bytes(path, "PNG64");
    /* logo-32x32.png is absent: optional files are skipped, not errors */
    snprintf(kernels, sizeof kernels, "%s/a/b/kernels", tmp);

    json_t *kj = json_pack("{s:[s,s,s,s], s:s, s:s, s:s}", "argv", "kindling", "kernel", "-f",
                           "{connection_file}", "display_name", "Spark SQL (Kindling)", "language",
                           "sql", "interrupt_mode", "message");
    kl_kernelspec spec = {.name = "kindling", .kernel_json = kj, .logo_dir = logos};
    cr_assert_eq(kl_kernelspec_write(kernels, &spec, err, sizeof err), 0, "%s", err);

    snprintf(path, sizeof path, "%s/kindling/kernel.json", kernels);
    char *text = read_all(path);
    cr_assert_not_null(text);
    cr_assert(strncmp(text, "{\n \"argv\": [\n", 13) == 0, "not indented by 1: %s", text);
    json_error_t jerr;
    json_t *back = json_loads(text, 0, &jerr);
    cr_assert_not_null(back, "%s", jerr.text);
    cr_assert(json_equal(back, kj));
    json_decref(back);

    snprintf(path, sizeof path, "%s/kindling/logo-64x64.png", kernels);
    cr_assert_str_eq(read_all(path), "PNG64");
    snprintf(path, sizeof path, "%s/kindling/logo-32x32.png", kernels);
    cr_assert_neq(access(path, F_OK), 0);

    /* Installing again replaces the files. */
    json_object_set_new(kj, "display_name", json_string("Renamed"));
    cr_assert_eq(kl_kernelspec_write(kernels, &spec, err, sizeof err), 0, "%s", err);
    snprintf(path, sizeof path, "%s/kindling/kernel.json", kernels);
    cr_assert(strstr(read_all(path), "Renamed") != NULL);
    json_decref(kj);
}

Test(kernelspec, bad_name_rejected) {
    json_t *kj = json_object();
    kl_kernelspec spec = {.name = "../evil", .kernel_json = kj};
    cr_assert_eq(kl_kernelspec_write(tmp, &spec, err, sizeof err), -1);
    cr_assert(strstr(err, "../evil") != NULL, "%s", err);
    json_decref(kj);
}

Test(kernelspec, unwritable_directory_reported) {
    char file[128];
    snprintf(file, sizeof file, "%s/plainfile", tmp);
    write_bytes(file, "x");
    json_t *kj = json_object();
    kl_kernelspec spec = {.name = "kindling", .kernel_json = kj};
    cr_assert_eq(kl_kernelspec_write(file, &spec, err, sizeof err), -1);
    cr_assert(strstr(err, "cannot create directory") != NULL, "%s", err);
    json_decref(kj);
}
