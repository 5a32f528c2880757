/* The fast JSON reader must return exactly what jansson returns, or leave the text to jansson. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "jupyter/jsonread.h"

/* Parses text with both; when the fast reader takes it, both values must be equal. Returns
 * whether the fast reader took it. */
static bool agrees(const char *text, size_t len) {
    json_error_t e;
    json_t *ref = json_loadb(text, len, JSON_DECODE_ANY, &e);
    json_t *ours = kl_jsonread_parse(text, len, 128);
    if (ours) {
        cr_assert_not_null(ref, "fast reader took what jansson refuses: %.*s", (int)len, text);
        cr_assert(json_equal(ours, ref), "different values for %.*s", (int)len, text);
        /* json_equal ignores key order; the wire writer keeps it, so it must match too. */
        char *a = json_dumps(ours, JSON_ENCODE_ANY | JSON_COMPACT);
        char *b = json_dumps(ref, JSON_ENCODE_ANY | JSON_COMPACT);
        cr_assert_str_eq(a, b);
        free(a);
        free(b);
    }
    bool took = ours != NULL;
    json_decref(ours);
    json_decref(ref);
    return took;
}

static bool agrees_str(const char *text) {
    return agrees(text, strlen(text));
}

Test(jsonread, takes_what_jupyter_messages_are_made_of) {
    static const char *const texts[] = {
        "{}",
        "[]",
        " { } ",
        "{\"msg_id\":\"a-b\",\"msg_type\":\"kernel_info_request\",\"session\":\"s\","
        "\"username\":\"u\",\"date\":\"2024-01-02T03:04:05.000006Z\",\"version\":\"5.4\"}",
        "{\"msg_id\": \"m1\", \"msg_type\": \"execute_request\", \"session\": \"s1\", "
        "\"username\": \"\xc3\xbc\", \"version\": \"5.4\"}",
        "{\"code\":\"SELECT 1;\\nSELECT \\\"x\\\" \\\\ \\/ \\t\\r\\b\\f\",\"silent\":false,"
        "\"store_history\":true,\"user_expressions\":{},\"allow_stdin\":true,"
        "\"stop_on_error\":true,\"n\":null}",
        "{\"a\":[1,-2,0,-0,123456789012345678,[],[{}],{\"b\":{\"c\":[true,false,null]}}]}",
        "\n\t{\"k\" : [ 1 , 2 ] ,\r\n \"\" : \"\" }\n",
        "\"top-level string\"",
        "42",
        "true",
        "null",
        "{\"dup\":1,\"other\":2,\"dup\":3}",
        "{\"\xe6\xbc\xa2\xf0\x9f\x94\xa5\":\"\xe2\x82\xac\xf4\x8f\xbf\xbf\xee\x80\x80\"}",
        "{\"esc\\\"key\\n\":1}",
        "[\"\x7f\"]",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        cr_assert(agrees_str(texts[i]), "fast reader left to jansson: %s", texts[i]);
}

Test(jsonread, leaves_the_rest_to_jansson) {
    static const char *const texts[] = {
        "",
        " ",
        "{",
        "}",
        "{\"a\":1,}",
        "[1,]",
        "{\"a\" 1}",
        "{a:1}",
        "{\"a\":1}x",
        "{\"a\":1} {}",
        "\"unterminated",
        "\"\\u00e9\"",
        "\"\\ud83d\\udd25\"",
        "\"\\x\"",
        "\"tab\tinside\"",
        "1.5",
        "1e3",
        "-",
        "01",
        "-01",
        "1234567890123456789",
        "99999999999999999999",
        "tru",
        "truex",
        "nul",
        "[1 2]",
        "{\"a\":1 \"b\":2}",
        "\"\xc0\xaf\"",         /* overlong */
        "\"\xed\xa0\x80\"",     /* surrogate */
        "\"\xf4\x90\x80\x80\"", /* above U+10FFFF */
        "\"\xe2\x82\"",         /* truncated */
        "\"\x80\"",             /* stray continuation */
        "\"\xf5\x80\x80\x80\"",
        "NaN",
        "[-]",
        "{\"a\":tru}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        cr_assert_not(agrees_str(texts[i]), "fast reader took: %s", texts[i]);
    cr_assert_not(agrees("\"nul\0inside\"", 12));
    cr_assert_not(agrees("{\"a\":1}\0", 8));
}

Test(jsonread, gives_up_beyond_the_depth_limit) {
    char deep[300];
    memset(deep, '[', 130);
    memset(deep + 130, ']', 130);
    cr_assert_null(kl_jsonread_parse(deep, 260, 128));
    json_t *v = kl_jsonread_parse(deep + 2, 256, 128);
    cr_assert_not_null(v, "128 levels are within the limit");
    json_decref(v);
}

Test(jsonread, long_escaped_strings_and_keys) {
    size_t n = 5000;
    char *text = malloc(n * 2 + 16);
    size_t o = 0;
    text[o++] = '{';
    text[o++] = '"';
    for (size_t i = 0; i < 700; i++) {
        text[o++] = '\\';
        text[o++] = 'n';
    }
    memcpy(text + o, "\":\"", 3);
    o += 3;
    for (size_t i = 0; i < 1500; i++) {
        text[o++] = i % 3 ? 'x' : '\\';
        if (i % 3 == 0) text[o++] = 't';
    }
    text[o++] = '"';
    text[o++] = '}';
    cr_assert(agrees(text, o));
    free(text);
}

/* Mutations of valid messages: every byte flipped to characters that matter to the grammar, and
 * every prefix. Whatever the fast reader takes must equal jansson's result. */
Test(jsonread, mutations_agree_with_jansson) {
    static const char base[] =
        "{\"header\":{\"msg_id\":\"x\",\"n\":-12,\"t\":true},\"list\":[1,\"a\\n\",null,{}],"
        "\"u\":\"\xc3\xa9\xe2\x82\xac\"}";
    static const char subst[] = "{}[]\",:\\ -0123456789.eEtfnu\x80\xc3\xff\x01";
    size_t n = sizeof base - 1;
    char buf[sizeof base];
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < sizeof subst - 1; j++) {
            memcpy(buf, base, n);
            buf[i] = subst[j];
            agrees(buf, n);
        }
        agrees(base, i);
    }
    cr_assert(agrees(base, n));
}
