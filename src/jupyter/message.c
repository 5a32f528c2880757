/* Jupyter messages: decoding frames into jansson objects and encoding them back. */
#include "jupyter/message.h"

#include "jupyter/jsontext.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "runtime/uuid.h"

#define PROTOCOL_VERSION "5.5"

static const char *const part_names[4] = {"header", "parent_header", "metadata", "content"};

void kl_msg_init(kl_msg *m) {
    kl_frames_init(&m->idents);
    m->header = m->parent_header = m->metadata = m->content = NULL;
    kl_frames_init(&m->buffers);
}

void kl_msg_clear(kl_msg *m) {
    kl_frames_clear(&m->idents);
    json_decref(m->header);
    json_decref(m->parent_header);
    json_decref(m->metadata);
    json_decref(m->content);
    m->header = m->parent_header = m->metadata = m->content = NULL;
    kl_frames_clear(&m->buffers);
}

/* Moves frames [from, from+count) of src to the end of dst without copying their bytes. */
static int move_frames(kl_frames *dst, kl_frames *src, size_t from, size_t count) {
    for (size_t i = from; i < from + count; i++) {
        int r = kl_frames_add_msg(dst, &src->v[i]);
        if (r < 0) return r;
    }
    return 0;
}

const char *kl_json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "something else";
}

static int check_header(json_t *h, char *err, size_t errlen) {
    static const char *const required[] = {"msg_id", "msg_type", "session"};
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(h, required[i]);
        if (!v) {
            snprintf(err, errlen, "header has no \"%s\"", required[i]);
            return KL_MSG_EHEADER;
        }
        if (!json_is_string(v)) {
            snprintf(err, errlen, "header field \"%s\" must be a string, not %s", required[i],
                     kl_json_kind(v));
            return KL_MSG_EHEADER;
        }
    }
    if (json_string_length(json_object_get(h, "msg_type")) == 0) {
        snprintf(err, errlen, "header field \"msg_type\" is empty");
        return KL_MSG_EHEADER;
    }
    json_t *user = json_object_get(h, "username");
    if (!user) {
        if (json_object_set_new(h, "username", json_string("")) < 0) {
            snprintf(err, errlen, "out of memory");
            return KL_MSG_EHEADER;
        }
    } else if (!json_is_string(user)) {
        snprintf(err, errlen, "header field \"username\" must be a string, not %s",
                 kl_json_kind(user));
        return KL_MSG_EHEADER;
    }
    json_t *sub = json_object_get(h, "subshell_id");
    if (sub && !json_is_string(sub) && !json_is_null(sub)) {
        snprintf(err, errlen, "header field \"subshell_id\" must be a string or null, not %s",
                 kl_json_kind(sub));
        return KL_MSG_EHEADER;
    }
    return KL_MSG_OK;
}

/* Deepest nesting of brackets outside strings. jansson parses, copies and frees recursively, and
 * the kernel does that on coroutine stacks, so depth is bounded before any of it starts. */
static int json_depth(const char *s, size_t len) {
    int depth = 0, max = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max) max = depth;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return max;
}

int kl_msg_decode(kl_frames *frames, const kl_signer *s, kl_msg *out, char *err, size_t errlen) {
    kl_msg_init(out);
    kl_wire_parts parts;
    int w = kl_wire_split(frames, s, &parts);
    int status = KL_MSG_OK;
    /* Identities are kept whatever else is wrong, so the caller can still answer the sender. */
    if (w != KL_WIRE_ENODELIM && move_frames(&out->idents, frames, 0, parts.n_idents) < 0) {
        snprintf(err, errlen, "out of memory");
        status = KL_MSG_EFRAMES;
        goto done;
    }
    if (w == KL_WIRE_ENODELIM || w == KL_WIRE_ESHORT) {
        snprintf(err, errlen, "bad framing: %s", kl_wire_strerror(w));
        status = KL_MSG_EFRAMES;
        goto done;
    }
    if (w == KL_WIRE_EBADSIG) {
        snprintf(err, errlen, "%s",
                 parts.sig.len ? "signature does not match" : "signature missing");
        status = KL_MSG_EBADSIG;
        goto done;
    }

    json_t **dst[4] = {&out->header, &out->parent_header, &out->metadata, &out->content};
    for (int i = 0; i < 4; i++) {
        if (json_depth(parts.json[i].data, parts.json[i].len) > KL_MSG_MAX_DEPTH) {
            snprintf(err, errlen, "%s is nested deeper than %d levels", part_names[i],
                     KL_MSG_MAX_DEPTH);
            status = KL_MSG_EJSON;
            goto done;
        }
        json_error_t jerr;
        /* DECODE_ANY only so that a scalar gets the clearer "not an object" message below. */
        json_t *v = json_loadb(parts.json[i].data, parts.json[i].len, JSON_DECODE_ANY, &jerr);
        if (!v) {
            snprintf(err, errlen, "%s is not valid JSON (column %d): %s", part_names[i],
                     jerr.column, jerr.text);
            status = KL_MSG_EJSON;
            goto done;
        }
        if (!json_is_object(v)) {
            snprintf(err, errlen, "%s must be a JSON object, not %s", part_names[i],
                     kl_json_kind(v));
            json_decref(v);
            status = KL_MSG_EJSON;
            goto done;
        }
        *dst[i] = v;
    }
    status = check_header(out->header, err, errlen);
    if (status != KL_MSG_OK) goto done;
    if (move_frames(&out->buffers, frames, parts.first_buffer, parts.n_buffers) < 0) {
        snprintf(err, errlen, "out of memory");
        status = KL_MSG_EFRAMES;
    }

done:
    kl_frames_clear(frames);
    if (status != KL_MSG_OK) {
        kl_frames idents = out->idents;
        kl_frames_init(&out->idents);
        kl_msg_clear(out);
        out->idents = idents;
    }
    return status;
}

/* Appends a frame sharing src's bytes (ZeroMQ reference-counts large frames). */
static int add_shared(kl_frames *out, zmq_msg_t *src) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_copy(&m, src) < 0) {
        zmq_msg_close(&m);
        return -ENOMEM;
    }
    int r = kl_frames_add_msg(out, &m);
    zmq_msg_close(&m);
    return r < 0 ? -ENOMEM : 0;
}

int kl_msg_encode(const kl_msg *m, const kl_signer *s, kl_frames *out) {
    /* jansson cannot hold NaN or infinity (json_real refuses them), so the text is always valid
     * JSON for the Python side. */
    char *text[4] = {NULL, NULL, NULL, NULL};
    json_t *parts[4] = {m->header, m->parent_header, m->metadata, m->content};
    kl_slice slices[4];
    int rc = -ENOMEM;
    for (int i = 0; i < 4; i++) {
        size_t n = 2;
        text[i] = parts[i] ? kl_jsontext_dump(parts[i], &n) : strdup("{}");
        if (!text[i]) goto out;
        slices[i] = (kl_slice){text[i], n};
    }
    char sig[KL_SIG_HEX_MAX];
    if (kl_signer_sign(s, slices, sig) < 0) goto out;

    for (size_t i = 0; i < m->idents.n; i++)
        if (add_shared(out, &m->idents.v[i]) < 0) goto out;
    if (kl_frames_add(out, KL_WIRE_DELIM, sizeof KL_WIRE_DELIM - 1) < 0) goto out;
    if (kl_frames_add(out, sig, strlen(sig)) < 0) goto out;
    for (int i = 0; i < 4; i++)
        if (kl_frames_add(out, slices[i].data, slices[i].len) < 0) goto out;
    for (size_t i = 0; i < m->buffers.n; i++)
        if (add_shared(out, &m->buffers.v[i]) < 0) goto out;
    rc = 0;
out:
    for (int i = 0; i < 4; i++) free(text[i]);
    return rc;
}

void kl_iso8601_now(char out[32]) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%06uZ", (unsigned)(ts.tv_nsec / 1000) % 1000000u);
}

json_t *kl_msg_header_new(const char *msg_type, const char *session, const char *username) {
    char id[KL_UUID_STRLEN];
    if (kl_uuid_v4(id) < 0) return NULL;
    char date[32];
    kl_iso8601_now(date);
    /* Built field by field: this runs for every message the kernel sends, and json_pack's format
     * parsing and UTF-8 checks cost more than the rest of the header. The strings are either ours
     * (ASCII) or came out of a decoded header, which jansson has already validated. */
    const char *fields[6][2] = {{"msg_id", id},
                                {"session", session ? session : ""},
                                {"username", username ? username : ""},
                                {"date", date},
                                {"msg_type", msg_type ? msg_type : ""},
                                {"version", PROTOCOL_VERSION}};
    json_t *h = json_object();
    if (!h) return NULL;
    for (int i = 0; i < 6; i++) {
        json_t *v = json_stringn_nocheck(fields[i][1], strlen(fields[i][1]));
        if (!v || json_object_set_new_nocheck(h, fields[i][0], v) != 0) {
            json_decref(h);
            return NULL;
        }
    }
    return h;
}

int kl_msg_init_child(kl_msg *out, const kl_msg *parent, const char *msg_type, const char *session,
                      json_t *content) {
    kl_msg_init(out);
    const char *username = "kernel";
    if (parent) {
        json_t *user = json_object_get(parent->header, "username");
        if (json_is_string(user)) username = json_string_value(user);
        for (size_t i = 0; i < parent->idents.n; i++) {
            if (add_shared(&out->idents, &parent->idents.v[i]) < 0) goto fail;
        }
    }
    /* Shared, not copied: a decoded header is never modified, and every reply and IOPub message
     * of a request carries it. */
    out->parent_header =
        parent && json_is_object(parent->header) ? json_incref(parent->header) : json_object();
    out->header = kl_msg_header_new(msg_type, session, username);
    out->metadata = json_object();
    out->content = content ? content : json_object();
    content = NULL;
    if (!out->parent_header || !out->header || !out->metadata || !out->content) goto fail;
    return 0;
fail:
    json_decref(content);
    kl_msg_clear(out);
    return -ENOMEM;
}

static const char *header_string(const kl_msg *m, const char *field) {
    const char *v = json_string_value(json_object_get(m->header, field));
    return v ? v : "";
}

const char *kl_msg_type(const kl_msg *m) {
    return header_string(m, "msg_type");
}

const char *kl_msg_id(const kl_msg *m) {
    return header_string(m, "msg_id");
}

const char *kl_msg_session(const kl_msg *m) {
    return header_string(m, "session");
}

const char *kl_msg_username(const kl_msg *m) {
    return header_string(m, "username");
}

const char *kl_msg_subshell_id(const kl_msg *m) {
    return json_string_value(json_object_get(m->header, "subshell_id"));
}
