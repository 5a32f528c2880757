/* sc:// connection strings: what parses and into what, one test per kind of malformed input (each
 * message must name the offending part and never a token), the precedence between
 * --spark-remote, SPARK_REMOTE and the embedded local server, the channel security PySpark would
 * pick, and the redacted form for logs. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "spark/remote.h"

static kl_sc_remote r;
static char err[512];

static void setup(void) {
    unsetenv("SPARK_REMOTE");
    unsetenv("SPARK_CONNECT_AUTHENTICATE_TOKEN");
}

static void teardown(void) {
    kl_sc_remote_free(&r);
}

TestSuite(remote, .init = setup, .fini = teardown);

static void parse_ok(const char *text) {
    err[0] = '\0';
    cr_assert_eq(kl_sc_remote_parse(text, &r, err, sizeof err), 0, "%s: %s", text, err);
}

/* The text must be rejected with a message holding every fragment (NULL-terminated). */
static void parse_bad(const char *text, const char *fragment, const char *fragment2) {
    err[0] = '\0';
    cr_assert_eq(kl_sc_remote_parse(text, &r, err, sizeof err), -1, "%s parsed", text);
    cr_assert(strncmp(err, "invalid Spark Connect remote: ", 30) == 0, "prefix: %s", err);
    cr_assert(strstr(err, fragment), "%s: error lacks \"%s\": %s", text, fragment, err);
    if (fragment2)
        cr_assert(strstr(err, fragment2), "%s: error lacks \"%s\": %s", text, fragment2, err);
    cr_assert_null(r.host, "a failed parse leaves nothing allocated");
    cr_assert_eq(r.n_headers, 0);
}

static const char *header(const char *key) {
    for (size_t i = 0; i < r.n_headers; i++)
        if (strcmp(r.headers[i].key, key) == 0) return r.headers[i].value;
    return NULL;
}

/* ---- Good URLs ------------------------------------------------------------------------------ */

Test(remote, minimal_url_takes_defaults) {
    parse_ok("sc://spark.example.com");
    cr_assert_eq(r.kind, KL_SC_KIND_URL);
    cr_assert_str_eq(r.host, "spark.example.com");
    cr_assert_eq(r.port, 15002);
    cr_assert_eq(r.use_ssl, -1);
    cr_assert_null(r.token);
    cr_assert_null(r.user_id);
    cr_assert_null(r.session_id);
    cr_assert_eq(r.max_message_size, 128 * 1024 * 1024);
    cr_assert_eq(r.n_headers, 0);
    cr_assert_eq(kl_sc_remote_transport(&r), KL_SC_PLAINTEXT);
}

Test(remote, trailing_slash_and_port) {
    parse_ok("sc://10.1.2.3:443/");
    cr_assert_str_eq(r.host, "10.1.2.3");
    cr_assert_eq(r.port, 443);
    char target[64];
    cr_assert_eq(kl_sc_remote_target(&r, target, sizeof target), 0);
    cr_assert_str_eq(target, "10.1.2.3:443");
}

Test(remote, scheme_is_case_insensitive_and_whitespace_trimmed) {
    parse_ok("  SC://Host-1.example_x:1\n");
    cr_assert_str_eq(r.host, "Host-1.example_x");
    cr_assert_eq(r.port, 1);
}

Test(remote, ipv6_literal_with_and_without_port) {
    parse_ok("sc://[::1]");
    cr_assert_str_eq(r.host, "::1");
    cr_assert(r.host_is_ipv6);
    cr_assert_eq(r.port, 15002);
    kl_sc_remote_free(&r);
    parse_ok("sc://[2001:db8::7]:65535/;use_ssl=true");
    cr_assert_str_eq(r.host, "2001:db8::7");
    cr_assert_eq(r.port, 65535);
    char target[64];
    cr_assert_eq(kl_sc_remote_target(&r, target, sizeof target), 0);
    cr_assert_str_eq(target, "[2001:db8::7]:65535");
    cr_assert_eq(kl_sc_remote_target(&r, target, 8), -1, "too small a buffer is reported");
}

Test(remote, every_known_parameter) {
    parse_ok("sc://h:15003/;token=abc.def;use_ssl=TRUE;user_id=alice;user_agent=my_app;"
             "session_id=550E8400-e29b-41d4-a716-446655440000;grpc_max_message_size=1048576");
    cr_assert_str_eq(r.token, "abc.def");
    cr_assert_eq(r.use_ssl, 1);
    cr_assert_str_eq(r.user_id, "alice");
    cr_assert_str_eq(r.user_agent, "my_app");
    cr_assert_str_eq(r.session_id, "550E8400-e29b-41d4-a716-446655440000", "kept as written");
    cr_assert_eq(r.max_message_size, 1048576);
    cr_assert_eq(r.n_headers, 0);
}

Test(remote, values_are_percent_decoded_and_may_hold_equals) {
    parse_ok("sc://h/;user_id=J%C3%BCrgen%20M;token=dG9rZW4%3D==;x-note=a%3Bb");
    cr_assert_str_eq(r.user_id, "J\xc3\xbcrgen M");
    cr_assert_str_eq(r.token, "dG9rZW4===", "base64 padding survives: only the first '=' splits");
    cr_assert_str_eq(header("x-note"), "a;b");
}

Test(remote, other_keys_become_metadata_in_order) {
    parse_ok("sc://h/;x-tenant=blue;use_ssl=false;x-trace.id=7;x-empty=;;");
    cr_assert_eq(r.n_headers, 3);
    cr_assert_str_eq(r.headers[0].key, "x-tenant");
    cr_assert_str_eq(r.headers[0].value, "blue");
    cr_assert_str_eq(r.headers[1].key, "x-trace.id");
    cr_assert_str_eq(r.headers[2].key, "x-empty");
    cr_assert_str_eq(r.headers[2].value, "", "metadata may be empty");
    cr_assert_eq(r.use_ssl, 0);
}

Test(remote, binary_metadata_may_hold_any_byte) {
    parse_ok("sc://h/;trace-bin=%01%FF");
    cr_assert_str_eq(header("trace-bin"), "\x01\xff");
}

Test(remote, local_in_any_case) {
    parse_ok("LoCaL");
    cr_assert_eq(r.kind, KL_SC_KIND_LOCAL);
    cr_assert_str_eq(r.master, "local");
    cr_assert_null(r.host);
    cr_assert_eq(kl_sc_remote_transport(&r), KL_SC_LOCAL_TCP);
    kl_sc_remote_free(&r);
    parse_ok("local[4]");
    cr_assert_str_eq(r.master, "local[4]");
    kl_sc_remote_free(&r);
    parse_ok("LOCAL[*,3]");
    cr_assert_str_eq(r.master, "local[*,3]");
}

/* ---- Bad input: one kind per test ----------------------------------------------------------- */

Test(remote, empty) {
    parse_bad("   ", "empty", NULL);
}

Test(remote, wrong_scheme) {
    parse_bad("http://spark:15002", "scheme 'http' is not sc", NULL);
    parse_bad("grpc+tls://spark", "scheme 'grpc+tls'", NULL);
}

Test(remote, missing_scheme) {
    parse_bad("spark.example.com:15002", "'spark.example.com:15002' has no scheme", "sc://");
    parse_bad("localhost:15002", "'localhost:15002' has no scheme", NULL);
}

Test(remote, missing_scheme_does_not_echo_parameters) {
    parse_bad("spark/;token=s3cr3t;x=http://a", "has no scheme", NULL);
    cr_assert_null(strstr(err, "s3cr3t"), "token leaked: %s", err);
}

Test(remote, missing_host) {
    parse_bad("sc://", "no host", NULL);
    parse_bad("sc:///;token=x", "no host", NULL);
    parse_bad("sc://:15002", "no host before the port", NULL);
}

Test(remote, bad_host_characters) {
    parse_bad("sc://spa rk", "host 'spa rk' contains ' '", NULL);
    parse_bad("sc://sp%61rk", "contains '%'", NULL);
}

Test(remote, bad_port) {
    parse_bad("sc://h:", "port after ':' is empty", NULL);
    parse_bad("sc://h:http", "port 'http' is not a number from 1 to 65535", NULL);
    parse_bad("sc://h:0", "port '0'", NULL);
    parse_bad("sc://h:65536", "port '65536'", NULL);
    parse_bad("sc://h:-1", "port '-1'", NULL);
    parse_bad("sc://h:1234567", "port '1234567'", NULL);
}

Test(remote, ipv6_problems) {
    parse_bad("sc://[::1", "lacks its ']'", NULL);
    parse_bad("sc://[nope]:1", "'[nope]' is not an IPv6 address", NULL);
    parse_bad("sc://[::1]x", "unexpected 'x' after the IPv6 address", NULL);
    parse_bad("sc://::1:15002", "more than one ':'", "[addr]:port");
}

Test(remote, a_path) {
    parse_bad("sc://h:443/mypathprefix/;token=AAAA", "path '/mypathprefix/'", "must be empty");
    cr_assert_null(strstr(err, "AAAA"));
}

Test(remote, a_path_that_is_a_forgotten_semicolon) {
    parse_bad("sc://h/token=s3cr3t", "path '/token=...'", NULL);
    cr_assert_null(strstr(err, "s3cr3t"));
}

Test(remote, parameters_without_slash) {
    parse_bad("sc://h;token=x", "parameters must follow '/;'", NULL);
}

Test(remote, query_or_fragment) {
    parse_bad("sc://h/?token=x", "'?' (a query or fragment)", NULL);
    parse_bad("sc://h/;token=a#b", "'#' in the parameters must be percent-encoded", "%23");
}

Test(remote, user_info) {
    parse_bad("sc://bob:pw@h", "user info before '@'", "user_id");
    cr_assert_null(strstr(err, "pw"));
}

Test(remote, parameter_without_equals) {
    parse_bad("sc://h/;use_ssl", "parameter 'use_ssl' has no '='", NULL);
}

Test(remote, empty_key) {
    parse_bad("sc://h/;=value", "parameter '=value' has an empty key", NULL);
}

Test(remote, duplicate_key) {
    parse_bad("sc://h/;user_id=a;user_id=b", "parameter 'user_id' is given twice", NULL);
    parse_bad("sc://h/;x-a=1;x-a=1", "parameter 'x-a' is given twice", NULL);
    parse_bad("sc://h/;token=one;token=two", "'token' is given twice", NULL);
    cr_assert_null(strstr(err, "two"));
}

Test(remote, empty_value_of_known_key) {
    parse_bad("sc://h/;token=", "parameter 'token' has an empty value", NULL);
    parse_bad("sc://h/;user_id=", "'user_id' has an empty value", NULL);
}

Test(remote, bad_use_ssl) {
    parse_bad("sc://h/;use_ssl=yes", "use_ssl must be true or false, not 'yes'", NULL);
    parse_bad("sc://h/;use_ssl=1", "not '1'", NULL);
}

Test(remote, bad_session_id) {
    parse_bad("sc://h/;session_id=abc", "session_id 'abc' is not a UUID", NULL);
    parse_bad("sc://h/;session_id=550e8400e29b41d4a716446655440000", "is not a UUID", NULL);
    parse_bad("sc://h/;session_id=550e8400-e29b-41d4-a716-44665544000g", "is not a UUID", NULL);
    parse_bad("sc://h/;session_id=550e8400-e29b-41d4-a716-4466554400001", "is not a UUID", NULL);
}

Test(remote, bad_max_message_size) {
    parse_bad("sc://h/;grpc_max_message_size=0", "grpc_max_message_size '0' is not a byte count",
              NULL);
    parse_bad("sc://h/;grpc_max_message_size=-5", "'-5'", NULL);
    parse_bad("sc://h/;grpc_max_message_size=12MB", "'12MB'", NULL);
    parse_bad("sc://h/;grpc_max_message_size=2147483648", "'2147483648'", "2147483647");
    parse_bad("sc://h/;grpc_max_message_size=+5", "'+5'", NULL);
}

Test(remote, bad_percent_escape_names_the_key_not_the_token) {
    parse_bad("sc://h/;token=sec%zzret", "value of 'token' has a bad percent-escape '%zz'", NULL);
    cr_assert_null(strstr(err, "sec"));
    parse_bad("sc://h/;user_id=a%4", "bad percent-escape '%4'", NULL);
    parse_bad("sc://h/;user_id=a%00b", "%00", NULL);
}

Test(remote, case_sensitive_keys) {
    parse_bad("sc://h/;Token=x", "unknown parameter 'Token'", "did you mean 'token'?");
    parse_bad("sc://h/;USE_SSL=true", "did you mean 'use_ssl'?", NULL);
}

Test(remote, illegal_metadata) {
    parse_bad("sc://h/;X-Tenant=blue", "'X-Tenant' would be sent as gRPC metadata", NULL);
    parse_bad("sc://h/;grpc-timeout=1S", "'grpc-timeout' is reserved", NULL);
    parse_bad("sc://h/;x-a=%0A", "value of metadata 'x-a' has byte 0x0a", NULL);
    parse_bad("sc://h/;x%2Da=1", "key 'x%2Da' must not be percent-encoded", NULL);
}

Test(remote, token_that_cannot_be_a_header) {
    parse_bad("sc://h/;token=Zq9%0AcdQ", "token has byte 0x0a", NULL);
    cr_assert_null(strstr(err, "Zq9"));
}

Test(remote, token_and_authorization_header) {
    parse_bad("sc://h/;token=t;authorization=Basic%20x", "both token and authorization", NULL);
}

Test(remote, overlong_user_agent) {
    char url[2200] = "sc://h/;user_agent=";
    memset(url + strlen(url), 'a', 2049);
    parse_bad(url, "user_agent is longer than 2048", NULL);
}

Test(remote, control_character) {
    parse_bad("sc://h/;user_id=a\tb", "control character 0x09 at offset 17", NULL);
}

Test(remote, bad_local_master) {
    parse_bad("local[x]", "'local[x]' is not local, local[N] or local[*]", NULL);
    parse_bad("local[]", "'local[]'", NULL);
    parse_bad("local[2,]", "'local[2,]'", NULL);
}

/* ---- Transport: what PySpark 4.0's ChannelBuilder would do ----------------------------------- */

static kl_sc_transport transport_of(const char *url) {
    kl_sc_remote_free(&r);
    parse_ok(url);
    return kl_sc_remote_transport(&r);
}

Test(remote, token_implies_tls_except_on_localhost) {
    cr_assert_eq(transport_of("sc://h/;use_ssl=true"), KL_SC_TLS);
    cr_assert_eq(transport_of("sc://h/;use_ssl=false"), KL_SC_PLAINTEXT);
    cr_assert_eq(transport_of("sc://h/;token=t"), KL_SC_TLS);
    cr_assert_eq(transport_of("sc://h/;token=t;use_ssl=false"), KL_SC_TLS,
                 "PySpark upgrades rather than send a token in clear text");
    cr_assert_eq(transport_of("sc://localhost/;token=t"), KL_SC_LOCAL_TCP);
    cr_assert_eq(transport_of("sc://LOCALHOST:1/;token=t;use_ssl=false"), KL_SC_LOCAL_TCP);
    cr_assert_eq(transport_of("sc://127.0.0.1/;token=t"), KL_SC_LOCAL_TCP);
    cr_assert_eq(transport_of("sc://127.9.9.9/;token=t"), KL_SC_LOCAL_TCP);
    cr_assert_eq(transport_of("sc://[::1]/;token=t"), KL_SC_LOCAL_TCP);
    cr_assert_eq(transport_of("sc://128.0.0.1/;token=t"), KL_SC_TLS);
    cr_assert_eq(transport_of("sc://localhost.evil.com/;token=t"), KL_SC_TLS);
    cr_assert_eq(transport_of("sc://localhost/;token=t;use_ssl=true"), KL_SC_TLS);
    cr_assert_eq(transport_of("sc://localhost"), KL_SC_PLAINTEXT);
    cr_assert_str_eq(kl_sc_transport_name(KL_SC_LOCAL_TCP), "local-tcp");
}

/* ---- Precedence ----------------------------------------------------------------------------- */

static int select_remote(const char *option) {
    err[0] = '\0';
    kl_sc_remote_free(&r);
    return kl_sc_remote_select(option, &r, err, sizeof err);
}

Test(remote, option_beats_environment) {
    setenv("SPARK_REMOTE", "sc://from-env", 1);
    cr_assert_eq(select_remote("sc://from-option:1"), 0, "%s", err);
    cr_assert_str_eq(r.host, "from-option");
    cr_assert_eq(r.source, KL_SC_FROM_OPTION);
}

Test(remote, environment_beats_local_default) {
    setenv("SPARK_REMOTE", "sc://from-env/;user_id=u", 1);
    cr_assert_eq(select_remote(NULL), 0, "%s", err);
    cr_assert_str_eq(r.host, "from-env");
    cr_assert_eq(r.source, KL_SC_FROM_ENV);
    cr_assert_eq(select_remote(""), 0, "an empty option counts as not given");
    cr_assert_eq(r.source, KL_SC_FROM_ENV);
}

Test(remote, nothing_configured_means_embedded_local) {
    cr_assert_eq(select_remote(NULL), 0, "%s", err);
    cr_assert_eq(r.kind, KL_SC_KIND_LOCAL);
    cr_assert_eq(r.source, KL_SC_FROM_DEFAULT);
    cr_assert_str_eq(r.master, "local[*]");
    setenv("SPARK_REMOTE", "", 1);
    cr_assert_eq(select_remote(NULL), 0);
    cr_assert_eq(r.source, KL_SC_FROM_DEFAULT, "an empty SPARK_REMOTE counts as unset");
}

Test(remote, env_local_marker) {
    setenv("SPARK_REMOTE", "local", 1);
    cr_assert_eq(select_remote(NULL), 0, "%s", err);
    cr_assert_eq(r.kind, KL_SC_KIND_LOCAL);
    cr_assert_eq(r.source, KL_SC_FROM_ENV);
}

Test(remote, errors_say_where_the_bad_value_came_from) {
    setenv("SPARK_REMOTE", "sc://h:99999", 1);
    cr_assert_eq(select_remote(NULL), -1);
    cr_assert(strncmp(err, "SPARK_REMOTE: invalid Spark Connect remote: ", 44) == 0, "%s", err);
    cr_assert(strstr(err, "99999"));
    cr_assert_eq(select_remote("http://x"), -1, "a bad option is not replaced by the env");
    cr_assert(strncmp(err, "--spark-remote: ", 16) == 0, "%s", err);
}

Test(remote, token_from_environment_like_pyspark) {
    setenv("SPARK_CONNECT_AUTHENTICATE_TOKEN", "envtok", 1);
    cr_assert_eq(select_remote("sc://h"), 0);
    cr_assert_str_eq(r.token, "envtok");
    cr_assert(r.token_from_env);
    cr_assert_eq(kl_sc_remote_transport(&r), KL_SC_TLS);
    cr_assert_eq(select_remote("sc://h/;token=urltok"), 0);
    cr_assert_str_eq(r.token, "urltok", "the URL's own token wins");
    cr_assert(!r.token_from_env);
    cr_assert_eq(select_remote("local"), 0);
    cr_assert_null(r.token, "the local server gets its token elsewhere");
}

/* ---- Redaction ------------------------------------------------------------------------------ */

Test(remote, redacted_form_hides_secrets_and_parses_back) {
    parse_ok("sc://[::1]:7/;x-tenant=a%20b;token=SECRET;user_id=al;use_ssl=true;"
             "x-api-key=K3Y;authorization-extra=zz;grpc_max_message_size=1000");
    char buf[512];
    cr_assert_eq(kl_sc_remote_redacted(&r, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "sc://[::1]:7/;token=<redacted>;use_ssl=true;user_id=al;"
                          "grpc_max_message_size=1000;x-tenant=a%20b;x-api-key=<redacted>;"
                          "authorization-extra=<redacted>");
    cr_assert_null(strstr(buf, "SECRET"));
    cr_assert_null(strstr(buf, "K3Y"));

    kl_sc_remote back;
    cr_assert_eq(kl_sc_remote_parse(buf, &back, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(back.host, "::1");
    cr_assert_str_eq(back.headers[0].value, "a b");
    kl_sc_remote_free(&back);
}

Test(remote, redacted_minimal_and_local) {
    char buf[128];
    parse_ok("sc://h");
    cr_assert_eq(kl_sc_remote_redacted(&r, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "sc://h:15002/");
    kl_sc_remote_free(&r);
    parse_ok("local[2]");
    cr_assert_eq(kl_sc_remote_redacted(&r, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "local[2]");
}

Test(remote, redacted_reports_truncation) {
    parse_ok("sc://a-long-host-name.example.com/;user_id=someone");
    char buf[16];
    cr_assert_eq(kl_sc_remote_redacted(&r, buf, sizeof buf), -1);
    cr_assert_eq(strlen(buf), sizeof buf - 1, "still a terminated string");
}
