#include "spark/analyze.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const MODE_NAMES[] = {NULL,      "simple", "extended",
                                         "codegen", "cost",   "formatted"};

kl_explain_mode kl_spark_explain_mode_parse(const char *s, size_t len) {
    for (int m = KL_EXPLAIN_SIMPLE; m <= KL_EXPLAIN_FORMATTED; m++)
        if (strlen(MODE_NAMES[m]) == len && strncasecmp(MODE_NAMES[m], s, len) == 0)
            return (kl_explain_mode)m;
    return 0;
}

const char *kl_spark_explain_mode_name(kl_explain_mode mode) {
    return mode >= KL_EXPLAIN_SIMPLE && mode <= KL_EXPLAIN_FORMATTED ? MODE_NAMES[mode] : "simple";
}

/* ---- requests ----------------------------------------------------------------------------- */

/* The parts of a request whose plan is one SQL relation; they live on the caller's stack. */
typedef struct sql_plan {
    Spark__Connect__SQL sql;
    Spark__Connect__Relation rel;
    Spark__Connect__Plan plan;
} sql_plan;

static void sql_plan_init(sql_plan *p, const char *sql) {
    p->sql = (Spark__Connect__SQL)SPARK__CONNECT__SQL__INIT;
    p->sql.query = (char *)sql;
    p->rel = (Spark__Connect__Relation)SPARK__CONNECT__RELATION__INIT;
    p->rel.rel_type_case = SPARK__CONNECT__RELATION__REL_TYPE_SQL;
    p->rel.sql = &p->sql;
    p->plan = (Spark__Connect__Plan)SPARK__CONNECT__PLAN__INIT;
    p->plan.op_type_case = SPARK__CONNECT__PLAN__OP_TYPE_ROOT;
    p->plan.root = &p->rel;
}

static void malformed(kl_spark_client *c, kl_grpc_status *st) {
    kl_grpc_status_clear(st);
    st->code = KL_GRPC_INTERNAL;
    const char *ep = kl_grpc_channel_endpoint(kl_spark_client_channel(c));
    if (asprintf(&st->details, "unexpected AnalyzePlan response") < 0) st->details = NULL;
    if (asprintf(&st->message, "the server at %s sent an unexpected AnalyzePlan response",
                 ep ? ep : "?") < 0)
        st->message = NULL;
}

/* Coroutine: sends req and checks that the answer carries the result kind asked for. */
static int analyze(kl_spark_client *c, Spark__Connect__AnalyzePlanRequest *req, int want_case,
                   const kl_grpc_call_opts *opt, Spark__Connect__AnalyzePlanResponse **resp,
                   kl_grpc_status *st) {
    kl_spark_common cm;
    kl_spark_client_common(c, &cm);
    KL_SPARK_FILL_COMMON(*req, cm);
    ProtobufCMessage *m = NULL;
    *resp = NULL;
    if (kl_spark_client_unary(c, "AnalyzePlan", &req->base,
                              &spark__connect__analyze_plan_response__descriptor, opt, &m, st) != 0)
        return -1;
    Spark__Connect__AnalyzePlanResponse *r = (Spark__Connect__AnalyzePlanResponse *)m;
    kl_spark_client_observe(c, r->server_side_session_id);
    if ((int)r->result_case != want_case) {
        protobuf_c_message_free_unpacked(m, NULL);
        malformed(c, st);
        return -1;
    }
    *resp = r;
    return 0;
}

int kl_spark_analyze_explain(kl_spark_client *c, const char *sql, kl_explain_mode mode,
                             const kl_grpc_call_opts *opt, char **text, kl_grpc_status *st) {
    *text = NULL;
    sql_plan p;
    sql_plan_init(&p, sql);
    Spark__Connect__AnalyzePlanRequest__Explain ex =
        SPARK__CONNECT__ANALYZE_PLAN_REQUEST__EXPLAIN__INIT;
    ex.plan = &p.plan;
    ex.has_explain_mode = 1;
    ex.explain_mode =
        (Spark__Connect__AnalyzePlanRequest__Explain__ExplainMode)(mode >= KL_EXPLAIN_SIMPLE &&
                                                                           mode <=
                                                                               KL_EXPLAIN_FORMATTED
                                                                       ? mode
                                                                       : KL_EXPLAIN_SIMPLE);
    Spark__Connect__AnalyzePlanRequest req = SPARK__CONNECT__ANALYZE_PLAN_REQUEST__INIT;
    req.analyze_case = SPARK__CONNECT__ANALYZE_PLAN_REQUEST__ANALYZE_EXPLAIN;
    req.explain = &ex;
    Spark__Connect__AnalyzePlanResponse *r;
    if (analyze(c, &req, SPARK__CONNECT__ANALYZE_PLAN_RESPONSE__RESULT_EXPLAIN, opt, &r, st) != 0)
        return -1;
    const char *s = r->explain && r->explain->explain_string ? r->explain->explain_string : "";
    *text = strdup(s);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return *text ? 0 : -1;
}

int kl_spark_analyze_schema(kl_spark_client *c, const char *sql, const kl_grpc_call_opts *opt,
                            Spark__Connect__AnalyzePlanResponse **resp, kl_grpc_status *st) {
    sql_plan p;
    sql_plan_init(&p, sql);
    Spark__Connect__AnalyzePlanRequest__Schema sc =
        SPARK__CONNECT__ANALYZE_PLAN_REQUEST__SCHEMA__INIT;
    sc.plan = &p.plan;
    Spark__Connect__AnalyzePlanRequest req = SPARK__CONNECT__ANALYZE_PLAN_REQUEST__INIT;
    req.analyze_case = SPARK__CONNECT__ANALYZE_PLAN_REQUEST__ANALYZE_SCHEMA;
    req.schema = &sc;
    if (analyze(c, &req, SPARK__CONNECT__ANALYZE_PLAN_RESPONSE__RESULT_SCHEMA, opt, resp, st) != 0)
        return -1;
    if (!(*resp)->schema || !(*resp)->schema->schema) {
        protobuf_c_message_free_unpacked(&(*resp)->base, NULL);
        *resp = NULL;
        malformed(c, st);
        return -1;
    }
    return 0;
}

int kl_spark_analyze_tree_string(kl_spark_client *c, const char *sql, const kl_grpc_call_opts *opt,
                                 char **text, kl_grpc_status *st) {
    *text = NULL;
    sql_plan p;
    sql_plan_init(&p, sql);
    Spark__Connect__AnalyzePlanRequest__TreeString ts =
        SPARK__CONNECT__ANALYZE_PLAN_REQUEST__TREE_STRING__INIT;
    ts.plan = &p.plan;
    Spark__Connect__AnalyzePlanRequest req = SPARK__CONNECT__ANALYZE_PLAN_REQUEST__INIT;
    req.analyze_case = SPARK__CONNECT__ANALYZE_PLAN_REQUEST__ANALYZE_TREE_STRING;
    req.tree_string = &ts;
    Spark__Connect__AnalyzePlanResponse *r;
    if (analyze(c, &req, SPARK__CONNECT__ANALYZE_PLAN_RESPONSE__RESULT_TREE_STRING, opt, &r, st) !=
        0)
        return -1;
    const char *s =
        r->tree_string && r->tree_string->tree_string ? r->tree_string->tree_string : "";
    *text = strdup(s);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return *text ? 0 : -1;
}

/* ---- type names --------------------------------------------------------------------------- */

static const char *ym_field(int f) {
    return f == 0 ? "year" : f == 1 ? "month" : "unknown";
}

static const char *dt_field(int f) {
    static const char *const names[] = {"day", "hour", "minute", "second"};
    return f >= 0 && f <= 3 ? names[f] : "unknown";
}

/* "interval year", "interval day to second": how Spark names ANSI interval types. */
static void interval_name(char *buf, size_t len, const char *start, const char *end) {
    if (strcmp(start, end) == 0)
        snprintf(buf, len, "interval %s", start);
    else
        snprintf(buf, len, "interval %s to %s", start, end);
}

void kl_spark_type_name(const Spark__Connect__DataType *t, char *buf, size_t len) {
    if (!len) return;
    buf[0] = 0;
    if (!t) {
        snprintf(buf, len, "unknown");
        return;
    }
    switch (t->kind_case) {
    case SPARK__CONNECT__DATA_TYPE__KIND_NULL:
        snprintf(buf, len, "void");
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_BINARY:
        snprintf(buf, len, "binary");
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_BOOLEAN:
        snprintf(buf, len, "boolean");
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_BYTE:
        snprintf(buf, len, "byte");
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_SHORT:
        snprintf(buf, len, "short");
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_INTEGER:
        snprintf(buf, len, "integer");
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_LONG:
        snprintf(buf, len, "long");
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_FLOAT:
        snprintf(buf, len, "float");
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_DOUBLE:
        snprintf(buf, len, "double");
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_DECIMAL: {
        /* Absent fields mean Spark's default decimal(10,0). */
        const Spark__Connect__DataType__Decimal *d = t->decimal;
        int p = d && d->has_precision ? d->precision : 10;
        int s = d && d->has_scale ? d->scale : 0;
        snprintf(buf, len, "decimal(%d,%d)", p, s);
        break;
    }
    case SPARK__CONNECT__DATA_TYPE__KIND_STRING: {
        const char *coll = t->string ? t->string->collation : NULL;
        if (coll && *coll && strcasecmp(coll, "UTF8_BINARY") != 0)
            snprintf(buf, len, "string collate %s", coll);
        else
            snprintf(buf, len, "string");
        break;
    }
    case SPARK__CONNECT__DATA_TYPE__KIND_CHAR:
        snprintf(buf, len, "char(%d)", t->char_ ? t->char_->length : 0);
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_VAR_CHAR:
        snprintf(buf, len, "varchar(%d)", t->var_char ? t->var_char->length : 0);
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_DATE:
        snprintf(buf, len, "date");
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_TIMESTAMP:
        snprintf(buf, len, "timestamp");
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_TIMESTAMP_NTZ:
        snprintf(buf, len, "timestamp_ntz");
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_CALENDAR_INTERVAL:
        snprintf(buf, len, "interval");
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_YEAR_MONTH_INTERVAL: {
        const Spark__Connect__DataType__YearMonthInterval *y = t->year_month_interval;
        int s = y && y->has_start_field ? y->start_field : 0;
        int e = y && y->has_end_field ? y->end_field : 1;
        interval_name(buf, len, ym_field(s), ym_field(e));
        break;
    }
    case SPARK__CONNECT__DATA_TYPE__KIND_DAY_TIME_INTERVAL: {
        const Spark__Connect__DataType__DayTimeInterval *d = t->day_time_interval;
        int s = d && d->has_start_field ? d->start_field : 0;
        int e = d && d->has_end_field ? d->end_field : 3;
        interval_name(buf, len, dt_field(s), dt_field(e));
        break;
    }
    case SPARK__CONNECT__DATA_TYPE__KIND_ARRAY:
        snprintf(buf, len, "array");
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_STRUCT:
        snprintf(buf, len, "struct");
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_MAP:
        snprintf(buf, len, "map");
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_VARIANT:
        snprintf(buf, len, "variant");
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_UDT:
        if (t->udt && t->udt->sql_type)
            kl_spark_type_name(t->udt->sql_type, buf, len);
        else
            snprintf(buf, len, "udt");
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_UNPARSED:
        snprintf(buf, len, "%s",
                 t->unparsed && t->unparsed->data_type_string ? t->unparsed->data_type_string
                                                              : "unparsed");
        break;
    default:
        snprintf(buf, len, "unknown");
        break;
    }
}

/* ---- printSchema -------------------------------------------------------------------------- */

/* A field name as Spark prints it in a tree: control characters written as escapes. */
static void put_name(FILE *f, const char *name) {
    for (const char *p = name ? name : ""; *p; p++) {
        switch (*p) {
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        case '\f':
            fputs("\\f", f);
            break;
        case '\b':
            fputs("\\b", f);
            break;
        case '\v':
            fputs("\\v", f);
            break;
        case '\a':
            fputs("\\a", f);
            break;
        default:
            fputc(*p, f);
        }
    }
}

/* Depth is bounded by the decoder's nesting limit for protobuf messages, so recursion is safe. */
static void tree_children(FILE *f, const Spark__Connect__DataType *t, const char *prefix);

static void tree_line(FILE *f, const char *prefix, const char *name, bool escape,
                      const Spark__Connect__DataType *t, const char *suffix_fmt, int flag) {
    char type[256];
    kl_spark_type_name(t, type, sizeof type);
    fprintf(f, "%s-- ", prefix);
    if (escape)
        put_name(f, name);
    else
        fputs(name, f);
    fprintf(f, ": %s", type);
    if (suffix_fmt) fprintf(f, suffix_fmt, flag ? "true" : "false");
    fputc('\n', f);
    size_t n = strlen(prefix);
    char *deeper = malloc(n + 6);
    if (!deeper) return;
    memcpy(deeper, prefix, n);
    memcpy(deeper + n, "    |", 6);
    tree_children(f, t, deeper);
    free(deeper);
}

static void tree_children(FILE *f, const Spark__Connect__DataType *t, const char *prefix) {
    if (!t) return;
    switch (t->kind_case) {
    case SPARK__CONNECT__DATA_TYPE__KIND_STRUCT:
        for (size_t i = 0; t->struct_ && i < t->struct_->n_fields; i++) {
            const Spark__Connect__DataType__StructField *fl = t->struct_->fields[i];
            /* Upstream these are proto3 bools: absent means false. */
            tree_line(f, prefix, fl->name, true, fl->data_type, " (nullable = %s)", fl->nullable);
        }
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_ARRAY:
        if (t->array)
            tree_line(f, prefix, "element", false, t->array->element_type, " (containsNull = %s)",
                      t->array->contains_null);
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_MAP:
        if (t->map) {
            tree_line(f, prefix, "key", false, t->map->key_type, NULL, 0);
            tree_line(f, prefix, "value", false, t->map->value_type, " (valueContainsNull = %s)",
                      t->map->value_contains_null);
        }
        break;
    default:
        break;
    }
}

char *kl_spark_schema_tree(const Spark__Connect__DataType *schema) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    fputs("root\n", f);
    if (schema && schema->kind_case == SPARK__CONNECT__DATA_TYPE__KIND_STRUCT)
        tree_children(f, schema, " |");
    else if (schema)
        tree_line(f, " |", "value", false, schema, " (nullable = %s)", 1);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
