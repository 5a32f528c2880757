/* Connection files: the ones jupyter_client writes load, and every kind of bad file is reported
 * with the file and the field it is about. Fixtures are in tests/data/connection/. */
#include <criterion/criterion.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jupyter/connection.h"

#define FIXTURE(name) KL_TEST_DATA "/connection/" name

static kl_connection_info info;
static char err[512];

static void teardown(void) {
    kl_connection_free(&info);
}

TestSuite(connection, .fini = teardown);

static int load(const char *path) {
    err[0] = '\0';
    return kl_connection_load(path, &info, err, sizeof err);
}

/* Loads a fixture that must fail and checks the message names the file and every fragment. */
static void expect_error(const char *path, const char *fragment1, const char *fragment2) {
    cr_assert_eq(load(path), -1, "%s loaded but should not", path);
    cr_assert(strstr(err, path) != NULL, "error does not name the file: %s", err);
    cr_assert(strstr(err, fragment1) != NULL, "error lacks \"%s\": %s", fragment1, err);
    if (fragment2)
        cr_assert(strstr(err, fragment2) != NULL, "error lacks \"%s\": %s", fragment2, err);
}

Test(connection, jupyter_client_tcp_file) {
    cr_assert_eq(load(FIXTURE("tcp.json")), 0, "%s", err);
    cr_assert_str_eq(info.transport, "tcp");
    cr_assert_str_eq(info.ip, "127.0.0.1");
    int want[KL_CH_COUNT] = {53794, 53795, 53796, 53797, 53798};
    for (int ch = 0; ch < KL_CH_COUNT; ch++) cr_assert_eq(info.ports[ch], want[ch]);
    cr_assert_str_eq(info.key, "a0436f6c-1916-498b-8eb9-e81ab9368e84");
    cr_assert_str_eq(info.signature_scheme, "hmac-sha256");
    cr_assert_str_eq(info.kernel_name, "kindling");
    cr_assert_null(info.curve_publickey);
    cr_assert_null(info.curve_secretkey);
}

Test(connection, ipc_file_and_endpoints) {
    cr_assert_eq(load(FIXTURE("ipc.json")), 0, "%s", err);
    cr_assert_str_eq(info.transport, "ipc");
    char ep[300];
    cr_assert_eq(kl_connection_endpoint(&info, KL_CH_SHELL, ep, sizeof ep), 0);
    cr_assert_str_eq(ep, "ipc:///tmp/kl-test-1");
    cr_assert_eq(kl_connection_endpoint(&info, KL_CH_HB, ep, sizeof ep), 0);
    cr_assert_str_eq(ep, "ipc:///tmp/kl-test-5");
}

Test(connection, curve_keys) {
    cr_assert_eq(load(FIXTURE("curve.json")), 0, "%s", err);
    cr_assert_str_eq(info.curve_publickey, ")6T2qsz@g?)zm%B?>a6ij$hBO-l0sq0zuc?z&V?M");
    cr_assert_str_eq(info.curve_secretkey, "yLsu]c}X<8ZRX=07i%RvQZb/07aG&feoG?$V+rL*");
}

Test(connection, minimal_file_gets_defaults) {
    cr_assert_eq(load(FIXTURE("minimal.json")), 0, "%s", err);
    cr_assert_str_eq(info.transport, "tcp");
    cr_assert_str_eq(info.ip, "127.0.0.1");
    cr_assert_str_eq(info.key, "");
    cr_assert_str_eq(info.signature_scheme, "hmac-sha256");
    cr_assert_str_eq(info.kernel_name, "");
    cr_assert_eq(info.ports[KL_CH_CONTROL], 1004);
}

Test(connection, defaults) {
    kl_connection_defaults(&info);
    cr_assert_str_eq(info.transport, "tcp");
    cr_assert_str_eq(info.ip, "127.0.0.1");
    cr_assert_str_eq(info.key, "");
    cr_assert_str_eq(info.signature_scheme, "hmac-sha256");
    for (int ch = 0; ch < KL_CH_COUNT; ch++) cr_assert_eq(info.ports[ch], 0);
}

Test(connection, missing_file) {
    expect_error(FIXTURE("does-not-exist.json"), "not found", NULL);
}

Test(connection, unreadable_file) {
    /* A directory opens but cannot be read, even as root (where chmod 000 would not stop us). */
    expect_error(KL_TEST_DATA "/connection", "cannot read", NULL);
}

Test(connection, empty_file) {
    expect_error(FIXTURE("empty.json"), "empty", NULL);
}

Test(connection, not_json_reports_line_and_column) {
    expect_error(FIXTURE("bad_syntax.json"), "not valid JSON", "line 4");
}

Test(connection, not_an_object) {
    expect_error(FIXTURE("not_object.json"), "must be an object", "array");
}

Test(connection, port_as_string) {
    expect_error(FIXTURE("port_string.json"), "\"shell_port\" must be an integer 0-65535",
                 "a string");
}

Test(connection, port_out_of_range) {
    expect_error(FIXTURE("port_range.json"), "\"hb_port\" must be an integer 0-65535", "70000");
}

Test(connection, port_with_fraction) {
    expect_error(FIXTURE("port_real.json"), "\"iopub_port\" must be an integer", NULL);
}

Test(connection, ip_not_a_string) {
    expect_error(FIXTURE("ip_number.json"), "\"ip\" must be a string", NULL);
}

Test(connection, ip_empty) {
    expect_error(FIXTURE("ip_empty.json"), "\"ip\" must not be empty", NULL);
}

Test(connection, key_not_a_string) {
    expect_error(FIXTURE("key_number.json"), "\"key\" must be a string", NULL);
}

Test(connection, bad_transport) {
    expect_error(FIXTURE("transport_udp.json"), "\"transport\" must be \"tcp\" or \"ipc\"", "udp");
}

Test(connection, scheme_without_hmac_prefix) {
    expect_error(FIXTURE("scheme_not_hmac.json"), "\"signature_scheme\" must start with \"hmac-\"",
                 NULL);
}

Test(connection, scheme_with_unknown_digest) {
    expect_error(FIXTURE("scheme_unknown.json"), "\"signature_scheme\"", "sha257");
}

Test(connection, kernel_name_not_a_string) {
    expect_error(FIXTURE("kernel_name_array.json"), "\"kernel_name\" must be a string", "array");
}

Test(connection, curve_key_wrong_length) {
    expect_error(FIXTURE("curve_short.json"), "\"curve_publickey\"", "40-character Z85");
}

Test(connection, curve_key_without_its_pair) {
    expect_error(FIXTURE("curve_half.json"), "\"curve_secretkey\" is missing", NULL);
}

Test(connection, failed_load_leaves_nothing_owned) {
    cr_assert_eq(load(FIXTURE("curve_half.json")), -1);
    cr_assert_null(info.curve_publickey, "public key of a rejected file was kept");
    cr_assert_str_eq(info.key, "");
}

Test(connection, parse_from_memory_uses_the_given_name) {
    const char *json = "{\"shell_port\": true}";
    cr_assert_eq(kl_connection_parse(json, strlen(json), "inline", &info, err, sizeof err), -1);
    cr_assert(strncmp(err, "inline: ", 8) == 0, "%s", err);
    cr_assert(strstr(err, "a boolean") != NULL, "%s", err);
}

Test(connection, tcp_endpoints) {
    kl_connection_defaults(&info);
    info.ports[KL_CH_IOPUB] = 5555;
    char ep[300];
    cr_assert_eq(kl_connection_endpoint(&info, KL_CH_IOPUB, ep, sizeof ep), 0);
    cr_assert_str_eq(ep, "tcp://127.0.0.1:5555");
    /* Port 0 means "kernel picks": ZeroMQ spells that '*'. */
    cr_assert_eq(kl_connection_endpoint(&info, KL_CH_SHELL, ep, sizeof ep), 0);
    cr_assert_str_eq(ep, "tcp://127.0.0.1:*");
    strcpy(info.ip, "::1");
    cr_assert_eq(kl_connection_endpoint(&info, KL_CH_IOPUB, ep, sizeof ep), 0);
    cr_assert_str_eq(ep, "tcp://[::1]:5555");
    strcpy(info.ip, "[fe80::1]");
    cr_assert_eq(kl_connection_endpoint(&info, KL_CH_IOPUB, ep, sizeof ep), 0);
    cr_assert_str_eq(ep, "tcp://[fe80::1]:5555");
    cr_assert_lt(kl_connection_endpoint(&info, KL_CH_IOPUB, ep, 8), 0);
    cr_assert_lt(kl_connection_endpoint(&info, KL_CH_COUNT, ep, sizeof ep), 0);
}

Test(connection, channel_names) {
    cr_assert_str_eq(kl_channel_name(KL_CH_SHELL), "shell");
    cr_assert_str_eq(kl_channel_name(KL_CH_IOPUB), "iopub");
    cr_assert_str_eq(kl_channel_name(KL_CH_STDIN), "stdin");
    cr_assert_str_eq(kl_channel_name(KL_CH_CONTROL), "control");
    cr_assert_str_eq(kl_channel_name(KL_CH_HB), "hb");
}

Test(connection, write_then_load_round_trip_with_mode_0600) {
    char dir[] = "/tmp/kl-conn-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/kernel-1.json", dir);

    kl_connection_info w;
    kl_connection_defaults(&w);
    strcpy(w.transport, "ipc");
    strcpy(w.ip, "/run/kl");
    for (int ch = 0; ch < KL_CH_COUNT; ch++) w.ports[ch] = 40000 + ch;
    w.key = strdup("s3cret");
    strcpy(w.signature_scheme, "hmac-sha512");
    strcpy(w.kernel_name, "kindling");
    w.curve_publickey = strdup(")6T2qsz@g?)zm%B?>a6ij$hBO-l0sq0zuc?z&V?M");
    w.curve_secretkey = strdup("yLsu]c}X<8ZRX=07i%RvQZb/07aG&feoG?$V+rL*");
    cr_assert_eq(kl_connection_write(path, &w), 0);
    kl_connection_free(&w);

    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "mode is %o", st.st_mode & 0777);

    cr_assert_eq(load(path), 0, "%s", err);
    cr_assert_str_eq(info.transport, "ipc");
    cr_assert_str_eq(info.ip, "/run/kl");
    cr_assert_eq(info.ports[KL_CH_HB], 40004);
    cr_assert_str_eq(info.key, "s3cret");
    cr_assert_str_eq(info.signature_scheme, "hmac-sha512");
    cr_assert_str_eq(info.kernel_name, "kindling");
    cr_assert_str_eq(info.curve_secretkey, "yLsu]c}X<8ZRX=07i%RvQZb/07aG&feoG?$V+rL*");

    unlink(path);
    rmdir(dir);
}

Test(connection, write_to_missing_directory_fails_with_errno) {
    kl_connection_defaults(&info);
    cr_assert_lt(kl_connection_write("/nonexistent-kl-dir/kernel.json", &info), 0);
}
