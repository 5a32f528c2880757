/* Comms: opened by the client (or by the kernel towards it), messages routed by comm_id. */
#include "client/internal.h"

#include <stdlib.h>
#include <string.h>

#include "jupyter/jsontext.h"

static json_t *data_arg(kindling_client *c, const char *data_json, int *rc) {
    json_t *data = kl_client_json_arg(c, data_json, "the comm data", rc);
    if (data && !json_is_object(data)) {
        json_decref(data);
        data = NULL;
        *rc = kl_client_fail(c, KINDLING_EINVAL, "the comm data must be a JSON object");
    }
    return data;
}

kindling_comm *kindling_comm_open(kindling_client *c, const char *target_name,
                                  const char *data_json, const kindling_buffer *buffers,
                                  size_t nbuffers, const kindling_comm_handlers *h, void *user) {
    if (!c || !target_name || !*target_name) {
        kl_client_fail(c, KINDLING_EINVAL, "no client or no target name");
        return NULL;
    }
    int rc;
    json_t *data = data_arg(c, data_json, &rc);
    if (!data) return NULL;
    kindling_comm *comm = calloc(1, sizeof *comm);
    if (!comm || kl_uuid_v4(comm->id) != 0) {
        free(comm);
        json_decref(data);
        kl_client_fail(c, KINDLING_ENOMEM, "out of memory");
        return NULL;
    }
    comm->c = c;
    if (h) comm->h = *h;
    comm->user = user;
    json_t *content =
        json_pack("{s:s, s:s, s:o}", "comm_id", comm->id, "target_name", target_name, "data", data);
    if (!content) {
        free(comm);
        kl_client_fail(c, KINDLING_EINVAL, "the target name is not UTF-8");
        return NULL;
    }
    if (kl_strmap_put(c->comms, comm->id, comm) != 0) {
        json_decref(content);
        free(comm);
        kl_client_fail(c, KINDLING_ENOMEM, "out of memory");
        return NULL;
    }
    if (kl_client_send(c, KINDLING_SHELL, "comm_open", content, NULL, NULL, buffers, nbuffers,
                       NULL) != 0) {
        kl_strmap_del(c->comms, comm->id);
        free(comm);
        return NULL;
    }
    kl_client_pump(c);
    return comm;
}

int kindling_comm_send(kindling_comm *comm, const char *data_json, const kindling_buffer *buffers,
                       size_t nbuffers, char msg_id[KINDLING_MSG_ID_LEN]) {
    if (!comm) return kl_client_fail(NULL, KINDLING_EINVAL, "no comm");
    kindling_client *c = comm->c;
    int rc;
    json_t *data = data_arg(c, data_json, &rc);
    if (!data) return rc;
    rc = kl_client_send(c, KINDLING_SHELL, "comm_msg",
                        json_pack("{s:s, s:o}", "comm_id", comm->id, "data", data), NULL, NULL,
                        buffers, nbuffers, msg_id);
    if (rc == 0) kl_client_pump(c);
    return rc;
}

int kindling_comm_close(kindling_comm *comm, const char *data_json) {
    if (!comm) return kl_client_fail(NULL, KINDLING_EINVAL, "no comm");
    kindling_client *c = comm->c;
    int rc;
    json_t *data = data_arg(c, data_json, &rc);
    kl_strmap_del(c->comms, comm->id);
    if (data) {
        rc = kl_client_send(c, KINDLING_SHELL, "comm_close",
                            json_pack("{s:s, s:o}", "comm_id", comm->id, "data", data), NULL, NULL,
                            NULL, 0, NULL);
    }
    free(comm);
    if (rc == 0) kl_client_pump(c);
    return rc;
}

const char *kindling_comm_id(const kindling_comm *comm) {
    return comm ? comm->id : NULL;
}

kindling_client *kindling_comm_client(const kindling_comm *comm) {
    return comm ? comm->c : NULL;
}

static const char *data_text(kindling_msg *km) {
    const char *t = kindling_msg_get(km, "content.data");
    return t ? t : "{}";
}

static void kernel_open(kindling_client *c, kindling_msg *km, const char *id) {
    const char *target = json_string_value(json_object_get(km->m.content, "target_name"));
    if (!c->opts.on_comm_open || !target || strlen(id) >= KL_UUID_STRLEN) return;
    kindling_comm *comm = calloc(1, sizeof *comm);
    if (!comm) return;
    comm->c = c;
    strcpy(comm->id, id);
    const kindling_comm_handlers *h =
        c->opts.on_comm_open(c, comm, target, km, &comm->user, c->opts.user);
    /* Not refused with a comm_close: the comm_open went to every client of the kernel, and
     * another one may want it. */
    if (!h || c->closing || kl_strmap_put(c->comms, comm->id, comm) != 0) {
        free(comm);
        return;
    }
    comm->h = *h;
}

bool kl_client_comm_route(kindling_client *c, kindling_msg *km) {
    const char *type = kindling_msg_type(km);
    const char *id = json_string_value(json_object_get(km->m.content, "comm_id"));
    if (!id) return false;
    if (strcmp(type, "comm_open") == 0) {
        if (!kl_strmap_get(c->comms, id)) kernel_open(c, km, id);
        return true;
    }
    kindling_comm *comm = kl_strmap_get(c->comms, id);
    if (!comm) return false;
    if (strcmp(type, "comm_msg") == 0) {
        if (comm->h.on_msg) {
            size_t n = km->m.buffers.n;
            kindling_buffer *bufs = calloc(n + 1, sizeof *bufs);
            for (size_t i = 0; bufs && i < n; i++) bufs[i] = kindling_msg_buffer(km, i);
            comm->h.on_msg(comm, km, data_text(km), bufs, bufs ? n : 0, comm->user);
            free(bufs);
        }
        return true;
    }
    if (strcmp(type, "comm_close") == 0) {
        kl_strmap_del(c->comms, id);
        if (comm->h.on_close) comm->h.on_close(comm, km, data_text(km), comm->user);
        free(comm);
        return true;
    }
    return false;
}

static void free_comm(const char *key, void *value, void *arg) {
    (void)key, (void)arg;
    free(value);
}

/* The map keeps its (dangling) entries until the client is freed: nothing routes to it any more
 * once the client is closing. */
void kl_client_comm_drop_all(kindling_client *c) {
    kl_strmap_foreach(c->comms, free_comm, NULL);
}
