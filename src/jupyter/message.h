/* Jupyter messages: header, parent header, metadata, content (jansson), plus routing identities
 * and raw buffers. */
#ifndef KL_JUPYTER_MESSAGE_H
#define KL_JUPYTER_MESSAGE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "jupyter/wire.h"
#include "runtime/uuid.h"
#include "runtime/zsock.h"

typedef struct kl_msg {
    kl_frames idents; /* routing identities (ROUTER) or the topic (IOPub) */
    json_t *header;
    json_t *parent_header;
    json_t *metadata;
    json_t *content;
    kl_frames buffers;
    /* The frames that spell header and parent_header exactly (shared between messages, not
     * copied), used only while that field is still the object they spell (header_text_of,
     * parent_text_of: references held, so a freed object's address cannot come back as another
     * one): a decoded header goes out verbatim as the parent_header of every reply and IOPub
     * message of its request instead of being written again. A decoded header must therefore
     * not be modified in place. Empty for messages built here. */
    kl_frames header_text, parent_text;
    json_t *header_text_of, *parent_text_of;
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

/* A message to send as the child of a received one, encoded by kl_msg_encode_child. */
typedef struct kl_msg_out {
    const char *msg_type;
    const char *session; /* header.session of the sender */
    const char *topic;   /* first frame (IOPub topic); NULL: the parent's identities */
    /* Content: content_text when its data is set (serialised JSON object; its bytes go out
     * without a copy, so they must stay valid until the ZeroMQ context is terminated), else
     * content (borrowed), else {}. */
    kl_slice content_text;
    const json_t *content;
    kl_frames *buffers; /* raw buffers, consumed; NULL: none */
    char *msg_id;       /* receives header.msg_id (KL_UUID_STRLEN bytes) when not NULL */
} kl_msg_out;

/* Appends to out the frames of a new message o as the child of parent (NULL: no parent), exactly
 * what kl_msg_init_child followed by kl_msg_encode gives, without building the header as JSON
 * objects: the kernel's replies and IOPub messages are encoded here. 0 or -ENOMEM. */
int kl_msg_encode_child(const kl_msg *parent, const kl_msg_out *o, const kl_signer *s,
                        kl_frames *out);

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
/* A header date (ISO 8601: "2024-01-31T12:00:00.123456Z", any offset, fraction optional; none:
 * UTC) as microseconds since the epoch, for ordering one client's requests; KL_ISO8601_NONE when
 * s is NULL or not such a date. */
#define KL_ISO8601_NONE INT64_MIN
int64_t kl_iso8601_to_us(const char *s);

#endif
