#include "kernel/comm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/sqlcomm.h"
#include "runtime/log.h"

struct kl_comm {
    char id[128];
    kl_comm_target handlers; /* copied, so a comm never points into the targets array */
    char *target_name;
    char *session;
    void *user;
    /* Handlers of this comm running now (each may be parked). A closed comm is freed, and its
     * on_close called, only once none is: a handler may outlive the close that a client's
     * comm_close on a subshell, or its connection ending, brings about. */
    int running;
    bool closed;
};

struct kl_comm_manager {
    kl_comm_target *targets;
    size_t ntargets;
    kl_strmap *comms; /* comm_id -> kl_comm */
};

kl_comm_manager *kl_comm_manager_new(void) {
    kl_comm_manager *mgr = calloc(1, sizeof *mgr);
    if (!mgr) return NULL;
    mgr->comms = kl_strmap_new();
    if (!mgr->comms) {
        free(mgr);
        return NULL;
    }
    return mgr;
}

static void free_comm(kl_comm *c) {
    free(c->target_name);
    free(c->session);
    free(c);
}

typedef struct collect_ctx {
    const char *session; /* NULL: every comm */
    kl_comm **v;
    size_t n;
} collect_ctx;

static void collect(const char *key, void *value, void *arg) {
    (void)key;
    collect_ctx *d = arg;
    kl_comm *c = value;
    if (!d->session || strcmp(c->session, d->session) == 0) d->v[d->n++] = c;
}

/* The comms of session (every comm when NULL), as a malloc'd array; NULL when there are none. */
static kl_comm **comms_of(kl_comm_manager *mgr, const char *session, size_t *n) {
    collect_ctx d = {session, calloc(kl_strmap_len(mgr->comms) + 1, sizeof(kl_comm *)), 0};
    if (d.v) kl_strmap_foreach(mgr->comms, collect, &d);
    *n = d.n;
    return d.v;
}

void kl_comm_manager_free(kl_kernel *k, kl_comm_manager *mgr) {
    if (!mgr) return;
    size_t n;
    kl_comm **v = comms_of(mgr, NULL, &n);
    for (size_t i = 0; i < n; i++) {
        kl_strmap_del(mgr->comms, v[i]->id);
        v[i]->closed = true;
        if (v[i]->handlers.on_close) v[i]->handlers.on_close(k, v[i], NULL, NULL);
        free_comm(v[i]);
    }
    free(v);
    kl_strmap_free(mgr->comms);
    free(mgr->targets);
    free(mgr);
}

static const kl_comm_target *find_target(const kl_comm_manager *mgr, const char *name) {
    for (size_t i = 0; i < mgr->ntargets; i++)
        if (strcmp(mgr->targets[i].name, name) == 0) return &mgr->targets[i];
    return NULL;
}

int kl_comm_register_target(kl_comm_manager *mgr, const kl_comm_target *target) {
    if (!target || !target->name) return -EINVAL;
    if (find_target(mgr, target->name)) return -EEXIST;
    kl_comm_target *v = realloc(mgr->targets, (mgr->ntargets + 1) * sizeof *v);
    if (!v) return -ENOMEM;
    mgr->targets = v;
    mgr->targets[mgr->ntargets++] = *target;
    return 0;
}

static void send_close(kl_kernel *k, const kl_msg *parent, const char *id, json_t *data) {
    kl_kernel_publish(k, parent, "comm_close",
                      json_pack("{s:s, s:o}", "comm_id", id, "data", data ? data : json_object()));
}

static kl_comm *comm_new(const char *id, const char *target_name, const char *session,
                         const kl_comm_target *handlers) {
    kl_comm *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (id) {
        snprintf(c->id, sizeof c->id, "%s", id);
    } else if (kl_uuid_v4(c->id) != 0) {
        free(c);
        return NULL;
    }
    if (handlers) c->handlers = *handlers;
    c->target_name = strdup(target_name);
    c->session = strdup(session ? session : "");
    if (!c->target_name || !c->session) {
        free_comm(c);
        return NULL;
    }
    c->handlers.name = c->target_name;
    return c;
}

/* Takes c out of the manager: no message reaches it any more. */
static void detach(kl_kernel *k, kl_comm *c) {
    if (c->closed) return;
    kl_strmap_del(k->comms->comms, c->id);
    c->closed = true;
}

/* A handler of c returned (or a close holds c for a moment): once c is closed and nothing else
 * runs on it, on_close gets its one call and c is freed. */
static void release(kl_kernel *k, kl_comm *c, const kl_msg *msg, json_t *data) {
    if (--c->running > 0 || !c->closed) return;
    if (c->handlers.on_close) c->handlers.on_close(k, c, msg, data);
    free_comm(c);
}

/* A message about comm c from client session: only c's own connection may use it. */
static bool owned_by(const kl_comm *c, const char *session, const char *type) {
    if (strcmp(c->session, session) == 0) return true;
    KL_WARN("comm",
            "%s for comm %s refused: the comm belongs to another connection (client session "
            "%.64s, not %.64s)",
            type, c->id, c->session, session);
    return false;
}

void kl_comm_handle(kl_kernel *k, const char *tenant_session, const kl_msg *msg) {
    kl_comm_manager *mgr = k->comms;
    const char *type = kl_msg_type(msg);
    const char *id = json_string_value(json_object_get(msg->content, "comm_id"));
    json_t *data = json_object_get(msg->content, "data");
    if (!id || !*id || strlen(id) >= sizeof(((kl_comm *)0)->id)) {
        KL_WARN("comm", "%s without a usable comm_id; dropped", type);
        return;
    }
    if (strcmp(type, "comm_open") == 0) {
        const char *name = json_string_value(json_object_get(msg->content, "target_name"));
        const kl_comm_target *target = name ? find_target(mgr, name) : NULL;
        if (kl_strmap_get(mgr->comms, id)) {
            /* Answering with comm_close would close the comm that already has this id. */
            KL_WARN("comm", "comm_open %s refused: a comm with this id is already open", id);
            return;
        }
        if (!target) {
            KL_INFO("comm", "comm_open %s: no target \"%.64s\"; closing it", id,
                    name ? name : "(none)");
            send_close(k, msg, id, NULL);
            return;
        }
        kl_comm *c = comm_new(id, target->name, tenant_session, target);
        if (!c || kl_strmap_put(mgr->comms, c->id, c) != 0) {
            KL_ERROR("comm", "comm_open %s: out of memory; closing it", id);
            if (c) free_comm(c);
            send_close(k, msg, id, NULL);
            return;
        }
        c->running = 1;
        if (target->on_open && target->on_open(k, c, msg, data) != 0 && !c->closed) {
            detach(k, c);
            send_close(k, msg, id, NULL);
        }
        release(k, c, msg, NULL);
        return;
    }
    kl_comm *c = kl_strmap_get(mgr->comms, id);
    if (!c) {
        KL_INFO("comm", "%s for unknown comm %s; ignored", type, id);
        return;
    }
    if (!owned_by(c, tenant_session, type)) return;
    c->running++;
    if (strcmp(type, "comm_msg") == 0) {
        if (c->handlers.on_msg) c->handlers.on_msg(k, c, msg, data);
        release(k, c, NULL, NULL);
    } else if (strcmp(type, "comm_close") == 0) {
        detach(k, c);
        release(k, c, msg, data);
    } else {
        KL_INFO("comm", "unknown comm message type %s; ignored", type);
        release(k, c, NULL, NULL);
    }
}

typedef struct info_ctx {
    json_t *out;
    const char *session;
    const char *target;
} info_ctx;

static void add_info(const char *key, void *value, void *arg) {
    info_ctx *i = arg;
    kl_comm *c = value;
    if (i->target && strcmp(i->target, c->target_name) != 0) return;
    if (i->session && strcmp(i->session, c->session) != 0) return;
    json_object_set_new(i->out, key, json_pack("{s:s}", "target_name", c->target_name));
}

json_t *kl_comm_info_session(kl_comm_manager *mgr, const char *session, const char *target_name) {
    info_ctx i = {json_object(), session, target_name};
    if (i.out) kl_strmap_foreach(mgr->comms, add_info, &i);
    return i.out;
}

typedef struct foreach_ctx {
    const char *target;
    void (*fn)(kl_comm *comm, void *arg);
    void *arg;
} foreach_ctx;

static void foreach_one(const char *key, void *value, void *arg) {
    (void)key;
    foreach_ctx *f = arg;
    kl_comm *c = value;
    if (!f->target || strcmp(f->target, c->target_name) == 0) f->fn(c, f->arg);
}

void kl_comm_foreach(kl_comm_manager *mgr, const char *target_name,
                     void (*fn)(kl_comm *comm, void *arg), void *arg) {
    foreach_ctx f = {target_name, fn, arg};
    kl_strmap_foreach(mgr->comms, foreach_one, &f);
}

json_t *kl_comm_info(kl_comm_manager *mgr, const char *target_name) {
    return kl_comm_info_session(mgr, NULL, target_name);
}

int kl_comm_send(kl_kernel *k, kl_comm *comm, const kl_msg *parent, json_t *data,
                 kl_frames *buffers) {
    if (comm->closed) {
        json_decref(data);
        if (buffers) kl_frames_clear(buffers);
        return -EPIPE;
    }
    return kl_kernel_publish_buffers(
        k, parent, "comm_msg",
        json_pack("{s:s, s:o}", "comm_id", comm->id, "data", data ? data : json_object()), buffers);
}

kl_comm *kl_comm_open_to(kl_kernel *k, const char *session, const kl_msg *parent,
                         const char *target_name, const kl_comm_target *handlers, void *user,
                         json_t *data) {
    kl_comm *c = target_name ? comm_new(NULL, target_name, session, handlers) : NULL;
    if (!c || kl_strmap_put(k->comms->comms, c->id, c) != 0) {
        if (c) free_comm(c);
        json_decref(data);
        return NULL;
    }
    c->user = user;
    kl_kernel_publish(k, parent, "comm_open",
                      json_pack("{s:s, s:s, s:o}", "comm_id", c->id, "target_name", target_name,
                                "data", data ? data : json_object()));
    return c;
}

kl_comm *kl_comm_open(kl_kernel *k, const char *session, const char *target_name,
                      const kl_msg *parent, json_t *data) {
    const kl_comm_target *target = target_name ? find_target(k->comms, target_name) : NULL;
    if (!target) {
        json_decref(data);
        return NULL;
    }
    return kl_comm_open_to(k, session, parent, target_name, target, NULL, data);
}

void kl_comm_close(kl_kernel *k, kl_comm *comm, const kl_msg *parent, json_t *data) {
    if (comm->closed) {
        json_decref(data);
        return;
    }
    detach(k, comm);
    comm->running++;
    send_close(k, parent, comm->id, data);
    release(k, comm, parent, NULL);
}

size_t kl_comm_close_session(kl_kernel *k, const char *session) {
    size_t n;
    kl_comm **v = comms_of(k->comms, session, &n);
    for (size_t i = 0; i < n; i++) {
        KL_INFO("comm", "closing comm %s (%s): its connection ended", v[i]->id, v[i]->target_name);
        detach(k, v[i]);
        v[i]->running++;
        release(k, v[i], NULL, NULL);
    }
    free(v);
    return n;
}

kl_comm *kl_comm_find(kl_comm_manager *mgr, const char *comm_id) {
    return kl_strmap_get(mgr->comms, comm_id);
}
const char *kl_comm_id(const kl_comm *comm) {
    return comm->id;
}
const char *kl_comm_target_name(const kl_comm *comm) {
    return comm->target_name;
}
const char *kl_comm_session(const kl_comm *comm) {
    return comm->session;
}
bool kl_comm_is_open(const kl_comm *comm) {
    return !comm->closed;
}
void *kl_comm_user(const kl_comm *comm) {
    return comm->user;
}
void kl_comm_set_user(kl_comm *comm, void *user) {
    comm->user = user;
}
void *kl_comm_target_user(const kl_comm *comm) {
    return comm->handlers.user;
}

/* kindling.echo sends every message back unchanged, buffers included: the simplest round trip a
 * client can use to check that its comm plumbing works. */
static void echo_msg(kl_kernel *k, kl_comm *comm, const kl_msg *msg, json_t *data) {
    kl_frames copy;
    kl_frames_init(&copy);
    for (size_t i = 0; i < msg->buffers.n; i++)
        kl_frames_add(&copy, kl_frames_data(&msg->buffers, i), kl_frames_size(&msg->buffers, i));
    kl_comm_send(k, comm, msg, json_deep_copy(data ? data : json_object()), &copy);
    kl_frames_clear(&copy);
}

int kl_comm_register_builtin(kl_comm_manager *mgr) {
    static const kl_comm_target echo = {.name = "kindling.echo", .on_msg = echo_msg};
    int rc = kl_comm_register_target(mgr, &echo);
    if (rc == 0) rc = kl_sqlcomm_register(mgr);
    return rc;
}
