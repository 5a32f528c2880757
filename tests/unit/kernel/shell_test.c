/* The pure parts of the shell and session magics: UTF-8 boundaries of streamed output, which
 * environment variables %env hides, wall-time text, and %history's options and listing. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/magics/shell.h"

Test(shell_utf8, complete_text_is_ready) {
    cr_expect_eq(kl_shell_utf8_ready("abc", 3), 3);
    cr_expect_eq(kl_shell_utf8_ready("", 0), 0);
    cr_expect_eq(kl_shell_utf8_ready("a\xc3\xa9", 3), 3);         /* é */
    cr_expect_eq(kl_shell_utf8_ready("\xe2\x82\xac", 3), 3);      /* € */
    cr_expect_eq(kl_shell_utf8_ready("x\xf0\x9f\x94\xa5", 5), 5); /* 🔥 */
}

Test(shell_utf8, an_unfinished_character_waits) {
    cr_expect_eq(kl_shell_utf8_ready("a\xc3", 2), 1);
    cr_expect_eq(kl_shell_utf8_ready("a\xe2\x82", 3), 1);
    cr_expect_eq(kl_shell_utf8_ready("a\xe2", 2), 1);
    cr_expect_eq(kl_shell_utf8_ready("ab\xf0\x9f\x94", 5), 2);
    cr_expect_eq(kl_shell_utf8_ready("\xf0", 1), 0);
}

Test(shell_utf8, invalid_bytes_are_not_held_back) {
    /* Never the start of a valid sequence: sent (and repaired) at once. */
    cr_expect_eq(kl_shell_utf8_ready("a\xff", 2), 2);
    cr_expect_eq(kl_shell_utf8_ready("a\xc0", 2), 2);
    cr_expect_eq(kl_shell_utf8_ready("a\xf8", 2), 2);
    cr_expect_eq(kl_shell_utf8_ready("\x80\x80\x80\x80", 4), 4);
}

Test(shell_env, secret_names) {
    cr_expect(kl_shell_env_is_secret("GITHUB_TOKEN"));
    cr_expect(kl_shell_env_is_secret("aws_secret_access_key"));
    cr_expect(kl_shell_env_is_secret("DB_PASSWORD"));
    cr_expect(kl_shell_env_is_secret("PGPASSWD"));
    cr_expect(kl_shell_env_is_secret("API_KEY"));
    cr_expect(kl_shell_env_is_secret("Keyring"));
    cr_expect_not(kl_shell_env_is_secret("HOME"));
    cr_expect_not(kl_shell_env_is_secret("PATH"));
    cr_expect_not(kl_shell_env_is_secret("SPARK_REMOTE"));
}

Test(shell_time, three_significant_digits) {
    char buf[32];
    kl_shell_format_duration(1.234, buf, sizeof buf);
    cr_expect_str_eq(buf, "1.23 s");
    kl_shell_format_duration(12.345, buf, sizeof buf);
    cr_expect_str_eq(buf, "12.3 s");
    kl_shell_format_duration(1234.4, buf, sizeof buf);
    cr_expect_str_eq(buf, "1234 s");
    kl_shell_format_duration(0.5121, buf, sizeof buf);
    cr_expect_str_eq(buf, "512 ms");
    kl_shell_format_duration(0.0000123, buf, sizeof buf);
    cr_expect_str_eq(buf, "12.3 \xc2\xb5s");
}

Test(shell_history, options) {
    kl_history_args a;
    char err[128];
    cr_assert_eq(kl_shell_history_parse("", &a, err, sizeof err), 0);
    cr_expect_eq(a.n, 100);
    cr_expect_not(a.global);
    cr_expect_null(a.pattern);
    cr_assert_eq(kl_shell_history_parse("-n 5 -g select  *", &a, err, sizeof err), 0);
    cr_expect_eq(a.n, 5);
    cr_expect(a.global);
    cr_expect_str_eq(a.pattern, "*select **");
    free(a.pattern);
    cr_assert_eq(kl_shell_history_parse("FROM t -n 2", &a, err, sizeof err), 0);
    cr_expect_eq(a.n, 2);
    cr_expect_str_eq(a.pattern, "*FROM t*");
    free(a.pattern);
}

Test(shell_history, bad_options) {
    kl_history_args a;
    char err[128];
    cr_expect_eq(kl_shell_history_parse("-n", &a, err, sizeof err), -1);
    cr_expect_str_eq(err, "-n takes a number of entries from 1 to 100000");
    cr_expect_eq(kl_shell_history_parse("-n 0", &a, err, sizeof err), -1);
    cr_expect_eq(kl_shell_history_parse("-n 3x", &a, err, sizeof err), -1);
    cr_expect_eq(kl_shell_history_parse("-x", &a, err, sizeof err), -1);
    cr_expect_str_eq(err, "unknown option -x (usage: %history [-n N] [-g] [PATTERN])");
}

Test(shell_history, listing) {
    json_t *e = json_pack("[[i,i,s],[i,i,s],[i,i,n],[i,i,s]]", 7, 1, "SELECT 1", 7, 12,
                          "%%sql\nSELECT 2\n", 7, 13, 3, 2, "%lsmagic");
    char *text = kl_shell_history_format(e, 7, false);
    cr_expect_str_eq(text, "   1: SELECT 1\n"
                           "  12: %%sql\n"
                           "      SELECT 2\n"
                           "3/2: %lsmagic\n");
    free(text);
    text = kl_shell_history_format(e, 7, true);
    cr_expect_str_eq(text, "7/1: SELECT 1\n"
                           "7/12: %%sql\n"
                           "      SELECT 2\n"
                           "3/2: %lsmagic\n");
    free(text);
    json_decref(e);
}
