/* Requests: sending them, matching replies and IOPub output to them by parent msg_id, stdin. */
#include "client/internal.h"

#include <stdlib.h>
#include <string.h>

/* An execute_reply may overtake the last outputs of its cell (shell and IOPub are different
 * sockets), so it waits for the cell's idle status; a kernel that never sends one gets this long.
 */
#define IDLE_GRACE_MS 5000

kl_client_req *kl_client_start_request(kindling_client *c, kindling_channel ch,
                                       const char *msg_type, json_t *content,
                                       const char *subshell_id, kindling_reply_cb cb, void *user,
                                       const kindling_execute_handlers *h, int *rc) {
    kl_client_req *req = calloc(1, sizeof *req);
    if (!req) {
        json_decref(content);
        *rc = kl_client_fail(c, KINDLING_ENOMEM, "out of memory");
        return NULL;
    }
    req->channel = ch;
    req->cb = cb;
    req->user = user;
    if (h) {
        req->execute = true;
        req->h = *h;
    }
    *rc = kl_client_send(c, ch, msg_type, content, NULL, subshell_id, NULL, 0, req->id);
    if (*rc != 0) {
        free(req);
        return NULL;
    }
    /* Registered before the pump that may already bring the answer. */
    if (kl_strmap_put(c->requests, req->id, req) != 0) {
        free(req);
        *rc = kl_client_fail(c, KINDLING_ENOMEM, "out of memory");
        return NULL;
    }
    return req;
}

/* Removes req, tells whoever waits, frees it; km (may be NULL) is released unless a blocking
 * caller takes it. */
static void finish(kindling_client *c, kl_client_req *req, int status, kindling_msg *km) {
    kl_strmap_del(c->requests, req->id);
    if (req->reply && req->reply != km) kl_client_msg_release(req->reply);
    kindling_reply_cb cb = req->execute ? req->h.on_reply : req->cb;
    if (cb && !req->internal) cb(c, status, km, req->user);
    if (req->done) *req->done = true;
    if (req->status) *req->status = status;
    if (req->sink && km) {
        *req->sink = km;
        km = NULL;
    }
    kl_client_msg_release(km);
    free(req);
}

void kl_client_route_reply(kindling_client *c, kindling_channel ch, kindling_msg *km) {
    (void)ch;
    kl_client_req *req = kl_strmap_get(c->requests, kindling_msg_parent_id(km));
    if (!req) {
        kl_client_msg_release(km);
        return;
    }
    if (req->execute && !req->idle) {
        kl_client_msg_release(req->reply);
        req->reply = km;
        req->reply_at = uv_now(c->loop);
        return;
    }
    finish(c, req, 0, km);
}

static bool is_true(json_t *o, const char *key) {
    return json_is_true(json_object_get(o, key));
}

static const char *string_of(json_t *o, const char *key) {
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* Hands one IOPub message of an execute request to its handler; true when a handler took it. */
static bool deliver(kindling_client *c, kl_client_req *req, kindling_msg *km) {
    const kindling_execute_handlers *h = &req->h;
    json_t *content = km->m.content;
    const char *type = kindling_msg_type(km);
    void *user = req->user;
    if (strcmp(type, "stream") == 0 && h->on_stream) {
        h->on_stream(c, km, string_of(content, "name"), string_of(content, "text"), user);
    } else if ((strcmp(type, "display_data") == 0 || strcmp(type, "update_display_data") == 0) &&
               h->on_display) {
        kindling_bundle b = {json_object_get(content, "data"), km};
        const char *id =
            json_string_value(json_object_get(json_object_get(content, "transient"), "display_id"));
        h->on_display(c, km, &b, id, type[0] == 'u', user);
    } else if (strcmp(type, "execute_result") == 0 && h->on_result) {
        kindling_bundle b = {json_object_get(content, "data"), km};
        json_t *n = json_object_get(content, "execution_count");
        h->on_result(c, km, json_is_integer(n) ? (int)json_integer_value(n) : 0, &b, user);
    } else if (strcmp(type, "error") == 0 && h->on_error) {
        json_t *tb = json_object_get(content, "traceback");
        size_t n = json_is_array(tb) ? json_array_size(tb) : 0;
        const char **lines = calloc(n + 1, sizeof *lines);
        size_t k = 0;
        for (size_t i = 0; lines && i < n; i++) {
            const char *s = json_string_value(json_array_get(tb, i));
            if (s) lines[k++] = s;
        }
        h->on_error(c, km, string_of(content, "ename"), string_of(content, "evalue"),
                    (const char *const *)lines, lines ? k : 0, user);
        free(lines);
    } else if (strcmp(type, "status") == 0 && h->on_status) {
        h->on_status(c, km, string_of(content, "execution_state"), user);
    } else if (strcmp(type, "clear_output") == 0 && h->on_clear_output) {
        h->on_clear_output(c, km, is_true(content, "wait"), user);
    } else if (h->on_other) {
        h->on_other(c, km, user);
    } else {
        return false;
    }
    return true;
}

void kl_client_route_output(kindling_client *c, kindling_msg *km) {
    kl_client_req *req = kl_strmap_get(c->requests, kindling_msg_parent_id(km));
    if (!req) {
        kl_client_msg_release(km);
        return;
    }
    if (req->execute) deliver(c, req, km);
    /* A handler may have closed the client, which ended (and freed) every request. */
    if (c->closing) {
        kl_client_msg_release(km);
        return;
    }
    if (strcmp(kindling_msg_type(km), "status") == 0 &&
        strcmp(string_of(km->m.content, "execution_state"), "idle") == 0) {
        req->idle = true;
        if (req->reply) finish(c, req, 0, req->reply);
    }
    kl_client_msg_release(km);
}

void kl_client_route_stdin(kindling_client *c, kindling_msg *km) {
    if (strcmp(kindling_msg_type(km), "input_request") != 0) {
        kl_client_msg_release(km);
        return;
    }
    kl_client_req *req = kl_strmap_get(c->requests, kindling_msg_parent_id(km));
    json_t *content = km->m.content;
    if (req && req->execute && req->h.on_input &&
        kl_strmap_put(c->inputs, kindling_msg_id(km), json_incref(km->m.header)) == 0) {
        req->h.on_input(c, km, string_of(content, "prompt"), is_true(content, "password"),
                        req->user);
    } else {
        /* Nobody can answer: an empty line keeps the kernel from waiting forever. */
        kl_client_send(c, KINDLING_STDIN, "input_reply", json_pack("{s:s}", "value", ""),
                       km->m.header, NULL, NULL, 0, NULL);
        c->repump = true;
    }
    kl_client_msg_release(km);
}

int kindling_client_input_reply(kindling_client *c, const char *request_id, const char *value) {
    if (!c || !request_id) return kl_client_fail(c, KINDLING_EINVAL, "no client or no request id");
    json_t *header = kl_strmap_del(c->inputs, request_id);
    if (!header)
        return kl_client_fail(c, KINDLING_EINVAL, "no input_request %s is waiting for an answer",
                              request_id);
    json_t *content = json_pack("{s:s}", "value", value ? value : "");
    if (!content) content = json_pack("{s:s}", "value", ""); /* value was not UTF-8 */
    int rc = kl_client_send(c, KINDLING_STDIN, "input_reply", content, header, NULL, NULL, 0, NULL);
    json_decref(header);
    if (rc == 0) kl_client_pump(c);
    return rc;
}

typedef struct collect_ctx {
    kl_client_req **v;
    size_t n, cap;
    uint64_t now;
    bool overdue_only;
} collect_ctx;

static void collect(const char *key, void *value, void *arg) {
    (void)key;
    collect_ctx *x = arg;
    kl_client_req *req = value;
    if (x->overdue_only && !(req->reply && x->now - req->reply_at >= IDLE_GRACE_MS)) return;
    if (x->n < x->cap) x->v[x->n++] = req;
}

/* The requests to act on, copied out first: finishing one changes the map. */
static collect_ctx collect_requests(kindling_client *c, bool overdue_only, uint64_t now) {
    collect_ctx x = {NULL, 0, kl_strmap_len(c->requests), now, overdue_only};
    if (x.cap) x.v = calloc(x.cap, sizeof *x.v);
    if (!x.v) x.cap = 0;
    kl_strmap_foreach(c->requests, collect, &x);
    return x;
}

void kl_client_requests_tick(kindling_client *c, uint64_t now) {
    collect_ctx x = collect_requests(c, true, now);
    for (size_t i = 0; i < x.n && !c->closing; i++) finish(c, x.v[i], 0, x.v[i]->reply);
    free(x.v);
}

void kl_client_fail_all(kindling_client *c) {
    collect_ctx x = collect_requests(c, false, 0);
    for (size_t i = 0; i < x.n; i++) finish(c, x.v[i], KINDLING_ECLOSED, NULL);
    free(x.v);
}

/* ---- the request API -------------------------------------------------------------------- */

static int request(kindling_client *c, kindling_channel ch, const char *msg_type, json_t *content,
                   kindling_reply_cb cb, void *user, char *msg_id) {
    if (!content)
        return kl_client_fail(c, KINDLING_EINVAL, "cannot build the %s (is the text UTF-8?)",
                              msg_type);
    int rc;
    kl_client_req *req =
        kl_client_start_request(c, ch, msg_type, content, NULL, cb, user, NULL, &rc);
    if (!req) return rc;
    if (msg_id) memcpy(msg_id, req->id, KINDLING_MSG_ID_LEN);
    kl_client_pump(c);
    return 0;
}

int kindling_client_request(kindling_client *c, kindling_channel channel, const char *msg_type,
                            const char *content_json, kindling_reply_cb cb, void *user,
                            char msg_id[KINDLING_MSG_ID_LEN]) {
    if (!c || !msg_type || !*msg_type)
        return kl_client_fail(c, KINDLING_EINVAL, "no client or no message type");
    if (channel != KINDLING_SHELL && channel != KINDLING_CONTROL)
        return kl_client_fail(c, KINDLING_EINVAL, "requests go on the shell or control channel");
    int rc;
    json_t *content = kl_client_json_arg(c, content_json, "the request content", &rc);
    if (!content) return rc;
    if (!json_is_object(content)) {
        json_decref(content);
        return kl_client_fail(c, KINDLING_EINVAL, "the request content must be a JSON object");
    }
    return request(c, channel, msg_type, content, cb, user, msg_id);
}

int kindling_client_kernel_info(kindling_client *c, kindling_reply_cb cb, void *user) {
    if (!c) return kl_client_fail(NULL, KINDLING_EINVAL, "no client");
    return request(c, KINDLING_SHELL, "kernel_info_request", json_object(), cb, user, NULL);
}

/* The protocol counts cursor positions in code points. */
static int code_points(const char *s) {
    int n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

int kindling_client_complete(kindling_client *c, const char *code, int cursor_pos,
                             kindling_reply_cb cb, void *user) {
    if (!c || !code) return kl_client_fail(c, KINDLING_EINVAL, "no client or no code");
    if (cursor_pos < 0) cursor_pos = code_points(code);
    return request(c, KINDLING_SHELL, "complete_request",
                   json_pack("{s:s, s:i}", "code", code, "cursor_pos", cursor_pos), cb, user, NULL);
}

int kindling_client_inspect(kindling_client *c, const char *code, int cursor_pos, int detail_level,
                            kindling_reply_cb cb, void *user) {
    if (!c || !code) return kl_client_fail(c, KINDLING_EINVAL, "no client or no code");
    if (cursor_pos < 0) cursor_pos = code_points(code);
    return request(c, KINDLING_SHELL, "inspect_request",
                   json_pack("{s:s, s:i, s:i}", "code", code, "cursor_pos", cursor_pos,
                             "detail_level", detail_level),
                   cb, user, NULL);
}

int kindling_client_is_complete(kindling_client *c, const char *code, kindling_reply_cb cb,
                                void *user) {
    if (!c || !code) return kl_client_fail(c, KINDLING_EINVAL, "no client or no code");
    return request(c, KINDLING_SHELL, "is_complete_request", json_pack("{s:s}", "code", code), cb,
                   user, NULL);
}

int kindling_client_history(kindling_client *c, const char *hist_access_type, int n,
                            const char *pattern, bool output, kindling_reply_cb cb, void *user) {
    if (!c) return kl_client_fail(NULL, KINDLING_EINVAL, "no client");
    const char *type = hist_access_type ? hist_access_type : "tail";
    json_t *content = json_pack("{s:s, s:i, s:b, s:b}", "hist_access_type", type, "n", n, "output",
                                output, "raw", 1);
    if (content && pattern) json_object_set_new(content, "pattern", json_string(pattern));
    return request(c, KINDLING_SHELL, "history_request", content, cb, user, NULL);
}

int kindling_client_interrupt(kindling_client *c, kindling_reply_cb cb, void *user) {
    if (!c) return kl_client_fail(NULL, KINDLING_EINVAL, "no client");
    return request(c, KINDLING_CONTROL, "interrupt_request", json_object(), cb, user, NULL);
}

int kindling_client_shutdown(kindling_client *c, bool restart, kindling_reply_cb cb, void *user) {
    if (!c) return kl_client_fail(NULL, KINDLING_EINVAL, "no client");
    return request(c, KINDLING_CONTROL, "shutdown_request", json_pack("{s:b}", "restart", restart),
                   cb, user, NULL);
}

kl_client_req *kl_client_execute_start(kindling_client *c, const char *code,
                                       const kindling_execute_options *opts,
                                       const kindling_execute_handlers *h, void *user, int *rc) {
    if (!c || !code) {
        *rc = kl_client_fail(c, KINDLING_EINVAL, "no client or no code");
        return NULL;
    }
    kindling_execute_handlers none = {0};
    if (!h) h = &none;
    unsigned flags = opts ? opts->flags : 0;
    json_t *expr =
        kl_client_json_arg(c, opts ? opts->user_expressions : NULL, "user_expressions", rc);
    if (!expr) return NULL;
    if (!json_is_object(expr)) {
        json_decref(expr);
        *rc = kl_client_fail(c, KINDLING_EINVAL, "user_expressions must be a JSON object");
        return NULL;
    }
    json_t *content = json_pack("{s:s, s:b, s:b, s:o, s:b, s:b}", "code", code, "silent",
                                (flags & KINDLING_EXEC_SILENT) != 0, "store_history",
                                (flags & (KINDLING_EXEC_NO_HISTORY | KINDLING_EXEC_SILENT)) == 0,
                                "user_expressions", expr, "allow_stdin", h->on_input != NULL,
                                "stop_on_error", (flags & KINDLING_EXEC_NO_STOP_ON_ERROR) == 0);
    if (!content) {
        *rc = kl_client_fail(c, KINDLING_EINVAL, "the code is not valid UTF-8");
        return NULL;
    }
    return kl_client_start_request(c, KINDLING_SHELL, "execute_request", content,
                                   opts ? opts->subshell_id : NULL, NULL, user, h, rc);
}

int kindling_client_execute(kindling_client *c, const char *code,
                            const kindling_execute_options *opts,
                            const kindling_execute_handlers *h, void *user,
                            char msg_id[KINDLING_MSG_ID_LEN]) {
    int rc;
    kl_client_req *req = kl_client_execute_start(c, code, opts, h, user, &rc);
    if (!req) return rc;
    if (msg_id) memcpy(msg_id, req->id, KINDLING_MSG_ID_LEN);
    kl_client_pump(c);
    return 0;
}
