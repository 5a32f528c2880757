/* The blocking API: a client on a private loop runs that loop until the answer it waits for. */
#include "client/internal.h"

#include <stdio.h>
#include <string.h>

static void on_deadline(uv_timer_t *h) {
    kindling_client *c = h->data;
    c->timed_out = true;
}

/* Runs the private loop until *done, a break, the deadline or a close. Returns 0 when done,
 * else the reason. After KINDLING_ECLOSED the client is gone: the caller must not touch it. */
static int wait_for(kindling_client *c, const bool *done, int timeout_ms) {
    if (!c->private_loop)
        return kl_client_fail(c, KINDLING_ESTATE,
                              "blocking calls need a client made with kindling_client_new(NULL, "
                              "...); this one runs on the caller's loop");
    if (c->blocking || c->depth > 0)
        return kl_client_fail(c, KINDLING_ESTATE,
                              "a blocking call cannot run inside a callback or another blocking "
                              "call");
    if (c->closing) return kl_client_fail(c, KINDLING_ECLOSED, "the client is closed");
    if (!c->connected) return kl_client_fail(c, KINDLING_ESTATE, "the client is not connected");
    c->blocking = true;
    c->timed_out = false;
    c->depth++;
    if (timeout_ms >= 0) uv_timer_start(&c->deadline, on_deadline, (uint64_t)timeout_ms, 0);
    kl_client_pump(c);
    while (!*done && !c->break_requested && !c->timed_out && !c->closing)
        uv_run(c->loop, UV_RUN_ONCE);
    if (!c->closing) uv_timer_stop(&c->deadline);
    c->blocking = false;
    c->depth--;
    if (c->closing) {
        kl_client_maybe_free(c);
        return KINDLING_ECLOSED;
    }
    /* A break is consumed by the call it ends; asked for while no blocking call ran (a reply
     * that came during a send's own pump), it ends the next one. */
    bool broke = c->break_requested;
    c->break_requested = false;
    if (*done) return 0;
    if (broke) return kl_client_fail(c, KINDLING_EBREAK, "kindling_client_break");
    return kl_client_fail(c, KINDLING_ETIMEDOUT, "no answer within %d ms", timeout_ms);
}

void kindling_client_break(kindling_client *c) {
    if (c) c->break_requested = true;
}

int kindling_client_wait_ready(kindling_client *c, int timeout_ms) {
    if (!c) return kl_client_fail(NULL, KINDLING_EINVAL, "no client");
    int rc = wait_for(c, &c->ready, timeout_ms);
    if (rc == KINDLING_ETIMEDOUT)
        kl_client_fail(c, rc, "the kernel did not answer on IOPub within %d ms", timeout_ms);
    return rc;
}

int kindling_client_run(kindling_client *c, int timeout_ms) {
    if (!c) return kl_client_fail(NULL, KINDLING_EINVAL, "no client");
    bool never = false;
    int rc = wait_for(c, &never, timeout_ms);
    return rc == KINDLING_ETIMEDOUT || rc == KINDLING_EBREAK ? 0 : rc;
}

/* KINDLING_EREPLY with "ename: evalue" when reply's status is not "ok". */
static int check_reply(kindling_client *c, const kindling_msg *reply) {
    const char *status = kindling_msg_get(reply, "content.status");
    if (status && strcmp(status, "ok") == 0) return 0;
    const char *ename = kindling_msg_get(reply, "content.ename");
    const char *evalue = kindling_msg_get(reply, "content.evalue");
    if (ename) return kl_client_fail(c, KINDLING_EREPLY, "%s: %s", ename, evalue ? evalue : "");
    return kl_client_fail(c, KINDLING_EREPLY, "%s answered with status \"%s\"",
                          kindling_msg_type(reply), status ? status : "(none)");
}

/* Waits for req (just started) and hands over its reply. */
static int wait_request(kindling_client *c, kl_client_req *req, int timeout_ms,
                        kindling_msg **reply) {
    bool done = false;
    int status = 0;
    kindling_msg *got = NULL;
    req->done = &done;
    req->status = &status;
    req->sink = &got;
    int rc = wait_for(c, &done, timeout_ms);
    if (rc == KINDLING_ECLOSED) {
        kl_client_msg_release(got);
        return rc;
    }
    if (rc != 0) {
        /* Still pending: it must not write into this frame later. */
        req->done = NULL;
        req->status = NULL;
        req->sink = NULL;
        return rc;
    }
    if (status != 0) return kl_client_fail(c, status, "%s", kindling_strerror(status));
    rc = got ? check_reply(c, got) : 0;
    if (reply)
        *reply = got;
    else
        kl_client_msg_release(got);
    return rc;
}

int kindling_client_execute_blocking(kindling_client *c, const char *code,
                                     const kindling_execute_options *opts,
                                     const kindling_execute_handlers *h, void *user, int timeout_ms,
                                     kindling_msg **reply) {
    if (reply) *reply = NULL;
    if (c && !c->private_loop)
        return kl_client_fail(c, KINDLING_ESTATE,
                              "blocking calls need a client made with "
                              "kindling_client_new(NULL, ...)");
    int rc;
    kl_client_req *req = kl_client_execute_start(c, code, opts, h, user, &rc);
    if (!req) return rc;
    return wait_request(c, req, timeout_ms, reply);
}

int kindling_client_request_blocking(kindling_client *c, kindling_channel channel,
                                     const char *msg_type, const char *content_json, int timeout_ms,
                                     kindling_msg **reply) {
    if (reply) *reply = NULL;
    if (!c || !msg_type) return kl_client_fail(c, KINDLING_EINVAL, "no client or no message type");
    if (!c->private_loop)
        return kl_client_fail(c, KINDLING_ESTATE,
                              "blocking calls need a client made with "
                              "kindling_client_new(NULL, ...)");
    if (channel != KINDLING_SHELL && channel != KINDLING_CONTROL)
        return kl_client_fail(c, KINDLING_EINVAL, "requests go on the shell or control channel");
    int rc;
    json_t *content = kl_client_json_arg(c, content_json, "the request content", &rc);
    if (!content) return rc;
    if (!json_is_object(content)) {
        json_decref(content);
        return kl_client_fail(c, KINDLING_EINVAL, "the request content must be a JSON object");
    }
    kl_client_req *req =
        kl_client_start_request(c, channel, msg_type, content, NULL, NULL, NULL, NULL, &rc);
    if (!req) return rc;
    return wait_request(c, req, timeout_ms, reply);
}
