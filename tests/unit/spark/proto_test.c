/* Kindling's Spark Connect .proto subset, checked two ways: messages built with the protobuf-c API
 * survive pack/unpack, and bytes serialised by the real PySpark client classes
 * (tests/data/gen_proto_vectors.py -> tests/data/proto/<name>.hex) decode to the values listed in
 * <name>.json. The second kind is what pins our field numbers to the official ones. */
#include <criterion/criterion.h>

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spark/proto/kindling_rpc_status.pb-c.h"
#include "spark/proto/kindling_spark_connect.pb-c.h"

#include "hexfile.h"

#define VECTOR(name) KL_TEST_DATA "/proto/" name

/* ---- Reading the vectors -------------------------------------------------------------------- */

/* The expectation files are flat JSON objects whose values are strings, numbers or booleans;
 * a few lines of parsing spare the test a JSON library. Every key must be checked by the test
 * (expect_done), so an expectation added to the generator cannot be silently ignored. */
typedef struct {
    char *key;
    char *val; /* strings unescaped; others as written */
    bool is_str, used;
} expect_item;

static expect_item items[128];
static size_t n_items;
static const char *expect_path;

static char *parse_str(const char **p) {
    cr_assert_eq(**p, '"', "%s: expected a string at %.20s", expect_path, *p);
    (*p)++;
    char *out = malloc(strlen(*p) + 1), *o = out;
    while (**p != '"') {
        cr_assert(**p != '\0', "%s: unterminated string", expect_path);
        if (**p == '\\') {
            (*p)++;
            switch (**p) {
            case 'n':
                *o++ = '\n';
                break;
            case '"':
            case '\\':
            case '/':
                *o++ = **p;
                break;
            default:
                cr_assert_fail("%s: unsupported escape \\%c", expect_path, **p);
            }
            (*p)++;
        } else {
            *o++ = *(*p)++;
        }
    }
    (*p)++;
    *o = '\0';
    return out;
}

static void skip_ws(const char **p) {
    while (isspace((unsigned char)**p)) (*p)++;
}

static void expect_load(const char *path) {
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    static char text[65536];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    expect_path = path;
    n_items = 0;
    const char *p = text;
    skip_ws(&p);
    cr_assert_eq(*p++, '{', "%s: not an object", path);
    for (;;) {
        skip_ws(&p);
        if (*p == '}') break;
        cr_assert_lt(n_items, sizeof items / sizeof items[0]);
        expect_item *it = &items[n_items++];
        memset(it, 0, sizeof *it);
        it->key = parse_str(&p);
        skip_ws(&p);
        cr_assert_eq(*p++, ':', "%s: expected ':' after %s", path, it->key);
        skip_ws(&p);
        if (*p == '"') {
            it->val = parse_str(&p);
            it->is_str = true;
        } else {
            const char *start = p;
            while (*p && *p != ',' && *p != '}' && !isspace((unsigned char)*p)) p++;
            it->val = strndup(start, (size_t)(p - start));
        }
        skip_ws(&p);
        if (*p == ',') p++;
    }
}

static expect_item *find(const char *key) {
    for (size_t i = 0; i < n_items; i++)
        if (strcmp(items[i].key, key) == 0) {
            items[i].used = true;
            return &items[i];
        }
    cr_assert_fail("%s: no expectation \"%s\"", expect_path, key);
    return NULL;
}

static void expect_str(const char *key, const char *got) {
    expect_item *it = find(key);
    cr_assert(it->is_str, "%s: %s is not a string", expect_path, key);
    cr_assert_not_null(got, "%s: %s is absent, expected \"%s\"", expect_path, key, it->val);
    cr_assert_str_eq(got, it->val, "%s: %s", expect_path, key);
}

static void expect_int(const char *key, long long got) {
    expect_item *it = find(key);
    cr_assert(!it->is_str);
    cr_assert_eq(got, strtoll(it->val, NULL, 10), "%s: %s = %lld, expected %s", expect_path, key,
                 got, it->val);
}

static void expect_double(const char *key, double got) {
    expect_item *it = find(key);
    cr_assert_eq(got, strtod(it->val, NULL), "%s: %s = %g, expected %s", expect_path, key, got,
                 it->val);
}

static void expect_bool(const char *key, bool got) {
    expect_item *it = find(key);
    cr_assert(strcmp(it->val, "true") == 0 || strcmp(it->val, "false") == 0);
    cr_assert_eq(got, strcmp(it->val, "true") == 0, "%s: %s", expect_path, key);
}

static void expect_hex(const char *key, ProtobufCBinaryData got) {
    expect_item *it = find(key);
    cr_assert_eq(strlen(it->val), got.len * 2, "%s: %s has %zu bytes, expected %zu", expect_path,
                 key, got.len, strlen(it->val) / 2);
    for (size_t i = 0; i < got.len; i++) {
        char two[3];
        snprintf(two, sizeof two, "%02x", got.data[i]);
        cr_assert(memcmp(two, it->val + 2 * i, 2) == 0, "%s: %s differs at byte %zu", expect_path,
                  key, i);
    }
}

/* The name of the oneof member a message holds: its case is the field number. */
static const char *case_name(const ProtobufCMessage *m, unsigned field_number) {
    if (field_number == 0) return "none";
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(m->descriptor, field_number);
    return f ? f->name : "?";
}

static void expect_case(const char *key, const void *msg, unsigned field_number) {
    expect_str(key, case_name(msg, field_number));
}

static void expect_done(void) {
    for (size_t i = 0; i < n_items; i++) {
        cr_assert(items[i].used, "%s: expectation \"%s\" was never checked", expect_path,
                  items[i].key);
        free(items[i].key);
        free(items[i].val);
    }
    n_items = 0;
}

/* Loads <name>.hex and <name>.json; checks the byte count the generator recorded. */
static uint8_t *load_vector(const char *name, size_t *len) {
    char path[512];
    snprintf(path, sizeof path, VECTOR("%s.hex"), name);
    uint8_t *bytes = read_hex(path, len);
    static char json_path[512];
    snprintf(json_path, sizeof json_path, VECTOR("%s.json"), name);
    expect_load(json_path);
    expect_int("bytes", (long long)*len);
    return bytes;
}

static const char *map_str(Google__Rpc__ErrorInfo__MetadataEntry **e, size_t n, const char *k) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i]->key, k) == 0) return e[i]->value;
    return NULL;
}

/* Packs msg into a fresh buffer; the caller frees it. */
static uint8_t *pack(const ProtobufCMessage *msg, size_t *len) {
    *len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(*len ? *len : 1);
    cr_assert_eq(protobuf_c_message_pack(msg, buf), *len);
    return buf;
}

static void assert_same_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                              const char *what) {
    cr_assert_eq(alen, blen, "%s: %zu bytes vs %zu", what, alen, blen);
    for (size_t i = 0; i < alen; i++)
        cr_assert_eq(a[i], b[i], "%s: first difference at byte %zu", what, i);
}

/* ---- Vectors from the PySpark client -------------------------------------------------------- */

TestSuite(pyspark_vectors);

/* Builds, with our generated API, the request gen_proto_vectors.py built with pyspark's. */
static uint8_t *build_sql_command_request(size_t *len) {
    Spark__Connect__UserContext uc = SPARK__CONNECT__USER_CONTEXT__INIT;
    uc.user_id = "alice";
    uc.user_name = "Alice";
    Spark__Connect__Expression__Literal arg = SPARK__CONNECT__EXPRESSION__LITERAL__INIT;
    arg.literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_LONG;
    arg.long_ = 42;
    Spark__Connect__Expression__Literal *args[] = {&arg};
    Spark__Connect__SqlCommand sc = SPARK__CONNECT__SQL_COMMAND__INIT;
    sc.sql = "SELECT * FROM t WHERE id = ?";
    sc.n_pos_args = 1;
    sc.pos_args = args;
    Spark__Connect__Command cmd = SPARK__CONNECT__COMMAND__INIT;
    cmd.command_type_case = SPARK__CONNECT__COMMAND__COMMAND_TYPE_SQL_COMMAND;
    cmd.sql_command = &sc;
    Spark__Connect__Plan plan = SPARK__CONNECT__PLAN__INIT;
    plan.op_type_case = SPARK__CONNECT__PLAN__OP_TYPE_COMMAND;
    plan.command = &cmd;
    Spark__Connect__ReattachOptions ro = SPARK__CONNECT__REATTACH_OPTIONS__INIT;
    ro.has_reattachable = true;
    ro.reattachable = true;
    Spark__Connect__ExecutePlanRequest__RequestOption opt =
        SPARK__CONNECT__EXECUTE_PLAN_REQUEST__REQUEST_OPTION__INIT;
    opt.request_option_case =
        SPARK__CONNECT__EXECUTE_PLAN_REQUEST__REQUEST_OPTION__REQUEST_OPTION_REATTACH_OPTIONS;
    opt.reattach_options = &ro;
    Spark__Connect__ExecutePlanRequest__RequestOption *opts[] = {&opt};
    char *tags[] = {"kindling", "cell-7"};
    Spark__Connect__ExecutePlanRequest req = SPARK__CONNECT__EXECUTE_PLAN_REQUEST__INIT;
    req.session_id = "8a5f3c1e-2b4d-4e6f-9a0b-1c2d3e4f5a6b";
    req.user_context = &uc;
    req.plan = &plan;
    req.client_type = "kindling/0.1 os/linux";
    req.n_request_options = 1;
    req.request_options = opts;
    req.operation_id = "11111111-2222-4333-8444-555555555555";
    req.n_tags = 2;
    req.tags = tags;
    req.client_observed_server_side_session_id = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
    return pack(&req.base, len);
}

Test(pyspark_vectors, execute_plan_request_with_sql_command) {
    size_t len;
    uint8_t *bytes = load_vector("exec_req_sql_command", &len);
    Spark__Connect__ExecutePlanRequest *r =
        spark__connect__execute_plan_request__unpack(NULL, len, bytes);
    cr_assert_not_null(r);
    expect_str("session_id", r->session_id);
    expect_str("user_context.user_id", r->user_context->user_id);
    expect_str("user_context.user_name", r->user_context->user_name);
    expect_str("client_type", r->client_type);
    expect_str("operation_id", r->operation_id);
    expect_int("n_tags", (long long)r->n_tags);
    expect_str("tags[0]", r->tags[0]);
    expect_str("tags[1]", r->tags[1]);
    expect_str("client_observed_server_side_session_id", r->client_observed_server_side_session_id);
    cr_assert_eq(r->plan->op_type_case, SPARK__CONNECT__PLAN__OP_TYPE_COMMAND);
    cr_assert_eq(r->plan->command->command_type_case,
                 SPARK__CONNECT__COMMAND__COMMAND_TYPE_SQL_COMMAND);
    Spark__Connect__SqlCommand *sc = r->plan->command->sql_command;
    expect_str("plan.command.sql_command.sql", sc->sql);
    cr_assert_eq(sc->n_pos_args, 1);
    cr_assert_eq(sc->pos_args[0]->literal_type_case,
                 SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_LONG);
    expect_int("plan.command.sql_command.pos_args[0].long", sc->pos_args[0]->long_);
    expect_int("n_request_options", (long long)r->n_request_options);
    expect_bool("request_options[0].reattach_options.reattachable",
                r->request_options[0]->reattach_options->reattachable);
    expect_done();
    spark__connect__execute_plan_request__free_unpacked(r, NULL);

    /* What Kindling sends must be byte-identical to what the official client sends. */
    size_t ours_len;
    uint8_t *ours = build_sql_command_request(&ours_len);
    assert_same_bytes(ours, ours_len, bytes, len, "C-built ExecutePlanRequest vs pyspark's");
    free(ours);
    free(bytes);
}

Test(pyspark_vectors, every_literal_kind_as_query_parameters) {
    size_t len;
    uint8_t *bytes = load_vector("exec_req_root_literals", &len);
    Spark__Connect__ExecutePlanRequest *r =
        spark__connect__execute_plan_request__unpack(NULL, len, bytes);
    cr_assert_not_null(r);
    expect_str("session_id", r->session_id);
    expect_str("operation_id", r->operation_id);
    cr_assert_eq(r->plan->op_type_case, SPARK__CONNECT__PLAN__OP_TYPE_ROOT);
    cr_assert_eq(r->plan->root->rel_type_case, SPARK__CONNECT__RELATION__REL_TYPE_LIMIT);
    Spark__Connect__Limit *lim = r->plan->root->limit;
    expect_int("plan.root.limit.limit", lim->limit);
    cr_assert(lim->input->common->has_plan_id);
    expect_int("plan.root.limit.input.common.plan_id", lim->input->common->plan_id);
    cr_assert_eq(lim->input->rel_type_case, SPARK__CONNECT__RELATION__REL_TYPE_SQL);
    Spark__Connect__SQL *sql = lim->input->sql;
    expect_str("plan.root.limit.input.sql.query", sql->query);
    expect_int("n_pos_args", (long long)sql->n_pos_args);
    Spark__Connect__Expression__Literal **a = sql->pos_args;

    cr_assert_eq(a[0]->literal_type_case, SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_NULL);
    expect_case("pos_args[0].null.kind", a[0]->null, a[0]->null->kind_case);
    expect_hex("pos_args[1].binary_hex", a[1]->binary);
    expect_bool("pos_args[2].boolean", a[2]->boolean);
    expect_int("pos_args[3].byte", a[3]->byte);
    expect_int("pos_args[4].short", a[4]->short_);
    expect_int("pos_args[5].integer", a[5]->integer);
    expect_int("pos_args[6].long", a[6]->long_);
    expect_double("pos_args[7].float", a[7]->float_);
    expect_double("pos_args[8].double", a[8]->double_);
    expect_str("pos_args[9].decimal.value", a[9]->decimal->value);
    expect_int("pos_args[9].decimal.precision", a[9]->decimal->precision);
    expect_int("pos_args[9].decimal.scale", a[9]->decimal->scale);
    expect_str("pos_args[10].string", a[10]->string);
    expect_int("pos_args[11].date", a[11]->date);
    expect_int("pos_args[12].timestamp", a[12]->timestamp);
    expect_int("pos_args[13].timestamp_ntz", a[13]->timestamp_ntz);
    expect_int("pos_args[14].calendar_interval.months", a[14]->calendar_interval->months);
    expect_int("pos_args[14].calendar_interval.days", a[14]->calendar_interval->days);
    expect_int("pos_args[14].calendar_interval.microseconds",
               a[14]->calendar_interval->microseconds);
    expect_int("pos_args[15].year_month_interval", a[15]->year_month_interval);
    expect_int("pos_args[16].day_time_interval", a[16]->day_time_interval);
    cr_assert_eq(a[17]->array->element_type->kind_case, SPARK__CONNECT__DATA_TYPE__KIND_STRING);
    expect_int("pos_args[17].array.n_elements", (long long)a[17]->array->n_elements);
    expect_str("pos_args[17].array.elements[1].string", a[17]->array->elements[1]->string);
    expect_str("pos_args[18].map.keys[0].string", a[18]->map->keys[0]->string);
    expect_int("pos_args[18].map.values[0].integer", a[18]->map->values[0]->integer);
    expect_str("pos_args[19].struct.struct_type.fields[0].name",
               a[19]->struct_->struct_type->struct_->fields[0]->name);
    expect_int("pos_args[19].struct.elements[0].long", a[19]->struct_->elements[0]->long_);
    /* A oneof member holding zero is present on the wire and must decode as that kind. */
    cr_assert_eq(a[20]->literal_type_case,
                 SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_INTEGER);
    expect_int("pos_args[20].integer", a[20]->integer);
    expect_done();

    /* Re-encoding gives back pyspark's bytes: nothing is lost or reordered. */
    size_t again_len;
    uint8_t *again = pack(&r->base, &again_len);
    assert_same_bytes(again, again_len, bytes, len, "re-encoded literals");
    free(again);
    spark__connect__execute_plan_request__free_unpacked(r, NULL);
    free(bytes);
}

static Spark__Connect__ExecutePlanResponse *unpack_response(const char *name, uint8_t **bytes,
                                                            size_t *len) {
    *bytes = load_vector(name, len);
    Spark__Connect__ExecutePlanResponse *r =
        spark__connect__execute_plan_response__unpack(NULL, *len, *bytes);
    cr_assert_not_null(r, "%s does not decode", name);
    return r;
}

Test(pyspark_vectors, response_with_schema_only) {
    uint8_t *bytes;
    size_t len;
    Spark__Connect__ExecutePlanResponse *r = unpack_response("exec_resp_schema", &bytes, &len);
    expect_str("session_id", r->session_id);
    expect_str("operation_id", r->operation_id);
    expect_str("response_id", r->response_id);
    expect_str("server_side_session_id", r->server_side_session_id);
    expect_case("response_type", r, r->response_type_case);
    cr_assert_eq(r->schema->kind_case, SPARK__CONNECT__DATA_TYPE__KIND_STRUCT);
    Spark__Connect__DataType__Struct *st = r->schema->struct_;
    expect_int("schema.struct.n_fields", (long long)st->n_fields);
    expect_str("schema.struct.fields[0].name", st->fields[0]->name);
    expect_bool("schema.struct.fields[0].nullable", st->fields[0]->nullable);
    expect_case("schema.struct.fields[0].data_type.kind", st->fields[0]->data_type,
                st->fields[0]->data_type->kind_case);
    expect_str("schema.struct.fields[1].name", st->fields[1]->name);
    expect_str("schema.struct.fields[1].metadata", st->fields[1]->metadata);
    Spark__Connect__DataType__Decimal *dec = st->fields[1]->data_type->decimal;
    cr_assert(dec->has_precision && dec->has_scale);
    expect_int("schema.struct.fields[1].data_type.decimal.precision", dec->precision);
    expect_int("schema.struct.fields[1].data_type.decimal.scale", dec->scale);
    Spark__Connect__DataType__Array *arr = st->fields[2]->data_type->array;
    expect_str("schema.struct.fields[2].data_type.array.element_type.string.collation",
               arr->element_type->string->collation);
    expect_bool("schema.struct.fields[2].data_type.array.contains_null", arr->contains_null);
    Spark__Connect__DataType__Map *map = st->fields[3]->data_type->map;
    expect_case("schema.struct.fields[3].data_type.map.key_type.kind", map->key_type,
                map->key_type->kind_case);
    expect_int("schema.struct.fields[3].data_type.map.value_type.var_char.length",
               map->value_type->var_char->length);
    Spark__Connect__DataType__DayTimeInterval *dti = st->fields[4]->data_type->day_time_interval;
    /* start_field is proto3 `optional` upstream, so an explicit 0 (DAY) is on the wire. */
    cr_assert(dti->has_start_field);
    expect_int("schema.struct.fields[4].data_type.day_time_interval.start_field", dti->start_field);
    expect_int("schema.struct.fields[4].data_type.day_time_interval.end_field", dti->end_field);
    expect_done();
    spark__connect__execute_plan_response__free_unpacked(r, NULL);
    free(bytes);
}

Test(pyspark_vectors, response_with_arrow_batch) {
    uint8_t *bytes;
    size_t len;
    Spark__Connect__ExecutePlanResponse *r = unpack_response("exec_resp_arrow_batch", &bytes, &len);
    expect_str("session_id", r->session_id);
    expect_str("response_id", r->response_id);
    expect_str("server_side_session_id", r->server_side_session_id);
    expect_case("response_type", r, r->response_type_case);
    expect_int("arrow_batch.row_count", r->arrow_batch->row_count);
    expect_bool("arrow_batch.has_start_offset", r->arrow_batch->has_start_offset);
    expect_int("arrow_batch.start_offset", r->arrow_batch->start_offset);
    expect_hex("arrow_batch.data_hex", r->arrow_batch->data);
    cr_assert(!r->arrow_batch->has_chunk_index, "4.0 servers send no chunk fields");
    expect_done();
    spark__connect__execute_plan_response__free_unpacked(r, NULL);
    free(bytes);
}

Test(pyspark_vectors, response_with_metrics_and_result_complete) {
    uint8_t *bytes;
    size_t len;
    Spark__Connect__ExecutePlanResponse *r =
        unpack_response("exec_resp_metrics_complete", &bytes, &len);
    expect_str("response_id", r->response_id);
    expect_case("response_type", r, r->response_type_case);
    cr_assert_not_null(r->result_complete);
    expect_int("metrics.n_metrics", (long long)r->metrics->n_metrics);
    Spark__Connect__ExecutePlanResponse__Metrics__MetricObject *mo = r->metrics->metrics[0];
    expect_str("metrics.metrics[0].name", mo->name);
    expect_int("metrics.metrics[0].plan_id", mo->plan_id);
    expect_int("metrics.metrics[0].parent", mo->parent);
    cr_assert_eq(mo->n_execution_metrics, 1);
    cr_assert_str_eq(mo->execution_metrics[0]->key, "numOutputRows");
    Spark__Connect__ExecutePlanResponse__Metrics__MetricValue *mv = mo->execution_metrics[0]->value;
    expect_str("metrics.metrics[0].execution_metrics.numOutputRows.name", mv->name);
    expect_int("metrics.metrics[0].execution_metrics.numOutputRows.value", mv->value);
    expect_str("metrics.metrics[0].execution_metrics.numOutputRows.metric_type", mv->metric_type);
    expect_done();
    spark__connect__execute_plan_response__free_unpacked(r, NULL);
    free(bytes);
}

Test(pyspark_vectors, response_with_execution_progress) {
    uint8_t *bytes;
    size_t len;
    Spark__Connect__ExecutePlanResponse *r = unpack_response("exec_resp_progress", &bytes, &len);
    expect_str("response_id", r->response_id);
    expect_case("response_type", r, r->response_type_case);
    Spark__Connect__ExecutePlanResponse__ExecutionProgress *p = r->execution_progress;
    expect_int("execution_progress.num_inflight_tasks", p->num_inflight_tasks);
    expect_int("execution_progress.n_stages", (long long)p->n_stages);
    expect_int("execution_progress.stages[0].stage_id", p->stages[0]->stage_id);
    expect_int("execution_progress.stages[0].num_tasks", p->stages[0]->num_tasks);
    expect_int("execution_progress.stages[0].num_completed_tasks",
               p->stages[0]->num_completed_tasks);
    expect_int("execution_progress.stages[0].input_bytes_read", p->stages[0]->input_bytes_read);
    expect_bool("execution_progress.stages[0].done", p->stages[0]->done);
    expect_bool("execution_progress.stages[1].done", p->stages[1]->done);
    expect_done();
    spark__connect__execute_plan_response__free_unpacked(r, NULL);
    free(bytes);
}

Test(pyspark_vectors, eager_command_result_as_local_relation) {
    uint8_t *bytes;
    size_t len;
    Spark__Connect__ExecutePlanResponse *r =
        unpack_response("exec_resp_sql_command_local", &bytes, &len);
    expect_case("response_type", r, r->response_type_case);
    Spark__Connect__Relation *rel = r->sql_command_result->relation;
    expect_case("sql_command_result.relation.rel_type", rel, rel->rel_type_case);
    cr_assert(rel->local_relation->has_data);
    expect_hex("sql_command_result.relation.local_relation.data_hex", rel->local_relation->data);
    expect_done();
    spark__connect__execute_plan_response__free_unpacked(r, NULL);
    free(bytes);
}

Test(pyspark_vectors, echoed_relation_survives_reencoding_unchanged) {
    size_t len;
    uint8_t *bytes = load_vector("relation_with_relations", &len);
    Spark__Connect__Relation *rel = spark__connect__relation__unpack(NULL, len, bytes);
    cr_assert_not_null(rel);
    expect_int("common.plan_id", rel->common->plan_id);
    expect_case("rel_type", rel, rel->rel_type_case);
    expect_int("n_unknown_fields", (long long)rel->base.n_unknown_fields);
    expect_done();

    size_t again_len;
    uint8_t *again = pack(&rel->base, &again_len);
    assert_same_bytes(again, again_len, bytes, len, "re-encoded WithRelations");
    free(again);

    /* Sent back as Plan.root of a new request, the relation's bytes travel verbatim. */
    Spark__Connect__Plan plan = SPARK__CONNECT__PLAN__INIT;
    plan.op_type_case = SPARK__CONNECT__PLAN__OP_TYPE_ROOT;
    plan.root = rel;
    Spark__Connect__ExecutePlanRequest req = SPARK__CONNECT__EXECUTE_PLAN_REQUEST__INIT;
    req.session_id = "s";
    req.plan = &plan;
    size_t req_len;
    uint8_t *req_bytes = pack(&req.base, &req_len);
    cr_assert(memmem(req_bytes, req_len, bytes, len) != NULL);
    free(req_bytes);
    spark__connect__relation__free_unpacked(rel, NULL);
    free(bytes);
}

Test(pyspark_vectors, unknown_fields_of_every_wire_type_are_skipped) {
    uint8_t *bytes;
    size_t len;
    Spark__Connect__ExecutePlanResponse *r =
        unpack_response("exec_resp_unknown_fields", &bytes, &len);
    expect_str("session_id", r->session_id);
    expect_str("operation_id", r->operation_id);
    expect_str("response_id", r->response_id);
    expect_case("response_type", r, r->response_type_case);
    expect_int("arrow_batch.row_count", r->arrow_batch->row_count);
    expect_int("arrow_batch.n_unknown_fields", (long long)r->arrow_batch->base.n_unknown_fields);
    expect_int("n_unknown_fields", (long long)r->base.n_unknown_fields);
    expect_done();

    /* Kept unknown fields are written back (moved after the known ones, same size). */
    size_t again_len;
    uint8_t *again = pack(&r->base, &again_len);
    cr_assert_eq(again_len, len);
    Spark__Connect__ExecutePlanResponse *r2 =
        spark__connect__execute_plan_response__unpack(NULL, again_len, again);
    cr_assert_not_null(r2);
    cr_assert_eq(r2->base.n_unknown_fields, r->base.n_unknown_fields);
    cr_assert_str_eq(r2->response_id, r->response_id);
    spark__connect__execute_plan_response__free_unpacked(r2, NULL);
    free(again);
    spark__connect__execute_plan_response__free_unpacked(r, NULL);
    free(bytes);
}

Test(pyspark_vectors, analyze_plan_spark_version) {
    size_t len;
    uint8_t *bytes = load_vector("analyze_resp_spark_version", &len);
    Spark__Connect__AnalyzePlanResponse *r =
        spark__connect__analyze_plan_response__unpack(NULL, len, bytes);
    cr_assert_not_null(r);
    expect_str("session_id", r->session_id);
    expect_str("server_side_session_id", r->server_side_session_id);
    expect_case("result", r, r->result_case);
    expect_str("spark_version.version", r->spark_version->version);
    expect_done();
    spark__connect__analyze_plan_response__free_unpacked(r, NULL);
    free(bytes);
}

Test(pyspark_vectors, config_set_request_matches_ours) {
    size_t len;
    uint8_t *bytes = load_vector("config_req_set", &len);
    Spark__Connect__ConfigRequest *r = spark__connect__config_request__unpack(NULL, len, bytes);
    cr_assert_not_null(r);
    expect_str("session_id", r->session_id);
    expect_str("client_type", r->client_type);
    expect_case("operation.op_type", r->operation, r->operation->op_type_case);
    expect_int("operation.set.n_pairs", (long long)r->operation->set->n_pairs);
    expect_str("operation.set.pairs[0].key", r->operation->set->pairs[0]->key);
    expect_str("operation.set.pairs[0].value", r->operation->set->pairs[0]->value);
    expect_done();
    spark__connect__config_request__free_unpacked(r, NULL);

    Spark__Connect__KeyValue kv = SPARK__CONNECT__KEY_VALUE__INIT;
    kv.key = "spark.sql.ansi.enabled";
    kv.value = "true";
    Spark__Connect__KeyValue *pairs[] = {&kv};
    Spark__Connect__ConfigRequest__Set set = SPARK__CONNECT__CONFIG_REQUEST__SET__INIT;
    set.n_pairs = 1;
    set.pairs = pairs;
    Spark__Connect__ConfigRequest__Operation op = SPARK__CONNECT__CONFIG_REQUEST__OPERATION__INIT;
    op.op_type_case = SPARK__CONNECT__CONFIG_REQUEST__OPERATION__OP_TYPE_SET;
    op.set = &set;
    Spark__Connect__UserContext uc = SPARK__CONNECT__USER_CONTEXT__INIT;
    uc.user_id = "alice";
    Spark__Connect__ConfigRequest req = SPARK__CONNECT__CONFIG_REQUEST__INIT;
    req.session_id = "8a5f3c1e-2b4d-4e6f-9a0b-1c2d3e4f5a6b";
    req.user_context = &uc;
    req.operation = &op;
    req.client_type = "kindling/0.1";
    size_t ours_len;
    uint8_t *ours = pack(&req.base, &ours_len);
    assert_same_bytes(ours, ours_len, bytes, len, "C-built ConfigRequest vs pyspark's");
    free(ours);
    free(bytes);
}

Test(pyspark_vectors, config_response_keeps_value_presence) {
    size_t len;
    uint8_t *bytes = load_vector("config_resp_get", &len);
    Spark__Connect__ConfigResponse *r = spark__connect__config_response__unpack(NULL, len, bytes);
    cr_assert_not_null(r);
    expect_str("server_side_session_id", r->server_side_session_id);
    expect_int("n_pairs", (long long)r->n_pairs);
    expect_str("pairs[0].key", r->pairs[0]->key);
    expect_str("pairs[0].value", r->pairs[0]->value);
    expect_str("pairs[1].key", r->pairs[1]->key);
    expect_bool("pairs[1].has_value", r->pairs[1]->value != NULL);
    expect_str("warnings[0]", r->warnings[0]);
    expect_done();
    spark__connect__config_response__free_unpacked(r, NULL);
    free(bytes);
}

Test(pyspark_vectors, fetch_error_details_chain) {
    size_t len;
    uint8_t *bytes = load_vector("fetch_error_details_resp", &len);
    Spark__Connect__FetchErrorDetailsResponse *r =
        spark__connect__fetch_error_details_response__unpack(NULL, len, bytes);
    cr_assert_not_null(r);
    cr_assert(r->has_root_error_idx, "an explicit 0 must be present (proto3 optional)");
    expect_int("root_error_idx", r->root_error_idx);
    expect_str("session_id", r->session_id);
    expect_str("server_side_session_id", r->server_side_session_id);
    expect_int("n_errors", (long long)r->n_errors);
    Spark__Connect__FetchErrorDetailsResponse__Error *e = r->errors[0];
    expect_str("errors[0].error_type_hierarchy[0]", e->error_type_hierarchy[0]);
    expect_str("errors[0].message", e->message);
    expect_int("errors[0].cause_idx", e->cause_idx);
    expect_str("errors[0].stack_trace[0].declaring_class", e->stack_trace[0]->declaring_class);
    expect_int("errors[0].stack_trace[0].line_number", e->stack_trace[0]->line_number);
    Spark__Connect__FetchErrorDetailsResponse__SparkThrowable *t = e->spark_throwable;
    expect_str("errors[0].spark_throwable.error_class", t->error_class);
    expect_str("errors[0].spark_throwable.sql_state", t->sql_state);
    cr_assert_eq(t->n_message_parameters, 1);
    cr_assert_str_eq(t->message_parameters[0]->key, "relationName");
    expect_str("errors[0].spark_throwable.message_parameters.relationName",
               t->message_parameters[0]->value);
    Spark__Connect__FetchErrorDetailsResponse__QueryContext *qc = t->query_contexts[0];
    expect_int("errors[0].spark_throwable.query_contexts[0].context_type", qc->context_type);
    expect_str("errors[0].spark_throwable.query_contexts[0].object_type", qc->object_type);
    expect_int("errors[0].spark_throwable.query_contexts[0].start_index", qc->start_index);
    expect_int("errors[0].spark_throwable.query_contexts[0].stop_index", qc->stop_index);
    expect_str("errors[0].spark_throwable.query_contexts[0].fragment", qc->fragment);
    expect_str("errors[0].spark_throwable.query_contexts[0].summary", qc->summary);
    expect_str("errors[1].message", r->errors[1]->message);
    expect_bool("errors[1].has_cause_idx", r->errors[1]->has_cause_idx);
    expect_bool("errors[1].has_spark_throwable", r->errors[1]->spark_throwable != NULL);
    expect_done();
    spark__connect__fetch_error_details_response__free_unpacked(r, NULL);
    free(bytes);
}

Test(pyspark_vectors, grpc_status_details_with_error_info_and_retry_info) {
    size_t len;
    uint8_t *bytes = load_vector("rpc_status_error_info", &len);
    Google__Rpc__Status *st = google__rpc__status__unpack(NULL, len, bytes);
    cr_assert_not_null(st);
    expect_int("code", st->code);
    expect_str("message", st->message);
    expect_int("n_details", (long long)st->n_details);
    expect_str("details[0].type_url", st->details[0]->type_url);
    Google__Rpc__ErrorInfo *info = google__rpc__error_info__unpack(NULL, st->details[0]->value.len,
                                                                   st->details[0]->value.data);
    cr_assert_not_null(info);
    expect_str("details[0].error_info.reason", info->reason);
    expect_str("details[0].error_info.domain", info->domain);
    expect_int("details[0].error_info.n_metadata", (long long)info->n_metadata);
    static const char *const keys[] = {"classes", "sqlState", "errorClass", "messageParameters",
                                       "errorId"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char key[128];
        snprintf(key, sizeof key, "details[0].error_info.metadata.%s", keys[i]);
        expect_str(key, map_str(info->metadata, info->n_metadata, keys[i]));
    }
    google__rpc__error_info__free_unpacked(info, NULL);

    expect_str("details[1].type_url", st->details[1]->type_url);
    Google__Rpc__RetryInfo *retry = google__rpc__retry_info__unpack(NULL, st->details[1]->value.len,
                                                                    st->details[1]->value.data);
    cr_assert_not_null(retry);
    expect_int("details[1].retry_info.retry_delay.seconds", retry->retry_delay->seconds);
    expect_int("details[1].retry_info.retry_delay.nanos", retry->retry_delay->nanos);
    google__rpc__retry_info__free_unpacked(retry, NULL);
    expect_done();
    google__rpc__status__free_unpacked(st, NULL);
    free(bytes);
}

/* ---- Messages built in C -------------------------------------------------------------------- */

TestSuite(roundtrip);

Test(roundtrip, arrow_batch_chunk_fields_of_4_1) {
    uint8_t payload[] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    Spark__Connect__ExecutePlanResponse__ArrowBatch ab =
        SPARK__CONNECT__EXECUTE_PLAN_RESPONSE__ARROW_BATCH__INIT;
    ab.has_row_count = ab.has_data = ab.has_start_offset = true;
    ab.has_chunk_index = ab.has_num_chunks_in_batch = true;
    ab.row_count = 10000;
    ab.data = (ProtobufCBinaryData){sizeof payload, payload};
    ab.start_offset = 20000;
    ab.chunk_index = 1;
    ab.num_chunks_in_batch = 3;
    Spark__Connect__ExecutePlanResponse resp = SPARK__CONNECT__EXECUTE_PLAN_RESPONSE__INIT;
    resp.session_id = "s";
    resp.response_type_case = SPARK__CONNECT__EXECUTE_PLAN_RESPONSE__RESPONSE_TYPE_ARROW_BATCH;
    resp.arrow_batch = &ab;
    size_t len;
    uint8_t *buf = pack(&resp.base, &len);
    Spark__Connect__ExecutePlanResponse *r =
        spark__connect__execute_plan_response__unpack(NULL, len, buf);
    cr_assert_not_null(r);
    cr_assert_eq(r->response_type_case,
                 SPARK__CONNECT__EXECUTE_PLAN_RESPONSE__RESPONSE_TYPE_ARROW_BATCH);
    cr_assert_eq(r->arrow_batch->row_count, 10000);
    cr_assert_eq(r->arrow_batch->start_offset, 20000);
    cr_assert(r->arrow_batch->has_chunk_index && r->arrow_batch->chunk_index == 1);
    cr_assert(r->arrow_batch->has_num_chunks_in_batch);
    cr_assert_eq(r->arrow_batch->num_chunks_in_batch, 3);
    cr_assert_eq(r->arrow_batch->data.len, sizeof payload);
    cr_assert(memcmp(r->arrow_batch->data.data, payload, sizeof payload) == 0);
    spark__connect__execute_plan_response__free_unpacked(r, NULL);
    free(buf);
}

Test(roundtrip, result_chunking_option_with_reattach) {
    Spark__Connect__ResultChunkingOptions rc = SPARK__CONNECT__RESULT_CHUNKING_OPTIONS__INIT;
    rc.has_allow_arrow_batch_chunking = rc.allow_arrow_batch_chunking = true;
    rc.has_preferred_arrow_chunk_size = true;
    rc.preferred_arrow_chunk_size = 4 << 20;
    Spark__Connect__ExecutePlanRequest__RequestOption o1 =
        SPARK__CONNECT__EXECUTE_PLAN_REQUEST__REQUEST_OPTION__INIT;
    o1.request_option_case =
        SPARK__CONNECT__EXECUTE_PLAN_REQUEST__REQUEST_OPTION__REQUEST_OPTION_RESULT_CHUNKING_OPTIONS;
    o1.result_chunking_options = &rc;
    Spark__Connect__ExecutePlanRequest__RequestOption *opts[] = {&o1};
    Spark__Connect__ExecutePlanRequest req = SPARK__CONNECT__EXECUTE_PLAN_REQUEST__INIT;
    req.n_request_options = 1;
    req.request_options = opts;
    size_t len;
    uint8_t *buf = pack(&req.base, &len);
    /* field 5 (request_options) { field 2 { 08 01 10 80 80 80 02 } } */
    static const uint8_t want[] = {0x2a, 0x09, 0x12, 0x07, 0x08, 0x01,
                                   0x10, 0x80, 0x80, 0x80, 0x02};
    assert_same_bytes(buf, len, want, sizeof want, "chunking option");
    free(buf);
}

Test(roundtrip, empty_oneof_messages_are_still_sent) {
    /* ReleaseExecute{release_all} and AnalyzePlan{spark_version} carry an empty message whose
     * mere presence is the request: it must be on the wire as tag + zero length. */
    Spark__Connect__ReleaseExecuteRequest__ReleaseAll all =
        SPARK__CONNECT__RELEASE_EXECUTE_REQUEST__RELEASE_ALL__INIT;
    Spark__Connect__ReleaseExecuteRequest rel = SPARK__CONNECT__RELEASE_EXECUTE_REQUEST__INIT;
    rel.release_case = SPARK__CONNECT__RELEASE_EXECUTE_REQUEST__RELEASE_RELEASE_ALL;
    rel.release_all = &all;
    size_t len;
    uint8_t *buf = pack(&rel.base, &len);
    static const uint8_t want_all[] = {0x2a, 0x00};
    assert_same_bytes(buf, len, want_all, sizeof want_all, "release_all");
    free(buf);

    Spark__Connect__AnalyzePlanRequest__SparkVersion sv =
        SPARK__CONNECT__ANALYZE_PLAN_REQUEST__SPARK_VERSION__INIT;
    Spark__Connect__AnalyzePlanRequest an = SPARK__CONNECT__ANALYZE_PLAN_REQUEST__INIT;
    an.analyze_case = SPARK__CONNECT__ANALYZE_PLAN_REQUEST__ANALYZE_SPARK_VERSION;
    an.spark_version = &sv;
    buf = pack(&an.base, &len);
    static const uint8_t want_sv[] = {0x52, 0x00}; /* field 10, length 0 */
    assert_same_bytes(buf, len, want_sv, sizeof want_sv, "spark_version");
    free(buf);
}

Test(roundtrip, interrupt_by_operation_id) {
    Spark__Connect__InterruptRequest ir = SPARK__CONNECT__INTERRUPT_REQUEST__INIT;
    ir.session_id = "s1";
    ir.has_interrupt_type = true;
    ir.interrupt_type =
        SPARK__CONNECT__INTERRUPT_REQUEST__INTERRUPT_TYPE__INTERRUPT_TYPE_OPERATION_ID;
    ir.interrupt_case = SPARK__CONNECT__INTERRUPT_REQUEST__INTERRUPT_OPERATION_ID;
    ir.operation_id = "op";
    size_t len;
    uint8_t *buf = pack(&ir.base, &len);
    /* 0a 02 "s1" | 20 03 | 32 02 "op" */
    static const uint8_t want[] = {0x0a, 0x02, 's', '1', 0x20, 0x03, 0x32, 0x02, 'o', 'p'};
    assert_same_bytes(buf, len, want, sizeof want, "interrupt");
    free(buf);
}

Test(roundtrip, add_artifacts_chunked_and_batched) {
    uint8_t data[] = "jar bytes";
    Spark__Connect__AddArtifactsRequest__ArtifactChunk chunk =
        SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__ARTIFACT_CHUNK__INIT;
    chunk.has_data = chunk.has_crc = true;
    chunk.data = (ProtobufCBinaryData){sizeof data - 1, data};
    chunk.crc = 0x89abcdefLL;
    Spark__Connect__AddArtifactsRequest__BeginChunkedArtifact begin =
        SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__BEGIN_CHUNKED_ARTIFACT__INIT;
    begin.name = "jars/udf.jar";
    begin.has_total_bytes = begin.has_num_chunks = true;
    begin.total_bytes = 70000;
    begin.num_chunks = 3;
    begin.initial_chunk = &chunk;
    Spark__Connect__AddArtifactsRequest req = SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__INIT;
    req.session_id = "s";
    req.client_type = "kindling";
    req.payload_case = SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__PAYLOAD_BEGIN_CHUNK;
    req.begin_chunk = &begin;
    size_t len;
    uint8_t *buf = pack(&req.base, &len);
    Spark__Connect__AddArtifactsRequest *r =
        spark__connect__add_artifacts_request__unpack(NULL, len, buf);
    cr_assert_not_null(r);
    cr_assert_eq(r->payload_case, SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__PAYLOAD_BEGIN_CHUNK);
    cr_assert_str_eq(r->begin_chunk->name, "jars/udf.jar");
    cr_assert_eq(r->begin_chunk->num_chunks, 3);
    cr_assert_eq(r->begin_chunk->initial_chunk->crc, 0x89abcdefLL);
    cr_assert_str_eq(r->client_type, "kindling");
    spark__connect__add_artifacts_request__free_unpacked(r, NULL);
    free(buf);

    Spark__Connect__AddArtifactsRequest__SingleChunkArtifact one =
        SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__SINGLE_CHUNK_ARTIFACT__INIT;
    one.name = "pyfiles/util.py";
    one.data = &chunk;
    Spark__Connect__AddArtifactsRequest__SingleChunkArtifact *list[] = {&one, &one};
    Spark__Connect__AddArtifactsRequest__Batch batch =
        SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__BATCH__INIT;
    batch.n_artifacts = 2;
    batch.artifacts = list;
    req.payload_case = SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__PAYLOAD_BATCH;
    req.batch = &batch;
    buf = pack(&req.base, &len);
    r = spark__connect__add_artifacts_request__unpack(NULL, len, buf);
    cr_assert_not_null(r);
    cr_assert_eq(r->payload_case, SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__PAYLOAD_BATCH);
    cr_assert_eq(r->batch->n_artifacts, 2);
    cr_assert_str_eq(r->batch->artifacts[1]->name, "pyfiles/util.py");
    cr_assert_eq(r->batch->artifacts[1]->data->data.len, sizeof data - 1);
    spark__connect__add_artifacts_request__free_unpacked(r, NULL);
    free(buf);
}

Test(roundtrip, catalog_list_tables_as_plan_root) {
    Spark__Connect__ListTables lt = SPARK__CONNECT__LIST_TABLES__INIT;
    lt.db_name = "sales";
    lt.pattern = "ord*";
    Spark__Connect__Catalog cat = SPARK__CONNECT__CATALOG__INIT;
    cat.cat_type_case = SPARK__CONNECT__CATALOG__CAT_TYPE_LIST_TABLES;
    cat.list_tables = &lt;
    Spark__Connect__Relation rel = SPARK__CONNECT__RELATION__INIT;
    rel.rel_type_case = SPARK__CONNECT__RELATION__REL_TYPE_CATALOG;
    rel.catalog = &cat;
    size_t len;
    uint8_t *buf = pack(&rel.base, &len);
    /* Relation.catalog is field 200 (tag c2 0c); ListTables is Catalog field 4. */
    static const uint8_t want[] = {0xc2, 0x0c, 0x0f, 0x22, 0x0d, 0x0a, 0x05, 's', 'a',
                                   'l',  'e',  's',  0x12, 0x04, 'o',  'r',  'd', '*'};
    assert_same_bytes(buf, len, want, sizeof want, "list_tables");
    free(buf);
}

Test(roundtrip, malformed_input_is_rejected_not_fatal) {
    size_t len;
    uint8_t *bytes = load_vector("exec_resp_arrow_batch", &len);
    for (size_t i = 0; i < n_items; i++) items[i].used = true;
    expect_done();
    /* Every proper prefix that cuts a field is an error, never a crash. */
    size_t rejected = 0;
    for (size_t cut = 1; cut < len; cut++) {
        Spark__Connect__ExecutePlanResponse *r =
            spark__connect__execute_plan_response__unpack(NULL, cut, bytes);
        if (r)
            spark__connect__execute_plan_response__free_unpacked(r, NULL);
        else
            rejected++;
    }
    cr_assert_gt(rejected, len / 2);
    /* A length running past the end. */
    static const uint8_t bad[] = {0x0a, 0x7f, 'x'};
    cr_assert_null(spark__connect__execute_plan_response__unpack(NULL, sizeof bad, bad));
    /* Empty input is a valid, empty message. */
    Spark__Connect__ExecutePlanResponse *empty =
        spark__connect__execute_plan_response__unpack(NULL, 0, (const uint8_t *)"");
    cr_assert_not_null(empty);
    cr_assert_null(empty->session_id, "unset strings are NULL in proto2");
    cr_assert_eq(empty->response_type_case,
                 SPARK__CONNECT__EXECUTE_PLAN_RESPONSE__RESPONSE_TYPE__NOT_SET);
    spark__connect__execute_plan_response__free_unpacked(empty, NULL);
    free(bytes);
}
