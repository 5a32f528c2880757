#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/log.h"

/* Runs fn with stderr sent to a temporary file and returns what it wrote (caller frees). */
static char *capture_stderr(void (*fn)(void)) {
    FILE *tmp = tmpfile();
    cr_assert_not_null(tmp);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(tmp), STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t n = lseek(fileno(tmp), 0, SEEK_END);
    cr_assert_geq(n, 0);
    char *buf = calloc(1, (size_t)n + 1);
    cr_assert_eq(pread(fileno(tmp), buf, (size_t)n, 0), n);
    fclose(tmp);
    return buf;
}

static void plain_lines(void) {
    kl_log_set_json(false);
    kl_log_set_level(KL_LOG_INFO);
    KL_DEBUG("test", "hidden %d", 1);
    KL_INFO("test", "shown %d", 2);
    KL_WARN("zsock", "careful");
}

Test(log, plain_format_and_level_filter) {
    char *out = capture_stderr(plain_lines);
    cr_assert_null(strstr(out, "hidden"), "debug is below the level");
    char *l1 = out, *l2 = strchr(out, '\n');
    cr_assert_not_null(l2);
    l2++;
    /* 2026-11-24T09:00:00.123Z INFO  [test] shown 2 */
    cr_assert_eq(strlen(l1) > 25 ? 1 : 0, 1);
    cr_assert(l1[4] == '-' && l1[7] == '-' && l1[10] == 'T' && l1[13] == ':' && l1[16] == ':' &&
                  l1[19] == '.' && l1[23] == 'Z' && l1[24] == ' ',
              "timestamp shape in %s", l1);
    cr_assert(strncmp(l1 + 25, "INFO  [test] shown 2\n", 21) == 0, "got %s", l1);
    cr_assert(strncmp(l2 + 25, "WARN  [zsock] careful\n", 22) == 0, "got %s", l2);
    free(out);
}

static void json_line(void) {
    kl_log_set_json(true);
    kl_log_set_level(KL_LOG_DEBUG);
    KL_ERROR("m\"od", "quote\" back\\ nl\n tab\t ctl\x01 bad\xff ok\xc3\xa9");
}

Test(log, json_escapes_everything_that_needs_it) {
    char *out = capture_stderr(json_line);
    cr_assert(strncmp(out, "{\"ts\":\"", 7) == 0, "got %s", out);
    const char *rest = strstr(out, "\",\"level\":\"error\",\"module\":\"m\\\"od\",\"msg\":");
    cr_assert_not_null(rest, "got %s", out);
    cr_assert_not_null(
        strstr(out,
               "\"msg\":\"quote\\\" back\\\\ nl\\n tab\\t ctl\\u0001 bad\\ufffd ok\xc3\xa9\"}\n"),
        "got %s", out);
    cr_assert_eq(strchr(out, '\n'), out + strlen(out) - 1, "exactly one line");
    free(out);
}

static void off_lines(void) {
    kl_log_set_level(KL_LOG_OFF);
    KL_ERROR("x", "nothing");
}

Test(log, off_silences_everything) {
    char *out = capture_stderr(off_lines);
    cr_assert_str_empty(out);
    cr_assert_not(kl_log_enabled(KL_LOG_ERROR));
    free(out);
}

Test(log, parse_level_names) {
    cr_assert_eq(kl_log_parse_level("debug"), KL_LOG_DEBUG);
    cr_assert_eq(kl_log_parse_level("INFO"), KL_LOG_INFO);
    cr_assert_eq(kl_log_parse_level("warn"), KL_LOG_WARN);
    cr_assert_eq(kl_log_parse_level("error"), KL_LOG_ERROR);
    cr_assert_eq(kl_log_parse_level("off"), KL_LOG_OFF);
    cr_assert_eq(kl_log_parse_level("loud"), -1);
    cr_assert_eq(kl_log_parse_level(NULL), -1);
}

Test(log, default_level_is_warn_and_env_is_read) {
    /* each Criterion test runs in a fresh process, so nothing was set explicitly yet */
    cr_assert_not(kl_log_enabled(KL_LOG_INFO));
    cr_assert(kl_log_enabled(KL_LOG_WARN));
    setenv("KINDLING_LOG_LEVEL", "debug", 1);
    kl_log_init_from_env();
    cr_assert(kl_log_enabled(KL_LOG_DEBUG));
    kl_log_set_level(KL_LOG_ERROR);
    setenv("KINDLING_LOG_LEVEL", "info", 1);
    kl_log_init_from_env();
    cr_assert_not(kl_log_enabled(KL_LOG_INFO), "an explicit level wins over the environment");
}

static void long_line(void) {
    kl_log_set_json(false);
    kl_log_set_level(KL_LOG_WARN);
    char big[5000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    KL_WARN("big", "%s|end", big);
}

Test(log, long_messages_are_not_truncated) {
    char *out = capture_stderr(long_line);
    cr_assert_not_null(strstr(out, "|end\n"));
    cr_assert_gt(strlen(out), 5000);
    free(out);
}
