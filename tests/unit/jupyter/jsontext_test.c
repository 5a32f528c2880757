#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "jupyter/jsontext.h"

/* The wire writer must produce exactly what jansson's json_dumps would, so that signatures and
 * clients see the same text either way. */
static void same_as_jansson(json_t *v) {
    size_t len = 0;
    char *ours = kl_jsontext_dump(v, &len);
    char *theirs = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    cr_assert_not_null(ours);
    cr_assert_str_eq(ours, theirs);
    cr_assert_eq(len, strlen(theirs));
    free(ours);
    free(theirs);
    json_decref(v);
}

Test(jsontext, matches_json_dumps_on_every_kind) {
    same_as_jansson(json_pack("{s:s, s:i, s:b, s:n, s:f, s:[i, s, {}], s:{s:{s:[]}}}", "s", "text",
                              "i", -42, "b", 1, "n", "f", 2.5, "a", 1, "x", "o", "deep", "er"));
    same_as_jansson(json_integer(9007199254740993LL));
    same_as_jansson(json_real(1e300));
    same_as_jansson(json_real(3.0));
    same_as_jansson(json_string(""));
    same_as_jansson(json_array());
}

Test(jsontext, escapes_like_json_dumps) {
    same_as_jansson(json_string("quote \" backslash \\ slash / nl \n cr \r tab \t bs \b ff \f"));
    same_as_jansson(json_string("\x01\x1f\x7f control and DEL"));
    same_as_jansson(json_string("\xc3\xa9\xe6\xbc\xa2\xf0\x9f\x94\xa5 stays UTF-8"));
    same_as_jansson(json_stringn("nul\0inside", 10));
    same_as_jansson(json_pack("{s:s}", "k\"e\ny", "v"));
}

Test(jsontext, keeps_insertion_order) {
    json_t *o = json_object();
    const char *keys[] = {"zeta", "alpha", "mid", "beta"};
    for (int i = 0; i < 4; i++) json_object_set_new(o, keys[i], json_integer(i));
    char *text = kl_jsontext_dump(o, NULL);
    cr_assert_str_eq(text, "{\"zeta\":0,\"alpha\":1,\"mid\":2,\"beta\":3}");
    free(text);
    json_decref(o);
}

Test(jsontext, refuses_nesting_beyond_the_limit) {
    json_t *root = json_array(), *cur = root;
    for (int i = 0; i < KL_JSONTEXT_MAX_DEPTH + 5; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    cr_assert_null(kl_jsontext_dump(root, NULL));
    json_decref(root);
}
