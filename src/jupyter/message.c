/* Jupyter messages: decoding frames into jansson objects and encoding them back. */
#include "jupyter/message.h"

#include "jupyter/jsonread.h"
#include "jupyter/jsontext.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/uuid.h"

#define PROTOCOL_VERSION "5.5"

static const char *const part_names[4] = {"header", "parent_header", "metadata", "content"};

void kl_msg_init(kl_msg *m) {
    kl_frames_init(&m->idents);
    m->header = m->parent_header = m->metadata = m->content = NULL;
    kl_frames_init(&m->buffers);
    kl_frames_init(&m->header_text);
    kl_frames_init(&m->parent_text);
    m->header_text_of = m->parent_text_of = NULL;
}

void kl_msg_clear(kl_msg *m) {
    kl_frames_clear(&m->idents);
    json_decref(m->header);
    json_decref(m->parent_header);
    json_decref(m->metadata);
    json_decref(m->content);
    m->header = m->parent_header = m->metadata = m->content = NULL;
    kl_frames_clear(&m->buffers);
    kl_frames_clear(&m->header_text);
    kl_frames_clear(&m->parent_text);
    json_decref(m->header_text_of);
    json_decref(m->parent_text_of);
    m->header_text_of = m->parent_text_of = NULL;
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

/* *modified is set when the header was completed (an empty username added). */
static int check_header(json_t *h, bool *modified, char *err, size_t errlen) {
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
        *modified = true;
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
        /* The fast reader handles nearly every frame; whatever it leaves goes to jansson, which
         * also words the errors. */
        json_t *v = kl_jsonread_parse(parts.json[i].data, parts.json[i].len, KL_MSG_MAX_DEPTH);
        if (!v && json_depth(parts.json[i].data, parts.json[i].len) > KL_MSG_MAX_DEPTH) {
            snprintf(err, errlen, "%s is nested deeper than %d levels", part_names[i],
                     KL_MSG_MAX_DEPTH);
            status = KL_MSG_EJSON;
            goto done;
        }
        json_error_t jerr;
        /* DECODE_ANY only so that a scalar gets the clearer "not an object" message below. */
        if (!v) v = json_loadb(parts.json[i].data, parts.json[i].len, JSON_DECODE_ANY, &jerr);
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
    bool modified = false;
    status = check_header(out->header, &modified, err, errlen);
    if (status != KL_MSG_OK) goto done;
    /* Copied rather than kept: a received frame may share ZeroMQ's whole receive buffer, which a
     * queued request would then pin. */
    if (!modified && kl_frames_add(&out->header_text, parts.json[0].data, parts.json[0].len) == 0)
        out->header_text_of = json_incref(out->header);
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

/* One JSON part of a message being encoded: its text and, when a frame already holds exactly
 * those bytes, that frame, which is then shared instead of copied. */
typedef struct part {
    const char *data;
    size_t len;
    const zmq_msg_t *frame;
    bool constant; /* data outlives the ZeroMQ context: framed without a copy */
    char *owned;   /* malloc'd text to free after framing */
} part;

static const char empty_object[] = "{}";

static void part_constant(part *p, const char *text, size_t len) {
    *p = (part){.data = text, .len = len, .constant = true};
}

/* The text of v, shared from its frame when frame spells v exactly. 0 or -ENOMEM. */
static int part_json(part *p, const json_t *v, const kl_frames *text, const json_t *text_of) {
    if (v && v == text_of && text->n == 1) {
        *p = (part){
            .data = kl_frames_data(text, 0), .len = kl_frames_size(text, 0), .frame = &text->v[0]};
        return 0;
    }
    if (!v || (json_is_object(v) && json_object_size(v) == 0)) {
        part_constant(p, empty_object, 2);
        return 0;
    }
    size_t n = 0;
    char *t = kl_jsontext_dump(v, &n);
    if (!t) return -ENOMEM;
    *p = (part){.data = t, .len = n, .owned = t};
    return 0;
}

static void parts_free(part p[4]) {
    for (int i = 0; i < 4; i++) {
        free(p[i].owned);
        p[i].owned = NULL;
    }
}

static int add_part(kl_frames *out, const part *p) {
    if (p->frame) return add_shared(out, (zmq_msg_t *)p->frame);
    if (p->constant) {
        zmq_msg_t m;
        /* No free function: ZeroMQ takes the bytes as constant and never copies or frees them. */
        if (zmq_msg_init_data(&m, (void *)p->data, p->len, NULL, NULL) != 0) return -ENOMEM;
        return kl_frames_add_msg(out, &m) < 0 ? -ENOMEM : 0;
    }
    return kl_frames_add(out, p->data, p->len) < 0 ? -ENOMEM : 0;
}

/* Appends topic (or else the identities), delimiter, signature, the four parts and the buffers
 * (moved out of take, or shared from share). */
static int assemble(kl_frames *out, const kl_frames *idents, const char *topic, const part p[4],
                    const kl_signer *s, kl_frames *take, const kl_frames *share) {
    kl_slice slices[4];
    for (int i = 0; i < 4; i++) slices[i] = (kl_slice){p[i].data, p[i].len};
    char sig[KL_SIG_HEX_MAX];
    if (kl_signer_sign(s, slices, sig) < 0) return -ENOMEM;
    size_t n_first = topic ? 1 : (idents ? idents->n : 0);
    size_t n_buffers = take ? take->n : share ? share->n : 0;
    if (kl_frames_reserve(out, out->n + n_first + 6 + n_buffers) < 0) return -ENOMEM;
    if (topic) {
        if (kl_frames_add(out, topic, strlen(topic)) < 0) return -ENOMEM;
    } else if (idents) {
        for (size_t i = 0; i < idents->n; i++)
            if (add_shared(out, &idents->v[i]) < 0) return -ENOMEM;
    }
    if (kl_frames_add(out, KL_WIRE_DELIM, sizeof KL_WIRE_DELIM - 1) < 0) return -ENOMEM;
    if (kl_frames_add(out, sig, strlen(sig)) < 0) return -ENOMEM;
    for (int i = 0; i < 4; i++)
        if (add_part(out, &p[i]) < 0) return -ENOMEM;
    for (size_t i = 0; take && i < take->n; i++)
        if (kl_frames_add_msg(out, &take->v[i]) < 0) return -ENOMEM;
    for (size_t i = 0; share && i < share->n; i++)
        if (add_shared(out, &share->v[i]) < 0) return -ENOMEM;
    return 0;
}

int kl_msg_encode(const kl_msg *m, const kl_signer *s, kl_frames *out) {
    /* jansson cannot hold NaN or infinity (json_real refuses them), so the text is always valid
     * JSON for the Python side. */
    part p[4] = {{0}};
    int rc = -ENOMEM;
    if (part_json(&p[0], m->header, &m->header_text, m->header_text_of) < 0 ||
        part_json(&p[1], m->parent_header, &m->parent_text, m->parent_text_of) < 0 ||
        part_json(&p[2], m->metadata, NULL, NULL) < 0 ||
        part_json(&p[3], m->content, NULL, NULL) < 0)
        goto out;
    rc = assemble(out, &m->idents, NULL, p, s, NULL, &m->buffers);
out:
    parts_free(p);
    return rc;
}

/* Room for a header's text besides its three variable strings. */
#define HEADER_FIXED 160

int kl_msg_encode_child(const kl_msg *parent, const kl_msg_out *o, const kl_signer *s,
                        kl_frames *out) {
    part p[4] = {{0}};
    char *heap = NULL;
    int rc = -ENOMEM;
    char id[KL_UUID_STRLEN];
    if (kl_uuid_v4(id) < 0) goto out;
    if (o->msg_id) memcpy(o->msg_id, id, sizeof id);
    char date[32];
    kl_iso8601_now(date);
    const char *username = "kernel";
    json_t *ph = parent && json_is_object(parent->header) ? parent->header : NULL;
    if (ph) {
        const char *u = json_string_value(json_object_get(ph, "username"));
        if (u) username = u;
    }
    const char *session = o->session ? o->session : "";
    const char *type = o->msg_type ? o->msg_type : "";
    size_t ns = strlen(session), nu = strlen(username), nt = strlen(type);
    /* The same fields in the same order as kl_msg_header_new, so the text is what encoding that
     * object would give. */
    size_t need = HEADER_FIXED + KL_JSONTEXT_QUOTED_MAX(ns) + KL_JSONTEXT_QUOTED_MAX(nu) +
                  KL_JSONTEXT_QUOTED_MAX(nt);
    char stack[1024];
    char *h = stack;
    if (need > sizeof stack && !(h = heap = malloc(need))) goto out;
    char *w = h;
#define PUT(lit) (memcpy(w, lit, sizeof lit - 1), w += sizeof lit - 1)
    PUT("{\"msg_id\":\"");
    memcpy(w, id, KL_UUID_STRLEN - 1);
    w += KL_UUID_STRLEN - 1;
    PUT("\",\"session\":");
    w += kl_jsontext_quote(w, session, ns);
    PUT(",\"username\":");
    w += kl_jsontext_quote(w, username, nu);
    PUT(",\"date\":\"");
    size_t nd = strlen(date);
    memcpy(w, date, nd);
    w += nd;
    PUT("\",\"msg_type\":");
    w += kl_jsontext_quote(w, type, nt);
    PUT(",\"version\":\"" PROTOCOL_VERSION "\"}");
#undef PUT
    p[0] = (part){.data = h, .len = (size_t)(w - h)};
    if (ph) {
        if (part_json(&p[1], ph, &parent->header_text, parent->header_text_of) < 0) goto out;
    } else {
        part_constant(&p[1], empty_object, 2);
    }
    part_constant(&p[2], empty_object, 2);
    if (o->content_text.data)
        part_constant(&p[3], o->content_text.data, o->content_text.len);
    else if (part_json(&p[3], o->content, NULL, NULL) < 0)
        goto out;
    rc = assemble(out, parent ? &parent->idents : NULL, o->topic, p, s, o->buffers, NULL);
out:
    if (o->buffers) kl_frames_clear(o->buffers);
    parts_free(p);
    free(heap);
    return rc;
}

void kl_iso8601_now(char out[32]) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* The calendar part changes once a second; formatting it costs more than the rest of a
     * header, so each thread keeps the last one. */
    static _Thread_local time_t cached_sec = (time_t)-1;
    static _Thread_local char cached[24];
    static _Thread_local size_t cached_len;
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        cached_len = strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = ts.tv_sec;
    }
    memcpy(out, cached, cached_len);
    char *w = out + cached_len;
    unsigned us = (unsigned)(ts.tv_nsec / 1000) % 1000000u;
    *w++ = '.';
    for (int i = 5; i >= 0; i--) {
        w[i] = (char)('0' + us % 10);
        us /= 10;
    }
    w[6] = 'Z';
    w[7] = '\0';
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
    if (parent && parent->header && parent->header_text_of == parent->header &&
        parent->header_text.n == 1) {
        if (add_shared(&out->parent_text, &parent->header_text.v[0]) < 0) goto fail;
        out->parent_text_of = json_incref(parent->header);
    }
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

/* n decimal digits at *p into *out, advancing *p. */
static bool digits(const char **p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9') return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* One of the characters of set at *p, advancing *p. */
static bool sep(const char **p, const char *set) {
    if (!**p || !strchr(set, **p)) return false;
    (*p)++;
    return true;
}

int64_t kl_iso8601_to_us(const char *s) {
    if (!s) return KL_ISO8601_NONE;
    const char *p = s;
    int y, mo, d, h, mi, sec;
    if (!digits(&p, 4, &y) || !sep(&p, "-") || !digits(&p, 2, &mo) || !sep(&p, "-") ||
        !digits(&p, 2, &d) || !sep(&p, "Tt ") || !digits(&p, 2, &h) || !sep(&p, ":") ||
        !digits(&p, 2, &mi) || !sep(&p, ":") || !digits(&p, 2, &sec))
        return KL_ISO8601_NONE;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return KL_ISO8601_NONE;
    int64_t frac = 0;
    if (sep(&p, ".,")) {
        int n = 0;
        for (; *p >= '0' && *p <= '9'; p++, n++)
            if (n < 6) frac = frac * 10 + (*p - '0'); /* finer digits cannot order two requests */
        if (n == 0) return KL_ISO8601_NONE;
        for (; n < 6; n++) frac *= 10;
    }
    int64_t offset_s = 0; /* no zone: read as UTC, as every date of the same client is */
    if (sep(&p, "Zz")) {
        /* UTC */
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (!digits(&p, 2, &oh)) return KL_ISO8601_NONE;
        sep(&p, ":");
        if (!digits(&p, 2, &om) || oh > 23 || om > 59) return KL_ISO8601_NONE;
        offset_s = sign * (oh * 3600 + om * 60);
    }
    if (*p) return KL_ISO8601_NONE;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    int64_t secs = (int64_t)timegm(&tm) - offset_s;
    return secs * 1000000 + frac;
}
