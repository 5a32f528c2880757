/* Fuzzes protobuf-c decoding of what a Spark Connect server sends, with Kindling's generated
 * descriptors: the input is unpacked as an ExecutePlanResponse, a google.rpc.Status (with its
 * ErrorInfo/RetryInfo details) and a FetchErrorDetailsResponse. Whatever decodes is walked, and
 * must re-encode to bytes that decode and re-encode to the very same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spark/proto/kindling_rpc_status.pb-c.h"
#include "spark/proto/kindling_spark_connect.pb-c.h"

static size_t sink; /* keeps the walks from being optimised away */

static void walk_type(const Spark__Connect__DataType *t) {
    if (!t) return;
    sink += (size_t)t->kind_case;
    switch (t->kind_case) {
    case SPARK__CONNECT__DATA_TYPE__KIND_STRUCT:
        for (size_t i = 0; i < t->struct_->n_fields; i++) {
            const Spark__Connect__DataType__StructField *f = t->struct_->fields[i];
            sink += f->name ? strlen(f->name) : 0;
            sink += f->metadata ? strlen(f->metadata) : 0;
            walk_type(f->data_type);
        }
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_ARRAY:
        walk_type(t->array->element_type);
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_MAP:
        walk_type(t->map->key_type);
        walk_type(t->map->value_type);
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_UDT:
        walk_type(t->udt->sql_type);
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_DECIMAL:
        sink += (size_t)t->decimal->precision;
        break;
    case SPARK__CONNECT__DATA_TYPE__KIND_STRING:
        sink += t->string->collation ? strlen(t->string->collation) : 0;
        break;
    default:
        break;
    }
}

static void walk_relation(const Spark__Connect__Relation *r) {
    if (!r) return;
    if (r->common) sink += (size_t)r->common->plan_id;
    switch (r->rel_type_case) {
    case SPARK__CONNECT__RELATION__REL_TYPE_LOCAL_RELATION:
        sink += r->local_relation->data.len;
        break;
    case SPARK__CONNECT__RELATION__REL_TYPE_SQL:
        sink += r->sql->query ? strlen(r->sql->query) : 0;
        sink += r->sql->n_pos_args + r->sql->n_args;
        break;
    case SPARK__CONNECT__RELATION__REL_TYPE_LIMIT:
        walk_relation(r->limit->input);
        break;
    default:
        break;
    }
}

static void walk_response(const Spark__Connect__ExecutePlanResponse *r) {
    sink += r->session_id ? strlen(r->session_id) : 0;
    sink += r->response_id ? strlen(r->response_id) : 0;
    walk_type(r->schema);
    if (r->metrics)
        for (size_t i = 0; i < r->metrics->n_metrics; i++) {
            const Spark__Connect__ExecutePlanResponse__Metrics__MetricObject *m =
                r->metrics->metrics[i];
            for (size_t j = 0; j < m->n_execution_metrics; j++)
                if (m->execution_metrics[j]->value)
                    sink += (size_t)m->execution_metrics[j]->value->value;
        }
    switch (r->response_type_case) {
    case SPARK__CONNECT__EXECUTE_PLAN_RESPONSE__RESPONSE_TYPE_ARROW_BATCH:
        if (r->arrow_batch->data.len) sink += r->arrow_batch->data.data[0];
        break;
    case SPARK__CONNECT__EXECUTE_PLAN_RESPONSE__RESPONSE_TYPE_SQL_COMMAND_RESULT:
        walk_relation(r->sql_command_result->relation);
        break;
    case SPARK__CONNECT__EXECUTE_PLAN_RESPONSE__RESPONSE_TYPE_EXECUTION_PROGRESS:
        for (size_t i = 0; i < r->execution_progress->n_stages; i++)
            sink += (size_t)r->execution_progress->stages[i]->num_tasks;
        break;
    default:
        break;
    }
}

/* Whether m or a message inside it kept an unknown field numbered 0. protobuf-c 1.4 accepts field
 * 0 when its tag is a non-minimal varint (80 00) but packs it minimally (00), which it then
 * rejects: a quirk on input no protobuf encoder produces, so the round trip is excused for it. */
static int has_field_zero(const ProtobufCMessage *m) {
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0) return 1;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        const char *base = (const char *)m;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            ProtobufCMessage *const *arr = *(ProtobufCMessage *const *const *)(base + f->offset);
            for (size_t j = 0; j < n; j++)
                if (has_field_zero(arr[j])) return 1;
            continue;
        }
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)(base + f->offset);
        if (sub && has_field_zero(sub)) return 1;
    }
    return 0;
}

/* unpack(pack(m)) must succeed and pack to the same bytes as m. */
static void check_stable(const ProtobufCMessage *m) {
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *a = malloc(n + 1);
    if (protobuf_c_message_pack(m, a) != n) abort();
    ProtobufCMessage *again = protobuf_c_message_unpack(m->descriptor, NULL, n, a);
    if (!again) {
        if (!has_field_zero(m)) abort();
        free(a);
        return;
    }
    size_t n2 = protobuf_c_message_get_packed_size(again);
    uint8_t *b = malloc(n2 + 1);
    if (protobuf_c_message_pack(again, b) != n2 || n2 != n || memcmp(a, b, n) != 0) abort();
    protobuf_c_message_free_unpacked(again, NULL);
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Spark__Connect__ExecutePlanResponse *resp =
        spark__connect__execute_plan_response__unpack(NULL, size, data);
    if (resp) {
        walk_response(resp);
        check_stable(&resp->base);
        spark__connect__execute_plan_response__free_unpacked(resp, NULL);
    }

    Google__Rpc__Status *st = google__rpc__status__unpack(NULL, size, data);
    if (st) {
        sink += st->message ? strlen(st->message) : 0;
        for (size_t i = 0; i < st->n_details; i++) {
            const Google__Rpc__Any *any = st->details[i];
            Google__Rpc__ErrorInfo *info =
                google__rpc__error_info__unpack(NULL, any->value.len, any->value.data);
            if (info) {
                for (size_t j = 0; j < info->n_metadata; j++)
                    sink += info->metadata[j]->value ? strlen(info->metadata[j]->value) : 0;
                google__rpc__error_info__free_unpacked(info, NULL);
            }
            Google__Rpc__RetryInfo *retry =
                google__rpc__retry_info__unpack(NULL, any->value.len, any->value.data);
            if (retry) {
                if (retry->retry_delay) sink += (size_t)retry->retry_delay->seconds;
                google__rpc__retry_info__free_unpacked(retry, NULL);
            }
        }
        check_stable(&st->base);
        google__rpc__status__free_unpacked(st, NULL);
    }

    Spark__Connect__FetchErrorDetailsResponse *fe =
        spark__connect__fetch_error_details_response__unpack(NULL, size, data);
    if (fe) {
        for (size_t i = 0; i < fe->n_errors; i++) {
            const Spark__Connect__FetchErrorDetailsResponse__Error *e = fe->errors[i];
            sink += e->n_error_type_hierarchy + e->n_stack_trace;
            if (e->spark_throwable) sink += e->spark_throwable->n_query_contexts;
        }
        check_stable(&fe->base);
        spark__connect__fetch_error_details_response__free_unpacked(fe, NULL);
    }
    return 0;
}
