/* A fast path for parsing the JSON frames of incoming messages into jansson values. It takes the
 * JSON that Jupyter messages almost always are (objects, arrays, plain strings with the common
 * escapes, integers, literals) in one pass without jansson's character-stream lexer, and leaves
 * everything else to json_loadb, so that jansson stays the reference for every error and every
 * rarer form (\u escapes, numbers with a fraction or an exponent, huge integers). */
#ifndef KL_JUPYTER_JSONREAD_H
#define KL_JUPYTER_JSONREAD_H

#include <jansson.h>
#include <stddef.h>

/* The value of the JSON text s[0..len) (a new reference), exactly what json_loadb(s, len,
 * JSON_DECODE_ANY) would return; or NULL when the text is outside the fast path or nested deeper
 * than max_depth, or memory ran out: then the caller parses it with jansson, which also reports
 * what is wrong. */
json_t *kl_jsonread_parse(const char *s, size_t len, int max_depth);

#endif
