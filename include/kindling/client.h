/* kindling-client: a C client for Jupyter kernels (Kindling or any other) over ZeroMQ.
 *
 * A client is one connection to a kernel: its own session id, DEALER sockets for shell, control
 * and stdin, a SUB socket for IOPub, and a heartbeat monitor on a thread of its own. Requests are
 * matched to their replies and IOPub messages by msg_id, so any number of requests (and clients)
 * may be in flight at once.
 *
 * Two ways to drive it:
 *   - asynchronous: kindling_client_new(loop, ...) attaches the client to the caller's libuv loop;
 *     every call returns at once and results arrive in callbacks while the caller runs the loop;
 *   - blocking: kindling_client_new(NULL, ...) gives the client a private loop, which the
 *     *_blocking calls and kindling_client_run run until their answer arrives.
 *
 * Thread safety:
 *   - A client, its comms and its messages belong to one thread: the thread that runs its loop
 *     (for a private loop, the thread making the calls). Use one client per thread, or hand all
 *     calls to the loop thread yourself (uv_async). Different clients are independent and may live
 *     on different threads.
 *   - Every callback runs on that thread, from inside uv_run (or a blocking call), never from the
 *     heartbeat thread.
 *   - Callbacks may call any function of the same client, including kindling_client_close; a
 *     blocking call made from a callback fails with KINDLING_ESTATE (the loop is already running).
 *
 * Errors: functions return 0 (or a handle) on success and a negative KINDLING_E* code (or NULL)
 * on failure; kindling_client_last_error(c) then says what went wrong in words.
 *
 * Memory: strings and messages handed to callbacks are borrowed for the duration of the callback.
 * JSON arguments are UTF-8 JSON text; NULL stands for {}.
 */
#ifndef KINDLING_CLIENT_H
#define KINDLING_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KINDLING_API __attribute__((visibility("default")))
#else
#define KINDLING_API
#endif

#define KINDLING_CLIENT_VERSION "0.1.0"

enum {
    KINDLING_OK = 0,
    KINDLING_EINVAL = -1,    /* a bad argument (NULL, malformed JSON, unknown option) */
    KINDLING_ENOMEM = -2,    /* out of memory */
    KINDLING_ECONFIG = -3,   /* the connection file or endpoints are unusable */
    KINDLING_EZMQ = -4,      /* a ZeroMQ call failed (socket, connect, send) */
    KINDLING_ETIMEDOUT = -5, /* no answer within the time allowed */
    KINDLING_ECLOSED = -6,   /* the client was closed before the answer came */
    KINDLING_ESTATE = -7,    /* not allowed now: a blocking call on a caller's loop, or nested */
    KINDLING_EREPLY = -8,    /* the kernel answered with status "error" (or "aborted") */
    KINDLING_EBREAK = -9,    /* kindling_client_break ended the wait */
    KINDLING_ENOCURVE = -10, /* CurveZMQ asked for, but libzmq was built without it */
};

/* The text of a KINDLING_E* code ("timed out", ...). */
KINDLING_API const char *kindling_strerror(int code);

typedef enum {
    KINDLING_SHELL = 0,
    KINDLING_IOPUB = 1,
    KINDLING_STDIN = 2,
    KINDLING_CONTROL = 3,
} kindling_channel;

typedef struct kindling_client kindling_client;
typedef struct kindling_msg kindling_msg;
typedef struct kindling_comm kindling_comm;

typedef struct kindling_buffer {
    const void *data;
    size_t len;
} kindling_buffer;

/* ---- messages --------------------------------------------------------------------------- */

/* The header's msg_type and msg_id, and the parent header's msg_id ("" when absent). */
KINDLING_API const char *kindling_msg_type(const kindling_msg *m);
KINDLING_API const char *kindling_msg_id(const kindling_msg *m);
KINDLING_API const char *kindling_msg_parent_id(const kindling_msg *m);
/* A value by dotted path from the message's root, whose members are header, parent_header,
 * metadata and content: "content.status", "content.language_info.name", "content.traceback.0".
 * A string value is returned as its text, anything else as compact JSON text; NULL when absent.
 * The string lives as long as the message. */
KINDLING_API const char *kindling_msg_get(const kindling_msg *m, const char *path);
/* The whole content as compact JSON text (lives as long as the message). */
KINDLING_API const char *kindling_msg_content(const kindling_msg *m);
/* The message as one JSON object {header, parent_header, metadata, content, buffers: count}:
 * malloc'd, the caller frees it. */
KINDLING_API char *kindling_msg_to_json(const kindling_msg *m);
KINDLING_API size_t kindling_msg_buffer_count(const kindling_msg *m);
KINDLING_API kindling_buffer kindling_msg_buffer(const kindling_msg *m, size_t i);
/* Replies returned by the blocking calls are the caller's; free them with this. */
KINDLING_API void kindling_msg_free(kindling_msg *m);

/* ---- creating and connecting ------------------------------------------------------------ */

typedef struct kindling_client_options {
    const char *username;   /* header.username; NULL: $USER, else "kindling" */
    const char *session_id; /* NULL: a fresh UUID (one per client = one kernel connection) */
    /* Heartbeat: a ping every interval; the kernel counts as lost when one gets no echo within
     * timeout. 0 picks the defaults (1000 ms, 3000 ms); a negative interval turns it off. */
    int heartbeat_interval_ms;
    int heartbeat_timeout_ms;
    /* Called with alive=false when the heartbeat is lost and alive=true when it comes back. */
    void (*on_heartbeat)(kindling_client *c, bool alive, void *user);
    /* Called once IOPub is subscribed (status 0) or when connect_timeout_ms passes first
     * (KINDLING_ETIMEDOUT). Shell requests made before wait for it, so no output is missed. */
    void (*on_ready)(kindling_client *c, int status, void *user);
    int connect_timeout_ms; /* 0: 30000 */
    /* Every IOPub message, before it is routed to a request or comm: other clients' traffic too. */
    void (*on_iopub)(kindling_client *c, const kindling_msg *m, void *user);
    /* A comm the kernel opens towards the client. Return handlers to keep it (and set *comm_user)
     * or NULL to ignore it (not closed: the comm_open reached every client of the kernel). */
    const struct kindling_comm_handlers *(*on_comm_open)(kindling_client *c, kindling_comm *comm,
                                                         const char *target_name,
                                                         const kindling_msg *m, void **comm_user,
                                                         void *user);
    /* The client's own CurveZMQ keypair (Z85, 40 characters each). When the kernel uses CurveZMQ
     * and these are NULL, the connection file's curve_secretkey pair is used if it has one (as
     * jupyter_client does), else a fresh keypair is made. */
    const char *curve_publickey;
    const char *curve_secretkey;
    void *zmq_context; /* share a ZeroMQ context; NULL: the client makes its own */
    void *user;        /* handed to the client-level callbacks above */
} kindling_client_options;

/* The explicit form of a connection file. Endpoints are full ZeroMQ addresses
 * ("tcp://127.0.0.1:5555", "ipc:///tmp/k-1"). */
typedef struct kindling_endpoints {
    const char *shell, *iopub, *stdin_, *control, *hb;
    const char *key;              /* HMAC key; NULL or "" = unsigned */
    const char *signature_scheme; /* NULL: "hmac-sha256" */
    const char *curve_serverkey;  /* the kernel's CurveZMQ public key (Z85); NULL: plain TCP */
} kindling_endpoints;

/* A new client on loop (NULL: a private loop for the blocking API). opts may be NULL and is
 * copied. NULL only when out of memory. */
KINDLING_API kindling_client *kindling_client_new(uv_loop_t *loop,
                                                  const kindling_client_options *opts);
/* Reads a Jupyter connection file (tcp or ipc, any hmac-* scheme, curve_publickey for
 * CurveZMQ) and connects. Connecting does not wait: see on_ready / kindling_client_wait_ready. */
KINDLING_API int kindling_client_connect_file(kindling_client *c, const char *path);
KINDLING_API int kindling_client_connect(kindling_client *c, const kindling_endpoints *ep);
/* Whether libzmq can do CurveZMQ (zmq_has("curve")). */
KINDLING_API bool kindling_curve_available(void);

/* Closes the sockets, stops the heartbeat, and ends every pending request with
 * KINDLING_ECLOSED (their callbacks run inside this call). With a caller's loop the memory is
 * released once that loop has run the handles' close callbacks; with a private loop, before this
 * returns. c must not be used afterwards. */
KINDLING_API void kindling_client_close(kindling_client *c);

/* The message of the last failure on c (thread-local for a NULL c). */
KINDLING_API const char *kindling_client_last_error(const kindling_client *c);
KINDLING_API const char *kindling_client_session(const kindling_client *c);
/* The loop the client runs on: the caller's, or the private one (to add signal or timer
 * handles that a blocking call then serves). */
KINDLING_API uv_loop_t *kindling_client_loop(kindling_client *c);
KINDLING_API bool kindling_client_ready(const kindling_client *c);
/* False once the heartbeat is lost (and before connecting); true again when echoes come back. */
KINDLING_API bool kindling_client_alive(const kindling_client *c);

/* ---- requests --------------------------------------------------------------------------- */

/* The end of a request. status is 0 with the reply (its content.status may still be "error"),
 * or KINDLING_ECLOSED / KINDLING_ETIMEDOUT with reply NULL. */
typedef void (*kindling_reply_cb)(kindling_client *c, int status, const kindling_msg *reply,
                                  void *user);

/* Any request: msg_type on channel (shell or control) with content (JSON text, NULL = {}).
 * cb may be NULL. The request's msg_id is written to msg_id (37 bytes) when it is not NULL.
 * Shell replies are delivered once the kernel's idle status for the request has arrived too. */
#define KINDLING_MSG_ID_LEN 37
KINDLING_API int kindling_client_request(kindling_client *c, kindling_channel channel,
                                         const char *msg_type, const char *content_json,
                                         kindling_reply_cb cb, void *user,
                                         char msg_id[KINDLING_MSG_ID_LEN]);

KINDLING_API int kindling_client_kernel_info(kindling_client *c, kindling_reply_cb cb, void *user);
/* cursor_pos counts Unicode code points, as the protocol does; -1 means the end of code. */
KINDLING_API int kindling_client_complete(kindling_client *c, const char *code, int cursor_pos,
                                          kindling_reply_cb cb, void *user);
KINDLING_API int kindling_client_inspect(kindling_client *c, const char *code, int cursor_pos,
                                         int detail_level, kindling_reply_cb cb, void *user);
KINDLING_API int kindling_client_is_complete(kindling_client *c, const char *code,
                                             kindling_reply_cb cb, void *user);
/* hist_access_type "tail" (n last), "range" (session, start, stop) or "search" (pattern, n). */
KINDLING_API int kindling_client_history(kindling_client *c, const char *hist_access_type, int n,
                                         const char *pattern, bool output, kindling_reply_cb cb,
                                         void *user);

/* Control channel: never queued behind a running cell. */
KINDLING_API int kindling_client_interrupt(kindling_client *c, kindling_reply_cb cb, void *user);
KINDLING_API int kindling_client_shutdown(kindling_client *c, bool restart, kindling_reply_cb cb,
                                          void *user);

/* ---- execute ---------------------------------------------------------------------------- */

/* A MIME bundle (content.data of display_data, execute_result, update_display_data). */
typedef struct kindling_bundle kindling_bundle;
/* The value for a MIME type: strings as they are, JSON values (application/json, ...) as JSON
 * text; NULL when the bundle has no such type. Lives as long as the message. */
KINDLING_API const char *kindling_bundle_get(const kindling_bundle *b, const char *mime);
KINDLING_API size_t kindling_bundle_count(const kindling_bundle *b);
KINDLING_API const char *kindling_bundle_mime(const kindling_bundle *b, size_t i);

typedef struct kindling_execute_handlers {
    void (*on_stream)(kindling_client *c, const kindling_msg *m, const char *name, const char *text,
                      void *user);
    /* display_data (update=false) and update_display_data (update=true); display_id may be NULL */
    void (*on_display)(kindling_client *c, const kindling_msg *m, const kindling_bundle *data,
                       const char *display_id, bool update, void *user);
    void (*on_result)(kindling_client *c, const kindling_msg *m, int execution_count,
                      const kindling_bundle *data, void *user);
    void (*on_error)(kindling_client *c, const kindling_msg *m, const char *ename,
                     const char *evalue, const char *const *traceback, size_t ntraceback,
                     void *user);
    void (*on_status)(kindling_client *c, const kindling_msg *m, const char *execution_state,
                      void *user);
    void (*on_clear_output)(kindling_client *c, const kindling_msg *m, bool wait, void *user);
    /* The kernel asks for a line (content.prompt, content.password). Answer with
     * kindling_client_input_reply(c, kindling_msg_id(m), value), now or later. Without this
     * handler the request goes with allow_stdin false. */
    void (*on_input)(kindling_client *c, const kindling_msg *m, const char *prompt, bool password,
                     void *user);
    /* Any other IOPub message of this request (execute_input, comm_*, ...). */
    void (*on_other)(kindling_client *c, const kindling_msg *m, void *user);
    /* Last: the execute_reply, after every IOPub message of the request (its idle status). */
    kindling_reply_cb on_reply;
} kindling_execute_handlers;

enum {
    KINDLING_EXEC_SILENT = 1 << 0,
    KINDLING_EXEC_NO_HISTORY = 1 << 1,       /* store_history false */
    KINDLING_EXEC_NO_STOP_ON_ERROR = 1 << 2, /* stop_on_error false */
};

typedef struct kindling_execute_options {
    unsigned flags;               /* KINDLING_EXEC_* */
    const char *subshell_id;      /* header.subshell_id (JEP 91); NULL: the main shell */
    const char *user_expressions; /* JSON object text; NULL: {} */
} kindling_execute_options;

/* Runs code; h (copied) and user get the outputs. opts may be NULL. */
KINDLING_API int kindling_client_execute(kindling_client *c, const char *code,
                                         const kindling_execute_options *opts,
                                         const kindling_execute_handlers *h, void *user,
                                         char msg_id[KINDLING_MSG_ID_LEN]);
/* Answers an input_request (request_id = its msg_id). */
KINDLING_API int kindling_client_input_reply(kindling_client *c, const char *request_id,
                                             const char *value);

/* ---- comms ------------------------------------------------------------------------------ */

typedef struct kindling_comm_handlers {
    /* A comm_msg from the kernel: data as JSON text, and its binary buffers. */
    void (*on_msg)(kindling_comm *comm, const kindling_msg *m, const char *data_json,
                   const kindling_buffer *buffers, size_t nbuffers, void *user);
    /* The kernel closed the comm (or refused to open it: unknown target). The comm is freed
     * when this returns. Not called for kindling_comm_close. */
    void (*on_close)(kindling_comm *comm, const kindling_msg *m, const char *data_json, void *user);
} kindling_comm_handlers;

/* Opens a comm with target_name; data (JSON text) and buffers travel in the comm_open. h is
 * copied. NULL on failure. */
KINDLING_API kindling_comm *kindling_comm_open(kindling_client *c, const char *target_name,
                                               const char *data_json,
                                               const kindling_buffer *buffers, size_t nbuffers,
                                               const kindling_comm_handlers *h, void *user);
/* Sends a comm_msg; its msg_id (the parent id of the kernel's answers) into msg_id if not NULL.
 * Binary buffers carry payloads such as msgpack. */
KINDLING_API int kindling_comm_send(kindling_comm *comm, const char *data_json,
                                    const kindling_buffer *buffers, size_t nbuffers,
                                    char msg_id[KINDLING_MSG_ID_LEN]);
/* Sends comm_close and frees the comm at once. */
KINDLING_API int kindling_comm_close(kindling_comm *comm, const char *data_json);
KINDLING_API const char *kindling_comm_id(const kindling_comm *comm);
KINDLING_API kindling_client *kindling_comm_client(const kindling_comm *comm);

/* ---- blocking API (clients on a private loop) ------------------------------------------- */

/* A timeout_ms below 0 means no limit. Each returns 0 or a KINDLING_E* code. */

/* Waits until IOPub is subscribed. */
KINDLING_API int kindling_client_wait_ready(kindling_client *c, int timeout_ms);
/* Runs code to its execute_reply, calling h on the way; *reply (if not NULL) receives the reply
 * (free with kindling_msg_free). KINDLING_EREPLY when the cell failed (last_error says
 * "ename: evalue"). */
KINDLING_API int kindling_client_execute_blocking(kindling_client *c, const char *code,
                                                  const kindling_execute_options *opts,
                                                  const kindling_execute_handlers *h, void *user,
                                                  int timeout_ms, kindling_msg **reply);
/* Any request and its reply (free with kindling_msg_free). KINDLING_EREPLY when the reply's
 * status is "error"; *reply is set all the same. */
KINDLING_API int kindling_client_request_blocking(kindling_client *c, kindling_channel channel,
                                                  const char *msg_type, const char *content_json,
                                                  int timeout_ms, kindling_msg **reply);
/* Runs the private loop (serving comms, heartbeats, async requests) for timeout_ms (< 0: until
 * a break). 0 after the time or a break; KINDLING_ECLOSED when a callback closed the client. */
KINDLING_API int kindling_client_run(kindling_client *c, int timeout_ms);
/* From a callback: ends the blocking call in progress (KINDLING_EBREAK; 0 for kindling_client_run).
 * Called while none is in progress (in a callback run by a send's own pump), it ends the next
 * one, so an answer that comes early is never waited for in vain. */
KINDLING_API void kindling_client_break(kindling_client *c);

#ifdef __cplusplus
}
#endif

#endif
