#include "kernel/dispatch.h"

#include <stdlib.h>
#include <string.h>

#include "kernel/catalog.h"
#include "kernel/comm.h"
#include "kernel/complete.h"
#include "kernel/execute.h"
#include "kernel/metrics.h"
#include "kernel/inspect.h"
#include "kernel/sqlcomm.h"
#include "kernel/sqltext.h"
#include "kernel/tenant.h"
#include "runtime/log.h"

/* Every request publishes busy and idle: one shared, never modified object per state instead of a
 * new one each time (the kernel sends it as cached text). */
static void status(kl_kernel *k, const kl_msg *parent, const char *state) {
    static json_t *busy, *idle;
    json_t **cached = strcmp(state, "busy") == 0   ? &busy
                      : strcmp(state, "idle") == 0 ? &idle
                                                   : NULL;
    json_t *content;
    if (cached) {
        if (!*cached) *cached = json_pack("{s:s}", "execution_state", state);
        content = json_incref(*cached);
    } else {
        content = json_pack("{s:s}", "execution_state", state);
    }
    kl_kernel_publish(k, parent, "status", content);
}

static const char *str(json_t *content, const char *key, const char *dflt) {
    const char *s = json_string_value(json_object_get(content, key));
    return s ? s : dflt;
}

static json_int_t num(json_t *content, const char *key, json_int_t dflt) {
    json_t *v = json_object_get(content, key);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static json_t *is_complete(const kl_msg *msg) {
    const char *code = str(msg->content, "code", "");
    /* A cell that opens with a magic is handed to the magic whole; only SQL needs a terminator. */
    const char *p = code + strspn(code, " \t\r\n");
    if (*p == '%') return json_pack("{s:s}", "status", "complete");
    switch (kl_sqltext_is_complete(code, strlen(code))) {
    case KL_SQL_COMPLETE:
        return json_pack("{s:s}", "status", "complete");
    case KL_SQL_INVALID:
        return json_pack("{s:s}", "status", "invalid");
    default:
        return json_pack("{s:s, s:s}", "status", "incomplete", "indent", "");
    }
}

typedef struct history_job {
    kl_kernel *k;
    kl_tenant *t;
    json_t *content;
    json_t *result;
} history_job;

static void history_query(void *arg) {
    history_job *j = arg;
    kl_history *h = j->k->history;
    json_t *c = j->content;
    if (!h) return;
    bool output = json_is_true(json_object_get(c, "output"));
    const char *type = str(c, "hist_access_type", "tail");
    int n = (int)num(c, "n", 10);
    /* A tenant sees its own user's sessions only; --shared-session shares everything. */
    kl_history_view v = {j->t->history_session, j->k->opts.shared_session};
    if (strcmp(type, "tail") == 0) {
        j->result = kl_history_tail(h, v, n, output);
    } else if (strcmp(type, "range") == 0) {
        j->result = kl_history_range(h, v, num(c, "session", 0), (int)num(c, "start", 0),
                                     (int)num(c, "stop", 0), output);
    } else if (strcmp(type, "search") == 0) {
        j->result = kl_history_search(h, v, str(c, "pattern", "*"), n,
                                      json_is_true(json_object_get(c, "unique")), output);
    }
}

static json_t *history(kl_kernel *k, kl_tenant *t, const kl_msg *msg) {
    history_job j = {k, t, msg->content, NULL};
    kl_kernel_history_run(k, history_query, &j);
    return json_pack("{s:s, s:o}", "status", "ok", "history", j.result ? j.result : json_array());
}

static json_t *unknown_request(const char *type) {
    return json_pack("{s:s, s:s, s:s, s:[]}", "status", "error", "ename", "UnknownMessageType",
                     "evalue", type, "traceback");
}

/* Logs each unknown message type once: a misbehaving client must not flood the log. */
static void log_unknown(const char *channel, const char *type) {
    static char seen[32][64];
    static int nseen;
    for (int i = 0; i < nseen; i++)
        if (strcmp(seen[i], type) == 0) return;
    if (nseen < 32) snprintf(seen[nseen++], sizeof seen[0], "%s", type);
    KL_WARN("dispatch", "unknown %s message type \"%s\"", channel, type);
}

/* "foo_request" -> "foo_reply" into buf; false when type is not a request. */
static bool reply_type(const char *type, char *buf, size_t len) {
    size_t n = strlen(type);
    if (n < 9 || strcmp(type + n - 8, "_request") != 0 || n - 8 + 7 > len) return false;
    snprintf(buf, len, "%.*s_reply", (int)(n - 8), type);
    return true;
}

void kl_dispatch_shell(kl_kernel *k, kl_tenant *t, const kl_msg *msg) {
    const char *type = kl_msg_type(msg);
    if (strcmp(type, "shutdown_request") == 0 || strcmp(type, "interrupt_request") == 0) {
        /* Old clients send these on shell; answer on shell as they expect. */
        kl_dispatch_control(k, k->shell, msg);
        return;
    }
    status(k, msg, "busy");
    json_t *reply = NULL;
    char rtype[64];
    if (strcmp(type, "execute_request") == 0) {
        kl_execute(k, t, msg);
    } else if (strcmp(type, "kernel_info_request") == 0) {
        reply = kl_kernel_info_content(k);
    } else if (strcmp(type, "is_complete_request") == 0) {
        reply = is_complete(msg);
    } else if (strcmp(type, "complete_request") == 0) {
        reply = kl_catalog_complete(k, t, msg);
    } else if (strcmp(type, "inspect_request") == 0) {
        reply = kl_inspect(k, t, msg);
    } else if (strcmp(type, "history_request") == 0) {
        reply = history(k, t, msg);
    } else if (strcmp(type, "comm_info_request") == 0) {
        reply = json_pack(
            "{s:s, s:o}", "status", "ok", "comms",
            kl_comm_info_session(k->comms, t->session,
                                 json_string_value(json_object_get(msg->content, "target_name"))));
    } else if (strncmp(type, "comm_", 5) == 0) {
        kl_comm_handle(k, t->session, msg);
    } else {
        log_unknown("shell", type);
        if (reply_type(type, rtype, sizeof rtype))
            kl_kernel_reply(k, k->shell, msg, rtype, unknown_request(type));
    }
    if (reply && reply_type(type, rtype, sizeof rtype))
        kl_kernel_reply(k, k->shell, msg, rtype, reply);
    else
        json_decref(reply);
    status(k, msg, "idle");
}

void kl_dispatch_abort(kl_kernel *k, kl_tenant *t, const kl_msg *msg) {
    kl_metrics_execution("aborted", 0);
    status(k, msg, "busy");
    kl_kernel_reply(k, k->shell, msg, "execute_reply",
                    json_pack("{s:s, s:i, s:[], s:{}}", "status", "aborted", "execution_count",
                              t->execution_count, "payload", "user_expressions"));
    status(k, msg, "idle");
}

/* ---- subshells (JEP 91) ---------------------------------------------------------------- */

/* Subshells belong to the connection that made them: another client can neither see nor use
 * nor delete them, so tenants stay isolated. */
typedef struct subshell_list {
    const char *session;
    json_t *ids;
} subshell_list;

static void list_one(const char *key, void *value, void *arg) {
    (void)key;
    subshell_list *l = arg;
    kl_tenant *t = value;
    if (t->parent && !t->closing && strcmp(t->session, l->session) == 0)
        json_array_append_new(l->ids, json_string(t->subshell_id));
}

static json_t *subshell_error(const char *ename, const char *evalue) {
    return json_pack("{s:s, s:s, s:s, s:[s]}", "status", "error", "ename", ename, "evalue", evalue,
                     "traceback", evalue);
}

static json_t *subshell_request(kl_kernel *k, const kl_msg *msg, const char *type) {
    const char *session = kl_msg_session(msg);
    if (strcmp(type, "create_subshell_request") == 0) {
        kl_tenant *parent = kl_tenant_get(k, session);
        if (!parent)
            return subshell_error("TooManyConnections",
                                  "this kernel serves no more connections (--max-connections)");
        kl_tenant *t = kl_tenant_new_subshell(parent);
        if (!t) return subshell_error("MemoryError", "could not create a subshell");
        return json_pack("{s:s, s:s}", "status", "ok", "subshell_id", t->subshell_id);
    }
    if (strcmp(type, "delete_subshell_request") == 0) {
        const char *id = str(msg->content, "subshell_id", "");
        kl_tenant *t = *id ? kl_tenant_find_subshell(k, session, id) : NULL;
        if (!t) {
            char why[256];
            snprintf(why, sizeof why, "no subshell \"%.64s\" belongs to this connection", id);
            return subshell_error("SubshellNotFound", why);
        }
        kl_tenant_close(t);
        return json_pack("{s:s}", "status", "ok");
    }
    subshell_list l = {session, json_array()};
    kl_strmap_foreach(k->tenants, list_one, &l);
    return json_pack("{s:s, s:o}", "status", "ok", "subshell_id", l.ids);
}

void kl_dispatch_control(kl_kernel *k, kl_zsock *sock, const kl_msg *msg) {
    const char *type = kl_msg_type(msg);
    char rtype[64];
    status(k, msg, "busy");
    if (strcmp(type, "kernel_info_request") == 0) {
        kl_kernel_reply(k, sock, msg, "kernel_info_reply", kl_kernel_info_content(k));
    } else if (strcmp(type, "interrupt_request") == 0) {
        /* Pipelined kindling.sql calls are the connection's running work too. */
        if (!kl_sqlcomm_interrupt(k, msg)) kl_kernel_interrupt_session(k, kl_msg_session(msg));
        kl_kernel_reply(k, sock, msg, "interrupt_reply", json_pack("{s:s}", "status", "ok"));
    } else if (strcmp(type, "shutdown_request") == 0) {
        bool restart = json_is_true(json_object_get(msg->content, "restart"));
        json_t *content = json_pack("{s:s, s:b}", "status", "ok", "restart", restart);
        kl_kernel_publish(k, msg, "shutdown_reply", json_deep_copy(content));
        kl_kernel_reply(k, sock, msg, "shutdown_reply", content);
        status(k, msg, "idle");
        kl_kernel_begin_shutdown(k, restart);
        return;
    } else if (strcmp(type, "create_subshell_request") == 0 ||
               strcmp(type, "delete_subshell_request") == 0 ||
               strcmp(type, "list_subshell_request") == 0) {
        reply_type(type, rtype, sizeof rtype);
        kl_kernel_reply(k, sock, msg, rtype, subshell_request(k, msg, type));
    } else if (strcmp(type, "debug_request") == 0) {
        json_t *seq = json_object_get(msg->content, "seq");
        kl_kernel_reply(k, sock, msg, "debug_reply",
                        json_pack("{s:s, s:O, s:b, s:s, s:s}", "type", "response", "request_seq",
                                  seq ? seq : json_null(), "success", 0, "command",
                                  str(msg->content, "command", ""), "message",
                                  "Kindling has no debugger"));
    } else {
        log_unknown("control", type);
        if (reply_type(type, rtype, sizeof rtype))
            kl_kernel_reply(k, sock, msg, rtype, unknown_request(type));
    }
    status(k, msg, "idle");
}
