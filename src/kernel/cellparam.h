/* SQL parameters of a cell: the typed value a `%set name=value` or `%%sql --param name=value` text
 * stands for, the `:name` markers a statement uses, and Toree's `${name}` turned into such a
 * marker. Values travel to Spark as literals of the SQL command's named arguments; nothing here
 * ever puts a value into SQL text (the kindling.sql comm types JSON values instead: see
 * kernel/sqlparams.h). Pure functions, any thread. */
#ifndef KL_KERNEL_CELLPARAM_H
#define KL_KERNEL_CELLPARAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    KL_PARAM_STRING = 0,
    KL_PARAM_LONG,
    KL_PARAM_DOUBLE,
    KL_PARAM_BOOLEAN,
} kl_param_kind;

typedef struct kl_param_value {
    kl_param_kind kind;
    int64_t l;
    double d;
    bool b;
    char *s; /* owned, KL_PARAM_STRING only */
} kl_param_value;

/* Types a value as written: an integer that fits 64 bits is a long; another decimal or
 * scientific number a double; true/false (any case) a boolean; text in single or double quotes
 * the string inside them (a doubled quote stands for one); anything else the string itself,
 * trimmed of surrounding blanks. 0, or -1 when out of memory. Free with kl_cellparam_value_free. */
int kl_cellparam_parse_value(const char *text, kl_param_value *out);
void kl_cellparam_value_free(kl_param_value *v);
const char *kl_cellparam_kind_name(kl_param_kind kind); /* "string", "long", ...; static */

/* A parameter name: a letter or '_', then letters, digits or '_' (Spark's marker syntax). */
bool kl_cellparam_valid_name(const char *name, size_t len);

/* Splits "name=value" (blanks around either side allowed) into malloc'd parts. 0; -1 when there
 * is no '=' or the name is not valid (*name and *value NULL); -2 when out of memory. */
int kl_cellparam_split_assignment(const char *text, char **name, char **value);

/* The next blank-separated word of *p, advancing *p past it; quoted runs ('...' or "...") belong
 * to the word with their quotes and may hold blanks. NULL at the end or when out of memory
 * (*oom set then). The word is malloc'd. */
char *kl_cellparam_next_word(const char **p, bool *oom);

/* Calls fn for every `:name` parameter marker of sql (outside string literals, quoted
 * identifiers and comments; not the `::` cast, not a colon glued to a preceding name), once per
 * occurrence, with the name's span. */
void kl_cellparam_markers(const char *sql, size_t len,
                          void (*fn)(const char *name, size_t len, void *arg), void *arg);

/* Toree's interpolation made safe: each `${name}` outside string literals, quoted identifiers
 * and comments for which known(name) holds becomes the marker `:name`; others are left for
 * Spark's own variable substitution. Returns the new text (malloc'd, NUL-terminated), or NULL
 * when out of memory. */
char *kl_cellparam_rewrite_braces(const char *sql, size_t len,
                                  bool (*known)(const char *name, size_t len, void *arg),
                                  void *arg);

#endif
