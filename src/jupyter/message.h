/* Jupyter messages: header, parent header, metadata, content (jansson), plus routing identities
 * and raw buffers. */
#ifndef KL_JUPYTER_MESSAGE_H
#define KL_JUPYTER_MESSAGE_H

#include <jansson.h>
#include <stddef.h>

#include "jupyter/wire.h"
#include "runtime/zsock.h"

typedef struct kl_msg {
    kl_frames idents; /* routing identities (ROUTER) or the topic (IOPub) */
    json_t *header;
    json_t *parent_header;
    json_t *metadata;
    json_t *content;
    kl_frames buffers;
} kl_msg;

/* JSON frames nested deeper than this are refused (KL_MSG_EJSON): Jupyter messages need a
 * handful of levels, and parsing is recursive. */
#define KL_MSG_MAX_DEPTH 128

typedef enum {
    KL_MSG_OK = 0,
    KL_MSG_EFRAMES = -1, /* framing: no delimiter or too few frames */
    KL_MSG_EBADSIG = -2, /* signature missing or wrong */
    KL_MSG_EJSON = -3,   /* a JSON frame does not parse, or is not an object */
    KL_MSG_EHEADER = -4, /* header lacks msg_id, msg_type or session, or they are not strings */
} kl_msg_status;

void kl_msg_init(kl_msg *m);
/* Frees every part; the struct can be reused. */
void kl_msg_clear(kl_msg *m);

/* Decodes frames (consumed, left empty) into out (initialised here). On error returns a
 * kl_msg_status and a reason in err; out is then cleared except idents, which are kept so the
 * caller can still answer the sender. */
int kl_msg_decode(kl_frames *frames, const kl_signer *s, kl_msg *out, char *err, size_t errlen);
/* Serialises m (idents first, then delimiter, signature, JSON, buffers) into out (appended).
 * m is not modified. 0 or -ENOMEM. */
int kl_msg_encode(const kl_msg *m, const kl_signer *s, kl_frames *out);

/* A new header object: msg_id (UUID), session, username, date (now), msg_type, version 5.5.
 * The strings must be valid UTF-8 (they are not checked again). */
json_t *kl_msg_header_new(const char *msg_type, const char *session, const char *username);
/* Initialises out as a message of type msg_type whose parent is parent (NULL: no parent, {}).
 * Identities are copied from the parent; content is stolen (NULL means {}). */
int kl_msg_init_child(kl_msg *out, const kl_msg *parent, const char *msg_type, const char *session,
                      json_t *content);

/* Header accessors; "" when absent. */
const char *kl_msg_type(const kl_msg *m);
const char *kl_msg_id(const kl_msg *m);
const char *kl_msg_session(const kl_msg *m);
const char *kl_msg_username(const kl_msg *m);
const char *kl_msg_subshell_id(const kl_msg *m); /* NULL when absent */

/* "an object", "a string", "an integer", ... for error messages about JSON of the wrong kind. */
const char *kl_json_kind(const json_t *v);

/* Current UTC time as ISO 8601 with microseconds and a Z, e.g. 2026-11-24T09:00:00.123456Z. */
void kl_iso8601_now(char out[32]);

#endif
