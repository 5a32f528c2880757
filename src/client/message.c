/* Messages as the public API shows them: read-only, with dotted-path lookups whose results live
 * as long as the message. */
#include "client/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jupyter/jsontext.h"

kindling_msg *kl_client_msg_new(void) {
    kindling_msg *km = calloc(1, sizeof *km);
    if (km) kl_msg_init(&km->m);
    return km;
}

void kl_client_msg_release(kindling_msg *km) {
    if (!km) return;
    kl_msg_clear(&km->m);
    json_decref(km->root);
    json_decref(km->texts);
    free(km->content_text);
    free(km);
}

void kindling_msg_free(kindling_msg *m) {
    kl_client_msg_release(m);
}

static const char *header_field(const json_t *h, const char *field) {
    const char *v = json_string_value(json_object_get(h, field));
    return v ? v : "";
}

const char *kindling_msg_type(const kindling_msg *m) {
    return m ? header_field(m->m.header, "msg_type") : "";
}

const char *kindling_msg_id(const kindling_msg *m) {
    return m ? header_field(m->m.header, "msg_id") : "";
}

const char *kindling_msg_parent_id(const kindling_msg *m) {
    return m ? header_field(m->m.parent_header, "msg_id") : "";
}

/* Keeps text alive as long as the message; returns it, or NULL when out of memory. */
static const char *keep_text(kindling_msg *km, char *text) {
    if (!text) return NULL;
    if (!km->texts) km->texts = json_array();
    /* A JSON string holds the text; jansson copies it once, then it stays put. */
    json_t *s = json_string_nocheck(text);
    free(text);
    if (!s || json_array_append_new(km->texts, s) != 0) return NULL;
    return json_string_value(s);
}

static const char *value_text(kindling_msg *km, const json_t *v) {
    if (!v) return NULL;
    if (json_is_string(v)) return json_string_value(v);
    size_t n;
    return keep_text(km, kl_jsontext_dump(v, &n));
}

static json_t *msg_root(kindling_msg *km) {
    if (!km->root) {
        km->root = json_object();
        json_t *parts[4] = {km->m.header, km->m.parent_header, km->m.metadata, km->m.content};
        const char *names[4] = {"header", "parent_header", "metadata", "content"};
        for (int i = 0; i < 4; i++)
            if (parts[i]) json_object_set(km->root, names[i], parts[i]);
    }
    return km->root;
}

/* Follows a dotted path (object keys, array indexes) from v. */
static json_t *walk(json_t *v, const char *path) {
    const char *p = path;
    while (v && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (json_is_object(v)) {
            v = json_object_getn(v, p, n);
        } else if (json_is_array(v)) {
            char *end;
            unsigned long i = strtoul(p, &end, 10);
            v = (end == p + n && n > 0) ? json_array_get(v, i) : NULL;
        } else {
            v = NULL;
        }
        p += n;
        if (*p == '.') p++;
    }
    return v;
}

const char *kindling_msg_get(const kindling_msg *m, const char *path) {
    if (!m || !path) return NULL;
    kindling_msg *km = (kindling_msg *)m; /* lookups only add cached text */
    return value_text(km, walk(msg_root(km), path));
}

const char *kindling_msg_content(const kindling_msg *m) {
    if (!m) return NULL;
    kindling_msg *km = (kindling_msg *)m;
    if (!km->content_text) {
        size_t n;
        km->content_text = km->m.content ? kl_jsontext_dump(km->m.content, &n) : strdup("{}");
    }
    return km->content_text;
}

char *kindling_msg_to_json(const kindling_msg *m) {
    if (!m) return NULL;
    json_t *o = json_deep_copy(msg_root((kindling_msg *)m));
    if (!o) return NULL;
    json_object_set_new(o, "buffers", json_integer((json_int_t)m->m.buffers.n));
    size_t n;
    char *text = kl_jsontext_dump(o, &n);
    json_decref(o);
    return text;
}

size_t kindling_msg_buffer_count(const kindling_msg *m) {
    return m ? m->m.buffers.n : 0;
}

kindling_buffer kindling_msg_buffer(const kindling_msg *m, size_t i) {
    kindling_buffer b = {NULL, 0};
    if (m && i < m->m.buffers.n) {
        b.data = kl_frames_data(&m->m.buffers, i);
        b.len = kl_frames_size(&m->m.buffers, i);
    }
    return b;
}

const char *kindling_bundle_get(const kindling_bundle *b, const char *mime) {
    if (!b || !mime) return NULL;
    return value_text(b->msg, json_object_get(b->data, mime));
}

size_t kindling_bundle_count(const kindling_bundle *b) {
    return b ? json_object_size(b->data) : 0;
}

const char *kindling_bundle_mime(const kindling_bundle *b, size_t i) {
    if (!b) return NULL;
    const char *key;
    json_t *v;
    size_t k = 0;
    json_object_foreach(b->data, key, v) {
        if (k++ == i) return key;
    }
    return NULL;
}

json_t *kl_client_json_arg(kindling_client *c, const char *json, const char *what, int *rc) {
    *rc = 0;
    if (!json) return json_object();
    json_error_t e;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &e);
    if (!v) {
        *rc = kl_client_fail(c, KINDLING_EINVAL, "%s is not valid JSON (line %d, column %d): %s",
                             what, e.line, e.column, e.text);
        return NULL;
    }
    return v;
}
