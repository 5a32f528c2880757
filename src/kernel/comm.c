#include "kernel/comm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"

struct kl_comm {
    char id[128];
    const kl_comm_target *target;
    char *tenant_session;
    void *user;
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
    free(c->tenant_session);
    free(c);
}

typedef struct drop_ctx {
    kl_kernel *k;
    kl_comm **v;
    size_t n;
} drop_ctx;

static void collect(const char *key, void *value, void *arg) {
    (void)key;
    drop_ctx *d = arg;
    d->v[d->n++] = value;
}

void kl_comm_manager_free(kl_kernel *k, kl_comm_manager *mgr) {
    if (!mgr) return;
    drop_ctx d = {k, calloc(kl_strmap_len(mgr->comms) + 1, sizeof(kl_comm *)), 0};
    if (d.v) kl_strmap_foreach(mgr->comms, collect, &d);
    for (size_t i = 0; i < d.n; i++) {
        if (d.v[i]->target->on_close) d.v[i]->target->on_close(k, d.v[i], NULL, NULL);
        free_comm(d.v[i]);
    }
    free(d.v);
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
    if (find_target(mgr, target->name)) return -EEXIST;
    kl_comm_target *v = realloc(mgr->targets, (mgr->ntargets + 1) * sizeof *v);
    if (!v) return -ENOMEM;
    /* Comms keep pointers to their target: targets are registered at start-up, before any comm
     * exists, so the array never moves under a live comm. */
    mgr->targets = v;
    mgr->targets[mgr->ntargets++] = *target;
    return 0;
}

static void send_close(kl_kernel *k, const kl_msg *parent, const char *id, json_t *data) {
    kl_kernel_publish(k, parent, "comm_close",
                      json_pack("{s:s, s:o}", "comm_id", id, "data", data ? data : json_object()));
}

void kl_comm_handle(kl_kernel *k, const char *tenant_session, const kl_msg *msg) {
    kl_comm_manager *mgr = k->comms;
    const char *type = kl_msg_type(msg);
    const char *id = json_string_value(json_object_get(msg->content, "comm_id"));
    json_t *data = json_object_get(msg->content, "data");
    if (!id || strlen(id) >= sizeof(((kl_comm *)0)->id)) {
        KL_WARN("comm", "%s without a usable comm_id; dropped", type);
        return;
    }
    if (strcmp(type, "comm_open") == 0) {
        const char *name = json_string_value(json_object_get(msg->content, "target_name"));
        const kl_comm_target *target = name ? find_target(mgr, name) : NULL;
        if (!target || kl_strmap_get(mgr->comms, id)) {
            KL_INFO("comm", "comm_open %s: %s; closing it", id,
                    target ? "the comm id is already open" : "no such target");
            send_close(k, msg, id, NULL);
            return;
        }
        kl_comm *c = calloc(1, sizeof *c);
        if (!c) return;
        strcpy(c->id, id);
        c->target = target;
        c->tenant_session = strdup(tenant_session);
        kl_strmap_put(mgr->comms, c->id, c);
        if (target->on_open && target->on_open(k, c, msg, data) != 0) {
            kl_strmap_del(mgr->comms, c->id);
            send_close(k, msg, id, NULL);
            if (target->on_close) target->on_close(k, c, msg, NULL);
            free_comm(c);
        }
        return;
    }
    kl_comm *c = kl_strmap_get(mgr->comms, id);
    if (!c) {
        KL_INFO("comm", "%s for unknown comm %s; ignored", type, id);
        return;
    }
    if (strcmp(type, "comm_msg") == 0) {
        if (c->target->on_msg) c->target->on_msg(k, c, msg, data);
    } else { /* comm_close */
        kl_strmap_del(mgr->comms, c->id);
        if (c->target->on_close) c->target->on_close(k, c, msg, data);
        free_comm(c);
    }
}

typedef struct info_ctx {
    json_t *out;
    const char *target;
} info_ctx;

static void add_info(const char *key, void *value, void *arg) {
    info_ctx *i = arg;
    kl_comm *c = value;
    if (i->target && strcmp(i->target, c->target->name) != 0) return;
    json_object_set_new(i->out, key, json_pack("{s:s}", "target_name", c->target->name));
}

json_t *kl_comm_info(kl_comm_manager *mgr, const char *target_name) {
    info_ctx i = {json_object(), target_name};
    kl_strmap_foreach(mgr->comms, add_info, &i);
    return i.out;
}

int kl_comm_send(kl_kernel *k, kl_comm *comm, const kl_msg *parent, json_t *data,
                 kl_frames *buffers) {
    return kl_kernel_publish_buffers(
        k, parent, "comm_msg",
        json_pack("{s:s, s:o}", "comm_id", comm->id, "data", data ? data : json_object()), buffers);
}

kl_comm *kl_comm_open(kl_kernel *k, const char *tenant_session, const char *target_name,
                      const kl_msg *parent, json_t *data) {
    const kl_comm_target *target = find_target(k->comms, target_name);
    kl_comm *c = target ? calloc(1, sizeof *c) : NULL;
    if (!c || kl_uuid_v4(c->id) != 0) {
        free(c);
        json_decref(data);
        return NULL;
    }
    c->target = target;
    c->tenant_session = strdup(tenant_session);
    kl_strmap_put(k->comms->comms, c->id, c);
    kl_kernel_publish(k, parent, "comm_open",
                      json_pack("{s:s, s:s, s:o}", "comm_id", c->id, "target_name", target_name,
                                "data", data ? data : json_object()));
    return c;
}

void kl_comm_close(kl_kernel *k, kl_comm *comm, const kl_msg *parent, json_t *data) {
    kl_strmap_del(k->comms->comms, comm->id);
    send_close(k, parent, comm->id, data);
    if (comm->target->on_close) comm->target->on_close(k, comm, parent, NULL);
    free_comm(comm);
}

const char *kl_comm_id(const kl_comm *comm) {
    return comm->id;
}
const char *kl_comm_target_name(const kl_comm *comm) {
    return comm->target->name;
}
void *kl_comm_user(const kl_comm *comm) {
    return comm->user;
}
void kl_comm_set_user(kl_comm *comm, void *user) {
    comm->user = user;
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
    return kl_comm_register_target(mgr, &echo);
}
