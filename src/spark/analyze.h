/* AnalyzePlan: what Spark can say about a query without running it (its plan, its schema), and
 * the schema shown as printSchema() shows it.
 *
 * The plan sent is always a SQL relation (Plan.root = Relation.sql). The server runs a command
 * (DDL, INSERT...) eagerly as soon as it turns such a relation into a Dataset, so callers must
 * send queries only. Coroutine functions, loop thread only, like every kl_spark_client call. */
#ifndef KL_SPARK_ANALYZE_H
#define KL_SPARK_ANALYZE_H

#include <stdbool.h>
#include <stddef.h>

#include "spark/client.h"

/* The wire values of AnalyzePlanRequest.Explain.ExplainMode. */
typedef enum {
    KL_EXPLAIN_SIMPLE = 1,
    KL_EXPLAIN_EXTENDED = 2,
    KL_EXPLAIN_CODEGEN = 3,
    KL_EXPLAIN_COST = 4,
    KL_EXPLAIN_FORMATTED = 5,
} kl_explain_mode;

/* "simple", "extended", ... (case-insensitive, len bytes) -> the mode, or 0 when not a mode. */
kl_explain_mode kl_spark_explain_mode_parse(const char *s, size_t len);
/* Lower-case name of a mode; "simple" for anything unknown. Static. */
const char *kl_spark_explain_mode_name(kl_explain_mode mode);

/* Coroutine: the explain string of a query in the given mode. 0 with *text (caller frees), or -1
 * with st set. opt may be NULL. */
int kl_spark_analyze_explain(kl_spark_client *c, const char *sql, kl_explain_mode mode,
                             const kl_grpc_call_opts *opt, char **text, kl_grpc_status *st);
/* Coroutine: the schema of a query. 0 with *resp (free with
 * protobuf_c_message_free_unpacked(&(*resp)->base, NULL)); the schema is (*resp)->schema->schema,
 * never NULL on success. -1 with st set. */
int kl_spark_analyze_schema(kl_spark_client *c, const char *sql, const kl_grpc_call_opts *opt,
                            Spark__Connect__AnalyzePlanResponse **resp, kl_grpc_status *st);
/* Coroutine: the server's own printSchema() text of a query. 0 with *text, or -1. */
int kl_spark_analyze_tree_string(kl_spark_client *c, const char *sql, const kl_grpc_call_opts *opt,
                                 char **text, kl_grpc_status *st);

/* Spark's DataType.typeName of t ("integer", "decimal(10,2)", "interval day to second", "string
 * collate UTF8_LCASE", ...) into buf (truncated, always NUL-terminated). */
void kl_spark_type_name(const Spark__Connect__DataType *t, char *buf, size_t len);
/* The schema (a struct type) as StructType.treeString prints it: "root\n |-- a: integer (nullable
 * = false)\n ...". Another type shows as one column named "value". NULL when out of memory;
 * caller frees. */
char *kl_spark_schema_tree(const Spark__Connect__DataType *schema);

#endif
