#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/history.h"

static void expect_redacted(const char *in, const char *want) {
    char *got = kl_history_redact(in);
    cr_assert_not_null(got);
    cr_expect_str_eq(got, want, "redact(%s)", in);
    free(got);
}

Test(history_redact, token_parameters_of_urls) {
    expect_redacted("%connect sc://h:443/;token=s3cr3t;use_ssl=true",
                    "%connect sc://h:443/;token=<redacted>;use_ssl=true");
    expect_redacted("%connect sc://h/;TOKEN=abc", "%connect sc://h/;TOKEN=<redacted>");
    expect_redacted("sc://h/;token=a&token=b", "sc://h/;token=<redacted>&token=<redacted>");
    expect_redacted("token = 'quoted secret' rest", "token = <redacted> rest");
}

Test(history_redact, keys_ending_in_token_and_bearer) {
    expect_redacted("%env SPARK_CONNECT_AUTHENTICATE_TOKEN=xyz",
                    "%env SPARK_CONNECT_AUTHENTICATE_TOKEN=<redacted>");
    expect_redacted("authorization: Bearer abc.def", "authorization: Bearer <redacted>");
}

Test(history_redact, ordinary_text_is_unchanged) {
    expect_redacted("SELECT tokenizer('a=b') FROM t", "SELECT tokenizer('a=b') FROM t");
    expect_redacted("SELECT 1", "SELECT 1");
    expect_redacted("token", "token");
    expect_redacted("token=", "token=");
    expect_redacted("", "");
}

Test(history_redact, stored_lines_are_redacted) {
    char err[128];
    kl_history *h = kl_history_open(":memory:", err, sizeof err);
    cr_assert_not_null(h, "%s", err);
    int64_t s;
    cr_assert_eq(kl_history_session_begin(h, "alice", "client", &s), 0);
    cr_assert_eq(kl_history_store(h, s, 1, "%connect sc://h/;token=TOPSECRET", "token=TOPSECRET"),
                 0);
    json_t *tail = kl_history_tail(h, (kl_history_view){.current = s}, 1, true);
    cr_assert_not_null(tail);
    char *dump = json_dumps(tail, JSON_COMPACT);
    cr_expect_null(strstr(dump, "TOPSECRET"), "history kept the token: %s", dump);
    cr_expect_not_null(strstr(dump, "token=<redacted>"), "%s", dump);
    free(dump);
    json_decref(tail);
    kl_history_close(h);
}
