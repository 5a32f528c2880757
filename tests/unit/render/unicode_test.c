/* Cell text measurement and cutting in both width modes, UTF-8 repair and Spark's escapes. */
#include <criterion/criterion.h>
#include <string.h>

#include "render/unicode.h"

static char *take(kl_render_buf *b) {
    char *s = kl_render_buf_take(b, NULL);
    cr_assert_not_null(s);
    return s;
}

static char *truncated(const char *s, size_t limit, kl_width_mode mode) {
    kl_render_buf b;
    kl_render_buf_init(&b);
    kl_unicode_append_truncated(&b, s, strlen(s), limit, mode);
    return take(&b);
}

Test(unicode, spark_widths_follow_utils_string_half_width) {
    /* UTF-16 length plus one per character in Spark's full-width ranges. */
    cr_expect_eq(kl_unicode_width("abc", 3, KL_WIDTH_SPARK), 3);
    cr_expect_eq(kl_unicode_width("中文字", 9, KL_WIDTH_SPARK), 6);
    cr_expect_eq(kl_unicode_width("e\xCC\x81", 3, KL_WIDTH_SPARK), 2);        /* e + U+0301 */
    cr_expect_eq(kl_unicode_width("\xF0\x9F\x98\x80", 4, KL_WIDTH_SPARK), 2); /* U+1F600 */
    cr_expect_eq(kl_unicode_width("\xEF\xBD\xB6", 3, KL_WIDTH_SPARK), 1);     /* half-width kana */
    cr_expect_eq(kl_unicode_width("\xE3\x80\x80", 3, KL_WIDTH_SPARK), 2);     /* U+3000 */
}

Test(unicode, display_widths_count_columns) {
    cr_expect_eq(kl_unicode_width("e\xCC\x81t\xC3\xA9", 6, KL_WIDTH_DISPLAY), 3);
    cr_expect_eq(kl_unicode_width("中文字", 9, KL_WIDTH_DISPLAY), 6);
    cr_expect_eq(kl_unicode_width("\xF0\x9F\x98\x80", 4, KL_WIDTH_DISPLAY), 2);
    cr_expect_eq(kl_unicode_width("\xF0\xA0\x80\x80", 4, KL_WIDTH_DISPLAY), 2); /* U+20000 */
    cr_expect_eq(kl_unicode_width("\xE2\x80\x8B", 3, KL_WIDTH_DISPLAY), 0);     /* ZWSP */
    cr_expect_eq(kl_unicode_width("\xEF\xBD\xB6", 3, KL_WIDTH_DISPLAY), 1);
}

Test(unicode, truncation_like_spark) {
    char *s = truncated("exactly twenty chars", 20, KL_WIDTH_SPARK);
    cr_expect_str_eq(s, "exactly twenty chars");
    free(s);
    s = truncated("twenty-one characters", 20, KL_WIDTH_SPARK);
    cr_expect_str_eq(s, "twenty-one charac...");
    free(s);
    s = truncated("abcd", 3, KL_WIDTH_SPARK); /* below 4: no dots */
    cr_expect_str_eq(s, "abc");
    free(s);
    /* A cut through a surrogate pair leaves Java's lone surrogate, encoded as '?'. */
    s = truncated("ab\xF0\x9F\x98\x80zzzz", 6, KL_WIDTH_SPARK);
    cr_expect_str_eq(s, "ab?...");
    free(s);
    /* Spark counts the combining mark as a character of its own. */
    s = truncated("cafe\xCC\x81 cre\xCC\x80me", 8, KL_WIDTH_SPARK);
    cr_expect_str_eq(s, "cafe\xCC\x81...");
    free(s);
}

Test(unicode, display_truncation_keeps_marks_with_their_base) {
    char *s = truncated("e\xCC\x81"
                        "e\xCC\x81"
                        "e\xCC\x81"
                        "e\xCC\x81"
                        "e\xCC\x81",
                        4, KL_WIDTH_DISPLAY);
    cr_expect_str_eq(s, "e\xCC\x81...");
    free(s);
    s = truncated("中文中文中文", 7, KL_WIDTH_DISPLAY); /* 4 columns kept: two characters */
    cr_expect_str_eq(s, "中文...");
    free(s);
    s = truncated("中文中", 6, KL_WIDTH_DISPLAY);
    cr_expect_str_eq(s, "中文中");
    free(s);
}

Test(unicode, repair_replaces_maximal_subparts) {
    kl_render_buf b;
    kl_render_buf_init(&b);
    /* C3 alone, E2 82 (truncated 3-byte), FF, ED A0 80 (a surrogate: three errors), F0 9F 98 */
    const uint8_t in[] = {'a',  0xC3, 'b',  0xE2, 0x82, 'c', 0xFF,
                          0xED, 0xA0, 0x80, 0xF0, 0x9F, 0x98};
    kl_unicode_append_repaired(&b, in, sizeof in);
    char *s = take(&b);
    cr_expect_str_eq(s, "a\xEF\xBF\xBD"
                        "b\xEF\xBF\xBD"
                        "c\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                        "\xEF\xBF\xBD\xEF\xBF\xBD");
    free(s);
    kl_unicode_append_repaired(&b, (const uint8_t *)"ok \xE2\x82\xAC", 6);
    s = take(&b);
    cr_expect_str_eq(s, "ok \xE2\x82\xAC");
    free(s);
}

Test(unicode, escapes_like_escape_meta_characters) {
    kl_render_buf b;
    kl_render_buf_init(&b);
    const char in[] = "a\nb\rc\td\fe\bf\vg\ah\\";
    kl_unicode_append_escaped(&b, in, sizeof in - 1);
    char *s = take(&b);
    cr_expect_str_eq(s, "a\\nb\\rc\\td\\fe\\bf\\vg\\ah\\");
    free(s);
}

Test(unicode, prefix_ends_on_a_character) {
    cr_expect_eq(kl_unicode_prefix("中文", 6, 4), 3);
    cr_expect_eq(kl_unicode_prefix("中文", 6, 6), 6);
    cr_expect_eq(kl_unicode_prefix("ab", 2, 10), 2);
    cr_expect_eq(kl_unicode_prefix("\xF0\x9F\x98\x80", 4, 3), 0);
}
