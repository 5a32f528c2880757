#include "spark/errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spark/proto/kindling_rpc_status.pb-c.h"
#include "spark/proto/kindling_spark_connect.pb-c.h"

#define GRPC_INTERNAL    13
#define GRPC_UNAVAILABLE 14

void kl_spark_error_init(kl_spark_error *e) {
    memset(e, 0, sizeof *e);
    e->retry_delay_ms = -1;
    e->context_start = e->context_stop = -1;
}

void kl_spark_error_free(kl_spark_error *e) {
    free(e->message);
    free(e->error_class);
    free(e->sql_state);
    free(e->exception);
    free(e->error_id);
    free(e->message_parameters);
    kl_spark_error_init(e);
}

/* Replaces *dst with a copy of src when src says something. */
static void set(char **dst, const char *src) {
    if (!src || !*src) return;
    char *copy = strdup(src);
    if (!copy) return;
    free(*dst);
    *dst = copy;
}

static bool type_is(const char *type_url, const char *name) {
    const char *slash = type_url ? strrchr(type_url, '/') : NULL;
    return slash && strcmp(slash + 1, name) == 0;
}

static void read_error_info(kl_spark_error *e, const Google__Rpc__Any *any) {
    Google__Rpc__ErrorInfo *info =
        google__rpc__error_info__unpack(NULL, any->value.len, any->value.data);
    if (!info) return;
    set(&e->exception, info->reason);
    for (size_t i = 0; i < info->n_metadata; i++) {
        const char *k = info->metadata[i]->key, *v = info->metadata[i]->value;
        if (!k) continue;
        if (strcmp(k, "errorClass") == 0)
            set(&e->error_class, v);
        else if (strcmp(k, "sqlState") == 0)
            set(&e->sql_state, v);
        else if (strcmp(k, "errorId") == 0)
            set(&e->error_id, v);
        else if (strcmp(k, "messageParameters") == 0)
            set(&e->message_parameters, v);
    }
    google__rpc__error_info__free_unpacked(info, NULL);
}

static void read_retry_info(kl_spark_error *e, const Google__Rpc__Any *any) {
    Google__Rpc__RetryInfo *r =
        google__rpc__retry_info__unpack(NULL, any->value.len, any->value.data);
    if (!r) return;
    int64_t ms = 0;
    if (r->retry_delay) ms = r->retry_delay->seconds * 1000 + r->retry_delay->nanos / 1000000;
    e->retry_delay_ms = ms < 0 ? 0 : ms;
    google__rpc__retry_info__free_unpacked(r, NULL);
}

/* Length of the error class in "[CLASS.SUBCLASS]" at p, or 0. */
static size_t class_len(const char *p) {
    if (p[0] != '[' || !(p[1] >= 'A' && p[1] <= 'Z')) return 0;
    size_t n = 1;
    while ((p[n] >= 'A' && p[n] <= 'Z') || (p[n] >= '0' && p[n] <= '9') || p[n] == '_' ||
           p[n] == '.')
        n++;
    if (p[n] != ']' || n - 1 > 128 || p[n - 1] == '.') return 0;
    return n - 1;
}

/* Spark 3.5 sends the error class only inside the message (4.0+ also as ErrorInfo metadata): at
 * its start ("[CLASS.SUBCLASS] text", perhaps after a newline), or, when a job failed, after the
 * exception that failed its task ("Job aborted due to stage failure: ... (executor driver):
 * org.apache.spark.SparkArithmeticException: [DIVIDE_BY_ZERO] Division by zero ...", followed by
 * the task's Java stack trace). For the user the error is then the task's own, as a 4.0 server
 * reports it: that text, without the job's preamble and the stack frames. */
static void class_from_message(kl_spark_error *e) {
    const char *m = e->message;
    if (!m) return;
    const char *at = m;
    while (*at == ' ' || *at == '\n' || *at == '\r' || *at == '\t') at++;
    size_t n = class_len(at);
    const char *text = m;
    if (!n) {
        static const char marker[] = "Exception: [";
        for (const char *q = m; (q = strstr(q, marker)); q += sizeof marker - 1)
            if ((n = class_len(q + sizeof marker - 2))) {
                at = text = q + sizeof marker - 2;
                break;
            }
    }
    if (!n) return;
    char *cls = strndup(at + 1, n);
    if (!cls) return;
    free(e->error_class);
    e->error_class = cls;
    const char *frames = strstr(text, "\n\tat ");
    if (text == m && !frames) return;
    size_t keep = frames ? (size_t)(frames - text) : strlen(text);
    while (keep && (text[keep - 1] == '\n' || text[keep - 1] == ' ' || text[keep - 1] == '\r'))
        keep--;
    char *shorter = strndup(text, keep);
    if (!shorter) return;
    free(e->message);
    e->message = shorter;
}

void kl_spark_error_from_status(kl_spark_error *e, int code, const char *message,
                                const uint8_t *details, size_t len) {
    e->code = code;
    set(&e->message, message);
    if (!details || !len) return;
    Google__Rpc__Status *st = google__rpc__status__unpack(NULL, len, details);
    if (!st) return;
    /* The trailer's message is the full one when the status line had to be shortened. */
    set(&e->message, st->message);
    bool spark_error = false;
    for (size_t i = 0; i < st->n_details; i++) {
        const Google__Rpc__Any *any = st->details[i];
        if (type_is(any->type_url, "google.rpc.ErrorInfo")) {
            read_error_info(e, any);
            spark_error = true;
        } else if (type_is(any->type_url, "google.rpc.RetryInfo")) {
            read_retry_info(e, any);
        }
    }
    google__rpc__status__free_unpacked(st, NULL);
    /* Only a message that came with Spark's ErrorInfo is trusted to name an error class. */
    if (spark_error && !e->error_class) class_from_message(e);
}

int kl_spark_error_add_details(kl_spark_error *e, const uint8_t *resp, size_t len) {
    Spark__Connect__FetchErrorDetailsResponse *r =
        spark__connect__fetch_error_details_response__unpack(NULL, len, resp);
    if (!r) return -1;
    size_t root = r->has_root_error_idx ? (size_t)r->root_error_idx : 0;
    if (root < r->n_errors) {
        const Spark__Connect__FetchErrorDetailsResponse__Error *err = r->errors[root];
        set(&e->message, err->message);
        if (err->n_error_type_hierarchy) set(&e->exception, err->error_type_hierarchy[0]);
        const Spark__Connect__FetchErrorDetailsResponse__SparkThrowable *t = err->spark_throwable;
        if (t) {
            set(&e->error_class, t->error_class);
            set(&e->sql_state, t->sql_state);
            for (size_t i = 0; i < t->n_query_contexts; i++) {
                const Spark__Connect__FetchErrorDetailsResponse__QueryContext *q =
                    t->query_contexts[i];
                if (q->has_start_index && q->has_stop_index && q->start_index >= 0 &&
                    q->stop_index >= q->start_index) {
                    e->context_start = q->start_index;
                    e->context_stop = q->stop_index;
                    break;
                }
            }
        }
    }
    spark__connect__fetch_error_details_response__free_unpacked(r, NULL);
    return 0;
}

bool kl_spark_error_retryable(const kl_spark_error *e) {
    if (e->code == GRPC_UNAVAILABLE || e->retry_delay_ms >= 0) return true;
    return e->code == GRPC_INTERNAL && e->message &&
           strstr(e->message, "INVALID_CURSOR.DISCONNECTED") != NULL;
}

/* Byte offset of character n in UTF-8 text (clamped to its end). */
static size_t char_to_byte(const char *s, size_t n) {
    size_t i = 0;
    for (; s[i] && n; i++)
        if (((unsigned char)s[i + 1] & 0xC0) != 0x80) n--;
    return i;
}

static size_t chars_between(const char *from, const char *to) {
    size_t n = 0;
    for (const char *p = from; p < to; p++)
        if (((unsigned char)*p & 0xC0) != 0x80) n++;
    return n;
}

typedef struct text {
    char *s;
    size_t len;
    FILE *f;
} text;

char *kl_spark_error_format(const kl_spark_error *e, const char *query) {
    text t = {0};
    t.f = open_memstream(&t.s, &t.len);
    if (!t.f) return NULL;
    if (e->error_class)
        fprintf(t.f, "%s%s%s%s\n", e->error_class, e->sql_state ? " (SQLSTATE " : "",
                e->sql_state ? e->sql_state : "", e->sql_state ? ")" : "");
    fprintf(t.f, "%s", e->message ? e->message : "the Spark Connect call failed");
    if (query && e->context_start >= 0) {
        size_t qlen = strlen(query);
        size_t start = char_to_byte(query, (size_t)e->context_start);
        size_t stop = char_to_byte(query, (size_t)e->context_stop);
        if (start < qlen) {
            /* Show only the line that holds the fragment, and underline the part of it on that
             * line: multi-line fragments get their first line marked. */
            size_t line_start = start, line_end = start;
            while (line_start > 0 && query[line_start - 1] != '\n') line_start--;
            while (line_end < qlen && query[line_end] != '\n') line_end++;
            if (stop >= line_end) stop = line_end ? line_end - 1 : 0;
            size_t lineno = 1;
            for (size_t i = 0; i < line_start; i++) lineno += query[i] == '\n';
            fprintf(t.f, "\n\n== SQL (line %zu, position %zu) ==\n%.*s\n", lineno,
                    chars_between(query + line_start, query + start) + 1,
                    (int)(line_end - line_start), query + line_start);
            size_t pad = chars_between(query + line_start, query + start);
            size_t width = chars_between(query + start, query + stop) + 1;
            for (size_t i = 0; i < pad; i++) fputc(' ', t.f);
            for (size_t i = 0; i < width; i++) fputc('^', t.f);
        }
    }
    fclose(t.f);
    return t.s;
}
