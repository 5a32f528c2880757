/* Spark errors as a client sees them: the gRPC status of a failed RPC, the google.rpc.ErrorInfo
 * packed in its grpc-status-details-bin trailer, and (Spark 4.0+) the FetchErrorDetails answer. */
#ifndef KL_SPARK_ERRORS_H
#define KL_SPARK_ERRORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kl_spark_error {
    int code;                 /* gRPC status code (13 INTERNAL for Spark errors) */
    char *message;            /* the server's message, or NULL */
    char *error_class;        /* e.g. "TABLE_OR_VIEW_NOT_FOUND", or NULL */
    char *sql_state;          /* e.g. "42P01", or NULL */
    char *exception;          /* ErrorInfo.reason, e.g. "org.apache.spark.sql.AnalysisException" */
    char *error_id;           /* key for FetchErrorDetails (4.0+), or NULL */
    char *message_parameters; /* JSON object text, or NULL */
    int64_t retry_delay_ms;   /* from google.rpc.RetryInfo; -1 when absent */
    /* Where in the query it went wrong (FetchErrorDetails QueryContext); -1 when unknown. Indices
     * count characters of the query, stop inclusive, as Spark reports them. */
    int context_start, context_stop;
} kl_spark_error;

void kl_spark_error_init(kl_spark_error *e);
/* Frees the strings; e can be reused after kl_spark_error_init. */
void kl_spark_error_free(kl_spark_error *e);

/* Fills e (initialised by the caller) from a finished RPC: status code, its message, and the raw
 * grpc-status-details-bin trailer (NULL/0 when absent). Undecodable details are ignored: the code
 * and message still describe the failure. */
void kl_spark_error_from_status(kl_spark_error *e, int code, const char *message,
                                const uint8_t *details, size_t len);
/* Adds what a packed FetchErrorDetailsResponse says about the root error: its full message, error
 * class, SQLSTATE and query context. 0, or -1 when resp does not decode. */
int kl_spark_error_add_details(kl_spark_error *e, const uint8_t *resp, size_t len);

/* The official clients' retry rule: UNAVAILABLE; INTERNAL whose message contains
 * INVALID_CURSOR.DISCONNECTED; any error that carries RetryInfo. */
bool kl_spark_error_retryable(const kl_spark_error *e);

/* A readable report, malloc'd (caller frees), lines separated by '\n': the error class and
 * SQLSTATE, the message, and when query is given and the context is known, the query line with
 * the failing fragment underlined by '^'. */
char *kl_spark_error_format(const kl_spark_error *e, const char *query);

#endif
