/* Decoding and encoding whole messages: JSON parts, identities, buffers and the errors. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jupyter/message.h"

static const char KEY[] = "5ca1ab1e-feed-4bad-b0a7-c0ffee000001";

static kl_signer signer;
static kl_frames frames;
static kl_msg msg;
static char err[256];

static void setup(void) {
    cr_assert_eq(kl_signer_init(&signer, "hmac-sha256", KEY, strlen(KEY), err, sizeof err), 0);
    kl_frames_init(&frames);
    kl_msg_init(&msg);
}

static void teardown(void) {
    kl_msg_clear(&msg);
    kl_frames_clear(&frames);
    kl_signer_free(&signer);
}

TestSuite(message, .init = setup, .fini = teardown);

static void add_str(kl_frames *f, const char *s) {
    cr_assert_eq(kl_frames_add(f, s, strlen(s)), 0);
}

static bool frame_is(const kl_frames *f, size_t i, const char *s) {
    return kl_frames_size(f, i) == strlen(s) && memcmp(kl_frames_data(f, i), s, strlen(s)) == 0;
}

/* Builds a correctly signed message from four JSON texts, with the given identities. */
static void build_signed(const char *const *idents, size_t n_idents, const char *const json[4]) {
    for (size_t i = 0; i < n_idents; i++) add_str(&frames, idents[i]);
    add_str(&frames, KL_WIRE_DELIM);
    kl_slice parts[4];
    for (int i = 0; i < 4; i++) parts[i] = (kl_slice){json[i], strlen(json[i])};
    char hex[KL_SIG_HEX_MAX];
    cr_assert_eq(kl_signer_sign(&signer, parts, hex), 0);
    add_str(&frames, hex);
    for (int i = 0; i < 4; i++) add_str(&frames, json[i]);
}

static const char *const GOOD_HEADER =
    "{\"msg_id\":\"m1\",\"msg_type\":\"execute_request\",\"session\":\"s1\",\"username\":\"u\","
    "\"date\":\"2024-01-02T03:04:05.000006Z\",\"version\":\"5.4\"}";

Test(message, decodes_what_jupyter_client_sends) {
    /* Session.serialize output from tests/data/gen_signatures.py (jupyter_client 8.10): its JSON
     * has spaces after separators and raw UTF-8, and the signature covers those exact bytes. */
    static const char *const wire[] = {
        "client-1",
        "<IDS|MSG>",
        "c1a3d6cce246757c70c306da6b0d56b2980cca465cc18a380d55ac74f5e66917",
        "{\"msg_id\": \"m1\", \"msg_type\": \"execute_request\", \"session\": \"s1\", "
        "\"username\": "
        "\"\xc3\xbc\", \"date\": \"2024-01-02T03:04:05.000006Z\", \"version\": \"5.4\"}",
        "{}",
        "{}",
        "{\"code\": \"SELECT '\xc3\xa9'\", \"silent\": false}",
    };
    for (size_t i = 0; i < sizeof wire / sizeof wire[0]; i++) add_str(&frames, wire[i]);
    cr_assert_eq(kl_msg_decode(&frames, &signer, &msg, err, sizeof err), KL_MSG_OK, "%s", err);
    cr_assert_eq(frames.n, 0, "input frames are consumed");
    cr_assert_eq(msg.idents.n, 1);
    cr_assert(frame_is(&msg.idents, 0, "client-1"));
    cr_assert_str_eq(kl_msg_type(&msg), "execute_request");
    cr_assert_str_eq(kl_msg_id(&msg), "m1");
    cr_assert_str_eq(kl_msg_session(&msg), "s1");
    cr_assert_str_eq(kl_msg_username(&msg), "\xc3\xbc");
    cr_assert_null(kl_msg_subshell_id(&msg));
    cr_assert_str_eq(json_string_value(json_object_get(msg.content, "code")), "SELECT '\xc3\xa9'");
    cr_assert_eq(json_object_size(msg.parent_header), 0);
    cr_assert_eq(msg.buffers.n, 0);
}

Test(message, encode_decode_round_trip) {
    kl_msg out;
    kl_msg_init(&out);
    add_str(&out.idents, "peer-a");
    add_str(&out.idents, "peer-b");
    out.header = kl_msg_header_new("kernel_info_reply", "sess-9", "kernel");
    out.parent_header = json_pack("{s:s}", "msg_id", "p1");
    out.metadata = json_object();
    out.content = json_pack("{s:s, s:f, s:[i,i]}", "status", "ok", "pi", 3.25, "list", 1, 2);
    add_str(&out.buffers, "raw-bytes");
    cr_assert_eq(kl_msg_encode(&out, &signer, &frames), 0);

    cr_assert_eq(frames.n, 2 + 1 + 1 + 4 + 1);
    cr_assert(frame_is(&frames, 0, "peer-a"));
    cr_assert(frame_is(&frames, 2, KL_WIRE_DELIM));
    cr_assert_eq(kl_frames_size(&frames, 3), 64, "hmac-sha256 hex signature");
    cr_assert(frame_is(&frames, 5, "{\"msg_id\":\"p1\"}"), "compact JSON");
    cr_assert(frame_is(&frames, 8, "raw-bytes"));

    cr_assert_eq(kl_msg_decode(&frames, &signer, &msg, err, sizeof err), KL_MSG_OK, "%s", err);
    cr_assert_eq(msg.idents.n, 2);
    cr_assert(frame_is(&msg.idents, 1, "peer-b"));
    cr_assert(json_equal(msg.header, out.header));
    cr_assert(json_equal(msg.parent_header, out.parent_header));
    cr_assert(json_equal(msg.content, out.content));
    cr_assert_eq(msg.buffers.n, 1);
    cr_assert(frame_is(&msg.buffers, 0, "raw-bytes"));
    /* encode leaves its input alone */
    cr_assert_eq(out.idents.n, 2);
    cr_assert(frame_is(&out.buffers, 0, "raw-bytes"));
    kl_msg_clear(&out);
}

Test(message, encode_with_null_parts_sends_empty_objects) {
    kl_msg out;
    kl_msg_init(&out);
    out.header = json_pack("{s:s,s:s,s:s}", "msg_id", "x", "msg_type", "status", "session", "s");
    cr_assert_eq(kl_msg_encode(&out, &signer, &frames), 0);
    cr_assert_eq(frames.n, 6);
    cr_assert(frame_is(&frames, 3, "{}"));
    cr_assert(frame_is(&frames, 5, "{}"));
    kl_msg_clear(&out);
}

Test(message, buffers_preserved_in_order_without_copying) {
    static const char *const json[4] = {GOOD_HEADER, "{}", "{}", "{}"};
    build_signed(NULL, 0, json);
    char big[5000];
    memset(big, 'x', sizeof big);
    cr_assert_eq(kl_frames_add(&frames, big, sizeof big), 0);
    add_str(&frames, "second");
    const void *big_data = kl_frames_data(&frames, 6);
    cr_assert_eq(kl_msg_decode(&frames, &signer, &msg, err, sizeof err), KL_MSG_OK, "%s", err);
    cr_assert_eq(msg.buffers.n, 2);
    cr_assert_eq(kl_frames_size(&msg.buffers, 0), sizeof big);
    cr_assert_eq(kl_frames_data(&msg.buffers, 0), big_data, "buffer bytes were copied");
    cr_assert(frame_is(&msg.buffers, 1, "second"));
}

Test(message, bad_signature) {
    static const char *const id[] = {"who"};
    static const char *const json[4] = {GOOD_HEADER, "{}", "{}", "{}"};
    build_signed(id, 1, json);
    char *content = zmq_msg_data(&frames.v[6]);
    content[0] = '['; /* tamper after signing */
    cr_assert_eq(kl_msg_decode(&frames, &signer, &msg, err, sizeof err), KL_MSG_EBADSIG);
    cr_assert(strstr(err, "signature") != NULL, "%s", err);
    cr_assert_eq(msg.idents.n, 1, "identities are kept on error");
    cr_assert(frame_is(&msg.idents, 0, "who"));
    cr_assert_null(msg.header);
}

Test(message, bad_json) {
    static const char *const id[] = {"a", "b"};
    static const char *const json[4] = {GOOD_HEADER, "{}", "{}", "{\"code\": "};
    build_signed(id, 2, json);
    cr_assert_eq(kl_msg_decode(&frames, &signer, &msg, err, sizeof err), KL_MSG_EJSON);
    cr_assert(strstr(err, "content") != NULL, "%s", err);
    cr_assert_eq(msg.idents.n, 2, "identities are kept on error");
    cr_assert(frame_is(&msg.idents, 1, "b"));
    cr_assert_null(msg.header, "partial results are freed on error");
    cr_assert_eq(frames.n, 0);
}

Test(message, escaped_nul_in_a_string_is_rejected) {
    static const char *const json[4] = {GOOD_HEADER, "{}", "{}", "{\"code\":\"a\\u0000b\"}"};
    build_signed(NULL, 0, json);
    cr_assert_eq(kl_msg_decode(&frames, &signer, &msg, err, sizeof err), KL_MSG_EJSON);
}

Test(message, non_object_content) {
    static const char *const json[4] = {GOOD_HEADER, "{}", "{}", "[1,2]"};
    build_signed(NULL, 0, json);
    cr_assert_eq(kl_msg_decode(&frames, &signer, &msg, err, sizeof err), KL_MSG_EJSON);
    cr_assert(strstr(err, "content must be a JSON object, not an array") != NULL, "%s", err);
}

Test(message, scalar_metadata) {
    static const char *const json[4] = {GOOD_HEADER, "{}", "42", "{}"};
    build_signed(NULL, 0, json);
    cr_assert_eq(kl_msg_decode(&frames, &signer, &msg, err, sizeof err), KL_MSG_EJSON);
    cr_assert(strstr(err, "metadata") != NULL, "%s", err);
}

static void expect_header_error(const char *header, const char *fragment) {
    static const char *const id[] = {"ident"};
    const char *json[4] = {header, "{}", "{}", "{}"};
    build_signed(id, 1, json);
    cr_assert_eq(kl_msg_decode(&frames, &signer, &msg, err, sizeof err), KL_MSG_EHEADER, "%s",
                 header);
    cr_assert(strstr(err, fragment) != NULL, "error lacks \"%s\": %s", fragment, err);
    cr_assert_eq(msg.idents.n, 1);
    kl_msg_clear(&msg);
    kl_frames_clear(&frames);
}

Test(message, header_missing_fields) {
    expect_header_error("{\"msg_type\":\"t\",\"session\":\"s\"}", "msg_id");
    expect_header_error("{\"msg_id\":\"i\",\"session\":\"s\"}", "msg_type");
    expect_header_error("{\"msg_id\":\"i\",\"msg_type\":\"t\"}", "session");
    expect_header_error("{\"msg_id\":7,\"msg_type\":\"t\",\"session\":\"s\"}",
                        "\"msg_id\" must be a string");
    expect_header_error("{\"msg_id\":\"i\",\"msg_type\":\"\",\"session\":\"s\"}", "msg_type");
    expect_header_error("{\"msg_id\":\"i\",\"msg_type\":\"t\",\"session\":\"s\",\"username\":1}",
                        "username");
}

Test(message, minimal_header_gets_empty_username) {
    static const char *const json[4] = {
        "{\"msg_id\":\"i\",\"msg_type\":\"t\",\"session\":\"s\",\"subshell_id\":\"sub-1\"}", "{}",
        "{}", "{}"};
    build_signed(NULL, 0, json);
    cr_assert_eq(kl_msg_decode(&frames, &signer, &msg, err, sizeof err), KL_MSG_OK, "%s", err);
    cr_assert_str_eq(kl_msg_username(&msg), "");
    cr_assert_str_eq(json_string_value(json_object_get(msg.header, "username")), "");
    cr_assert_str_eq(kl_msg_subshell_id(&msg), "sub-1");
}

Test(message, framing_errors) {
    add_str(&frames, "ident");
    add_str(&frames, "{}");
    cr_assert_eq(kl_msg_decode(&frames, &signer, &msg, err, sizeof err), KL_MSG_EFRAMES);
    cr_assert(strstr(err, "<IDS|MSG>") != NULL, "%s", err);
    cr_assert_eq(frames.n, 0);
    kl_msg_clear(&msg);

    add_str(&frames, "ident");
    add_str(&frames, KL_WIRE_DELIM);
    add_str(&frames, "sig");
    cr_assert_eq(kl_msg_decode(&frames, &signer, &msg, err, sizeof err), KL_MSG_EFRAMES);
    cr_assert_eq(msg.idents.n, 1, "identities are kept when the message is short");
}

static bool parse_iso8601(const char *s) {
    struct tm tm = {0};
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest || rest[0] != '.' || strlen(rest) != 8 || rest[7] != 'Z') return false;
    for (int i = 1; i < 7; i++)
        if (rest[i] < '0' || rest[i] > '9') return false;
    time_t t = timegm(&tm);
    time_t now = time(NULL);
    return t > now - 60 && t < now + 60;
}

Test(message, header_new_has_all_six_fields) {
    json_t *h = kl_msg_header_new("status", "sess", "alice");
    cr_assert_not_null(h);
    cr_assert_eq(json_object_size(h), 6);
    const char *id = json_string_value(json_object_get(h, "msg_id"));
    cr_assert_not_null(id);
    cr_assert_eq(strlen(id), 36, "UUID: %s", id);
    cr_assert_str_eq(json_string_value(json_object_get(h, "msg_type")), "status");
    cr_assert_str_eq(json_string_value(json_object_get(h, "session")), "sess");
    cr_assert_str_eq(json_string_value(json_object_get(h, "username")), "alice");
    cr_assert_str_eq(json_string_value(json_object_get(h, "version")), "5.5");
    const char *date = json_string_value(json_object_get(h, "date"));
    cr_assert_not_null(date);
    cr_assert(parse_iso8601(date), "date not ISO 8601 UTC with microseconds, or not now: %s", date);
    json_t *h2 = kl_msg_header_new("status", "sess", "alice");
    cr_assert_str_neq(id, json_string_value(json_object_get(h2, "msg_id")), "msg_id repeats");
    json_decref(h2);
    json_decref(h);
}

Test(message, iso8601_now) {
    char now[32];
    kl_iso8601_now(now);
    cr_assert_eq(strlen(now), 27, "%s", now);
    cr_assert(parse_iso8601(now), "%s", now);
}

Test(message, child_of_a_request) {
    static const char *const id[] = {"peer-1", "peer-2"};
    static const char *const json[4] = {GOOD_HEADER, "{}", "{}", "{}"};
    build_signed(id, 2, json);
    cr_assert_eq(kl_msg_decode(&frames, &signer, &msg, err, sizeof err), KL_MSG_OK, "%s", err);

    kl_msg child;
    json_t *content = json_pack("{s:s}", "execution_state", "busy");
    cr_assert_eq(kl_msg_init_child(&child, &msg, "status", "kernel-sess", content), 0);
    cr_assert_eq(child.content, content, "content is stolen, not copied");
    cr_assert_eq(child.idents.n, 2);
    cr_assert(frame_is(&child.idents, 1, "peer-2"));
    cr_assert(json_equal(child.parent_header, msg.header));
    cr_assert_eq(child.parent_header, msg.header, "the parent header is shared, not copied");
    cr_assert_gt(msg.header->refcount, 1, "sharing must hold a reference of its own");
    cr_assert_str_eq(kl_msg_type(&child), "status");
    cr_assert_str_eq(kl_msg_session(&child), "kernel-sess");
    cr_assert_str_eq(kl_msg_username(&child), "u");
    cr_assert(json_is_object(child.metadata));
    kl_msg_clear(&child);
    /* the parent survives its child */
    cr_assert_eq(msg.idents.n, 2);
    cr_assert_str_eq(kl_msg_type(&msg), "execute_request");
}

Test(message, child_without_parent) {
    kl_msg child;
    cr_assert_eq(kl_msg_init_child(&child, NULL, "status", "kernel-sess", NULL), 0);
    cr_assert_eq(child.idents.n, 0);
    cr_assert(json_is_object(child.parent_header));
    cr_assert_eq(json_object_size(child.parent_header), 0);
    cr_assert(json_is_object(child.content));
    cr_assert_eq(json_object_size(child.content), 0);
    cr_assert_str_eq(kl_msg_username(&child), "kernel");
    kl_msg_clear(&child);
}

Test(message, unsigned_session) {
    kl_signer off;
    cr_assert_eq(kl_signer_init(&off, "hmac-sha256", "", 0, err, sizeof err), 0);
    kl_msg out;
    cr_assert_eq(kl_msg_init_child(&out, NULL, "status", "s", NULL), 0);
    cr_assert_eq(kl_msg_encode(&out, &off, &frames), 0);
    cr_assert_eq(kl_frames_size(&frames, 1), 0, "empty signature frame");
    cr_assert_eq(kl_msg_decode(&frames, &off, &msg, err, sizeof err), KL_MSG_OK, "%s", err);
    cr_assert_str_eq(kl_msg_type(&msg), "status");
    kl_msg_clear(&out);
    kl_signer_free(&off);
}

/* Builds {"a":{"a":...1...}} nested depth levels deep; caller frees. */
static char *nested(int depth) {
    char *s = malloc((size_t)depth * 6 + 2), *p = s;
    for (int i = 0; i < depth; i++) p = memcpy(p, "{\"a\":", 5) + 5;
    *p++ = '1';
    for (int i = 0; i < depth; i++) *p++ = '}';
    *p = 0;
    return s;
}

Test(message, nesting_at_the_limit_decodes_and_beyond_is_refused) {
    static const char *const id[] = {"who"};
    char *ok = nested(KL_MSG_MAX_DEPTH);
    const char *const json_ok[4] = {GOOD_HEADER, "{}", "{}", ok};
    build_signed(id, 1, json_ok);
    cr_assert_eq(kl_msg_decode(&frames, &signer, &msg, err, sizeof err), KL_MSG_OK, "%s", err);
    kl_msg_clear(&msg);
    kl_frames_clear(&frames);

    /* Brackets inside strings do not count. */
    const char *const json_str[4] = {GOOD_HEADER, "{}", "{}", "{\"s\": \"[[[[[[[[[[\\\"{{{{\"}"};
    build_signed(id, 1, json_str);
    cr_assert_eq(kl_msg_decode(&frames, &signer, &msg, err, sizeof err), KL_MSG_OK, "%s", err);
    kl_msg_clear(&msg);
    kl_frames_clear(&frames);

    char *deep = nested(KL_MSG_MAX_DEPTH + 1);
    const char *const json_deep[4] = {GOOD_HEADER, "{}", "{}", deep};
    build_signed(id, 1, json_deep);
    cr_assert_eq(kl_msg_decode(&frames, &signer, &msg, err, sizeof err), KL_MSG_EJSON);
    cr_assert(strstr(err, "nested deeper") != NULL, "%s", err);
    cr_assert_eq(msg.idents.n, 1, "identities are kept on error");
    free(ok);
    free(deep);
}

/* ---- encoding a child straight to frames (kl_msg_encode_child) ---- */

static const char *const CLIENT_HEADER =
    "{\"msg_id\": \"m1\", \"msg_type\": \"kernel_info_request\", \"session\": \"s1\", "
    "\"username\": \"\xc3\xbc \\\"q\\\"\", \"date\": \"2024-01-02T03:04:05.000006Z\", "
    "\"version\": \"5.4\"}";

/* Decodes a request sent with the given header and two identities into msg. */
static void receive_request(const char *header) {
    static const char *const id[] = {"peer-1", "peer-2"};
    const char *json[4] = {header, "{}", "{}", "{}"};
    build_signed(id, 2, json);
    cr_assert_eq(kl_msg_decode(&frames, &signer, &msg, err, sizeof err), KL_MSG_OK, "%s", err);
}

static size_t frame_index(const kl_frames *f, const char *s) {
    for (size_t i = 0; i < f->n; i++)
        if (frame_is(f, i, s)) return i;
    return f->n;
}

Test(message, child_encodes_like_init_child_and_encode) {
    receive_request(CLIENT_HEADER);
    json_t *content = json_pack("{s:s, s:[i, s]}", "status", "ok", "list", 1, "\xe2\x82\xac\n");

    /* The reference: the generic path. */
    kl_msg ref;
    cr_assert_eq(kl_msg_init_child(&ref, &msg, "x_reply", "kernel-sess", json_incref(content)), 0);
    kl_frames a;
    kl_frames_init(&a);
    cr_assert_eq(kl_msg_encode(&ref, &signer, &a), 0);

    char id[KL_UUID_STRLEN] = "";
    kl_msg_out o = {
        .msg_type = "x_reply", .session = "kernel-sess", .content = content, .msg_id = id};
    kl_frames b;
    kl_frames_init(&b);
    cr_assert_eq(kl_msg_encode_child(&msg, &o, &signer, &b), 0);
    cr_assert_eq(strlen(id), 36, "the new msg_id is handed back: %s", id);

    cr_assert_eq(a.n, b.n);
    cr_assert_eq(b.n, 2 + 1 + 1 + 4);
    cr_assert(frame_is(&b, 0, "peer-1") && frame_is(&b, 1, "peer-2") &&
              frame_is(&b, 2, KL_WIRE_DELIM));
    /* parent_header: the request's header exactly as the client wrote it, spaces and all */
    cr_assert(frame_is(&b, 5, CLIENT_HEADER));
    cr_assert(frame_is(&a, 5, CLIENT_HEADER), "init_child + encode share it too");
    for (size_t i = 6; i < 8; i++)
        cr_assert(kl_frames_size(&a, i) == kl_frames_size(&b, i) &&
                      memcmp(kl_frames_data(&a, i), kl_frames_data(&b, i), kl_frames_size(&a, i)) ==
                          0,
                  "frame %zu", i);

    /* The header text is what encoding kl_msg_header_new's object gives, up to id and date. */
    json_t *hb = json_loadb(kl_frames_data(&b, 4), kl_frames_size(&b, 4), 0, NULL);
    cr_assert_not_null(hb, "header is JSON");
    cr_assert_str_eq(json_string_value(json_object_get(hb, "msg_id")), id);
    json_object_set(hb, "date", json_object_get(ref.header, "date"));
    json_object_set(hb, "msg_id", json_object_get(ref.header, "msg_id"));
    char *want = json_dumps(ref.header, JSON_COMPACT), *got = json_dumps(hb, JSON_COMPACT);
    cr_assert_str_eq(got, want, "same fields, same order");
    free(want);
    free(got);
    json_decref(hb);

    /* And it decodes, signature included. */
    kl_msg back;
    cr_assert_eq(kl_msg_decode(&b, &signer, &back, err, sizeof err), KL_MSG_OK, "%s", err);
    cr_assert(json_equal(back.parent_header, msg.header));
    cr_assert(json_equal(back.content, content));
    cr_assert_str_eq(kl_msg_username(&back), "\xc3\xbc \"q\"", "username comes from the parent");
    cr_assert_str_eq(kl_msg_id(&back), id);
    kl_msg_clear(&back);
    kl_msg_clear(&ref);
    kl_frames_clear(&a);
    json_decref(content);
}

Test(message, child_with_topic_text_content_and_buffers) {
    receive_request(GOOD_HEADER);
    static const char text[] = "{\"execution_state\":\"busy\"}";
    kl_frames bufs;
    kl_frames_init(&bufs);
    add_str(&bufs, "raw-1");
    add_str(&bufs, "raw-2");
    kl_msg_out o = {.msg_type = "status",
                    .session = "kernel-sess",
                    .topic = "session.s1.status",
                    .content_text = {text, sizeof text - 1},
                    .buffers = &bufs};
    cr_assert_eq(kl_msg_encode_child(&msg, &o, &signer, &frames), 0);
    cr_assert_eq(bufs.n, 0, "buffers are consumed");
    cr_assert_eq(frames.n, 1 + 1 + 1 + 4 + 2);
    cr_assert(frame_is(&frames, 0, "session.s1.status"), "the topic replaces the identities");
    cr_assert(frame_is(&frames, 6, text));
    cr_assert_eq(kl_frames_data(&frames, 6), (const void *)text, "constant content is not copied");
    cr_assert(frame_is(&frames, 8, "raw-2"));
    kl_msg back;
    cr_assert_eq(kl_msg_decode(&frames, &signer, &back, err, sizeof err), KL_MSG_OK, "%s", err);
    cr_assert_str_eq(kl_msg_type(&back), "status");
    cr_assert_str_eq(json_string_value(json_object_get(back.content, "execution_state")), "busy");
    cr_assert_eq(back.buffers.n, 2);
    kl_msg_clear(&back);
}

Test(message, child_without_parent_has_empty_parent_and_kernel_username) {
    kl_msg_out o = {.msg_type = "status", .session = "k"};
    cr_assert_eq(kl_msg_encode_child(NULL, &o, &signer, &frames), 0);
    cr_assert_eq(frames.n, 6, "no identities");
    cr_assert(frame_is(&frames, 3, "{}") && frame_is(&frames, 4, "{}") &&
              frame_is(&frames, 5, "{}"));
    cr_assert_eq(kl_msg_decode(&frames, &signer, &msg, err, sizeof err), KL_MSG_OK, "%s", err);
    cr_assert_str_eq(kl_msg_username(&msg), "kernel");
}

Test(message, completed_header_is_written_again_not_echoed) {
    /* No username: decode adds "", so the received text no longer spells the header. */
    static const char *const bare = "{\"msg_id\":\"i\",\"msg_type\":\"t\",\"session\":\"s\"}";
    receive_request(bare);
    cr_assert_eq(msg.header_text.n, 0);
    kl_msg_out o = {.msg_type = "status", .session = "k"};
    kl_frames out;
    kl_frames_init(&out);
    cr_assert_eq(kl_msg_encode_child(&msg, &o, &signer, &out), 0);
    size_t delim = frame_index(&out, KL_WIRE_DELIM);
    json_t *parent =
        json_loadb(kl_frames_data(&out, delim + 3), kl_frames_size(&out, delim + 3), 0, NULL);
    cr_assert(json_equal(parent, msg.header), "the parent header as decoded, username included");
    json_decref(parent);
    kl_frames_clear(&out);
}

Test(message, replaced_header_is_not_echoed) {
    receive_request(GOOD_HEADER);
    cr_assert_eq(msg.header_text.n, 1, "an unchanged header keeps its text");
    json_decref(msg.header);
    msg.header = json_pack("{s:s, s:s, s:s, s:s}", "msg_id", "other", "msg_type", "t", "session",
                           "s", "username", "u");
    cr_assert_eq(kl_msg_encode(&msg, &signer, &frames), 0);
    size_t delim = frame_index(&frames, KL_WIRE_DELIM);
    cr_assert(frame_is(&frames, delim + 2,
                       "{\"msg_id\":\"other\",\"msg_type\":\"t\",\"session\":\"s\",\"username\":"
                       "\"u\"}"));
}

Test(message, signer_reused_across_many_messages) {
    /* Each signature restarts one keyed context: results must not depend on what came before. */
    kl_slice p1[4] = {{"{\"a\":1}", 7}, {"{}", 2}, {"{}", 2}, {"{}", 2}};
    kl_slice p2[4] = {{"{\"b\":2}", 7}, {"", 0}, {"{}", 2}, {"x", 1}};
    char first1[KL_SIG_HEX_MAX], first2[KL_SIG_HEX_MAX], hex[KL_SIG_HEX_MAX];
    cr_assert_eq(kl_signer_sign(&signer, p1, first1), 0);
    cr_assert_eq(kl_signer_sign(&signer, p2, first2), 0);
    cr_assert_str_neq(first1, first2);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(kl_signer_sign(&signer, i % 2 ? p2 : p1, hex), 0);
        cr_assert_str_eq(hex, i % 2 ? first2 : first1);
    }
}

typedef struct sign_job {
    const kl_signer *s;
    const char *want;
    int bad;
} sign_job;

static void *sign_many(void *arg) {
    sign_job *j = arg;
    kl_slice p[4] = {{"{\"a\":1}", 7}, {"{}", 2}, {"{}", 2}, {"{}", 2}};
    char hex[KL_SIG_HEX_MAX];
    for (int i = 0; i < 2000; i++)
        if (kl_signer_sign(j->s, p, hex) != 0 || strcmp(hex, j->want) != 0) j->bad++;
    return NULL;
}

Test(message, signer_is_safe_across_threads) {
    kl_slice p[4] = {{"{\"a\":1}", 7}, {"{}", 2}, {"{}", 2}, {"{}", 2}};
    char want[KL_SIG_HEX_MAX];
    cr_assert_eq(kl_signer_sign(&signer, p, want), 0);
    pthread_t th[4];
    sign_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (sign_job){&signer, want, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, sign_many, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(jobs[i].bad, 0, "thread %d", i);
    }
}

/* Header dates order one client's requests around its interrupt_request (docs/comm.md,
 * "Interrupts"): jupyter_client writes microseconds and Z, JavaScript milliseconds and Z, others
 * an offset or no zone at all. */
Test(iso8601_to_us, header_dates_in_microseconds) {
    /* 2024-01-31T12:00:00Z is 1706702400 s after the epoch. */
    const int64_t base = INT64_C(1706702400) * 1000000;
    cr_expect_eq(kl_iso8601_to_us("2024-01-31T12:00:00.123456Z"), base + 123456);
    cr_expect_eq(kl_iso8601_to_us("2024-01-31T12:00:00.123Z"), base + 123000);
    cr_expect_eq(kl_iso8601_to_us("2024-01-31T12:00:00Z"), base);
    cr_expect_eq(kl_iso8601_to_us("2024-01-31T12:00:00"), base, "no zone: UTC");
    cr_expect_eq(kl_iso8601_to_us("2024-01-31T13:30:00+01:30"), base);
    cr_expect_eq(kl_iso8601_to_us("2024-01-31T04:00:00.5-0800"), base + 500000);
    cr_expect_eq(kl_iso8601_to_us("2024-01-31 12:00:00.1234567891Z"), base + 123456,
                 "digits beyond microseconds are dropped");
    cr_expect_eq(kl_iso8601_to_us("1970-01-01T00:00:00Z"), 0);
}

Test(iso8601_to_us, later_requests_compare_greater) {
    cr_expect_lt(kl_iso8601_to_us("2024-12-31T23:59:59.999999Z"),
                 kl_iso8601_to_us("2025-01-01T00:00:00.000000Z"));
    cr_expect_lt(kl_iso8601_to_us("2024-02-28T10:00:00.000001Z"),
                 kl_iso8601_to_us("2024-02-28T10:00:00.000002Z"));
    cr_expect_lt(kl_iso8601_to_us("2024-02-29T01:00:00+02:00"),
                 kl_iso8601_to_us("2024-02-28T23:30:00Z"));
}

Test(iso8601_to_us, anything_else_is_no_time) {
    const char *bad[] = {"",
                         "2024-01-31",
                         "2024-01-31T12:00",
                         "2024-1-31T12:00:00Z",
                         "2024-13-01T00:00:00Z",
                         "2024-01-31T12:00:00.Z",
                         "2024-01-31T12:00:00Zjunk",
                         "2024-01-31T12:00:00+1",
                         "yesterday",
                         "2024-01-31T25:00:00Z"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_eq(kl_iso8601_to_us(bad[i]), KL_ISO8601_NONE, "%s", bad[i]);
    cr_expect_eq(kl_iso8601_to_us(NULL), KL_ISO8601_NONE);
}
