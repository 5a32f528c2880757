/* Parameterised SQL for the kindling.sql comm: one statement with parameter markers (":name" or
 * "?"), parsed once per comm, and the values of each call bound as typed Spark Connect literals
 * (SQL relation named_arguments / pos_arguments, and the older args / pos_args so that a 3.5
 * server binds them too). Values never become SQL text.
 *
 *   JSON value       literal          msgpack value          literal
 *   integer          long (bigint)    int (up to 2^63-1)     long
 *   real             double           uint above 2^63-1      decimal(20,0)
 *   string           string           float 32 / float 64    float / double
 *   true / false     boolean          str                    string (must be valid UTF-8)
 *   null             NULL (void)      bin                    binary
 *                                     bool, nil              boolean, NULL
 *                                     ext -1 (timestamp)     timestamp (microseconds; finer
 *                                                            digits are cut toward the past)
 * Arrays, objects, maps and other ext types are refused. */
#ifndef KL_KERNEL_SQLPARAMS_H
#define KL_KERNEL_SQLPARAMS_H

#include <jansson.h>
#include <stddef.h>

#include "spark/proto/kindling_spark_connect.pb-c.h"

typedef struct kl_sqlstmt {
    char *text;          /* the statement, trimmed, without a final ';' */
    char **names;        /* distinct named markers in order of first use (without ':') */
    size_t n_names;      /* ... how many */
    size_t n_positional; /* '?' markers */
} kl_sqlstmt;

/* Parses one statement. 0, or -1 with a message in err (empty text, more than one statement,
 * named and positional markers mixed) or -ENOMEM. */
int kl_sqlstmt_parse(const char *sql, size_t len, kl_sqlstmt *out, char *err, size_t errlen);
void kl_sqlstmt_free(kl_sqlstmt *s);

typedef enum {
    KL_SQLBIND_OK = 0,
    KL_SQLBIND_INVALID = -1, /* params of the wrong shape or a value that cannot be bound */
    KL_SQLBIND_UNBOUND = -2, /* a marker of the statement has no value */
    KL_SQLBIND_NOMEM = -3,
} kl_sqlbind_rc;

/* One call's values and the SQL relation that carries them; owns every protobuf object. */
typedef struct kl_sqlbind kl_sqlbind;

/* Binds params (NULL, an object for named markers or an array for positional ones) to stmt
 * (borrowed: it must outlive the binding). Returns KL_SQLBIND_OK with *out, or an error with *out
 * NULL and a message naming the problem in err. */
kl_sqlbind_rc kl_sqlbind_json(const kl_sqlstmt *stmt, const json_t *params, kl_sqlbind **out,
                              char *err, size_t errlen);
/* The same from one msgpack document holding a map (named) or an array (positional). */
kl_sqlbind_rc kl_sqlbind_msgpack(const kl_sqlstmt *stmt, const void *data, size_t len,
                                 kl_sqlbind **out, char *err, size_t errlen);
/* The SQL relation to execute (borrowed from b). */
Spark__Connect__Relation *kl_sqlbind_relation(kl_sqlbind *b);
/* The value bound to the statement's i-th parameter (borrowed from b): stmt->names[i] for named
 * markers (the last value given under that name, as Spark's map keeps it), the i-th value for
 * positional ones. NULL when i is out of range. */
Spark__Connect__Expression *kl_sqlbind_value(kl_sqlbind *b, const kl_sqlstmt *stmt, size_t i);
void kl_sqlbind_free(kl_sqlbind *b);

#endif
