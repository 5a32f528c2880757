/* The Comm API: targets registered by name, comms opened by clients or by the kernel, messages
 * both ways. A comm belongs to the tenant that opened it; comm_info lists them all. */
#ifndef KL_KERNEL_COMM_H
#define KL_KERNEL_COMM_H

#include <jansson.h>

#include "kernel/kernel.h"

typedef struct kl_comm kl_comm;

typedef struct kl_comm_target {
    const char *name;
    /* A client opened a comm: return 0 to keep it, non-zero to close it straight away. May be
     * NULL. data is borrowed; msg->buffers holds any binary buffers. */
    int (*on_open)(kl_kernel *k, kl_comm *comm, const kl_msg *msg, json_t *data);
    void (*on_msg)(kl_kernel *k, kl_comm *comm, const kl_msg *msg, json_t *data);
    /* The comm is going away (either side closed it); release comm's user data here. */
    void (*on_close)(kl_kernel *k, kl_comm *comm, const kl_msg *msg, json_t *data);
} kl_comm_target;

kl_comm_manager *kl_comm_manager_new(void);
/* Frees every comm (calling on_close with a NULL msg) and the manager. */
void kl_comm_manager_free(kl_kernel *k, kl_comm_manager *mgr);
/* Registers target (copied; name must outlive the manager). -EEXIST when taken. */
int kl_comm_register_target(kl_comm_manager *mgr, const kl_comm_target *target);

/* Coroutine: handles comm_open, comm_msg and comm_close from a client. An open for an unknown
 * target is answered with comm_close, as the protocol asks. */
void kl_comm_handle(kl_kernel *k, const char *tenant_session, const kl_msg *msg);
/* {comm_id: {target_name}} of open comms, only target_name's when it is non-NULL. New ref. */
json_t *kl_comm_info(kl_comm_manager *mgr, const char *target_name);

/* Coroutine: sends a comm_msg with data (stolen) and buffers (consumed, may be NULL). */
int kl_comm_send(kl_kernel *k, kl_comm *comm, const kl_msg *parent, json_t *data,
                 kl_frames *buffers);
/* Coroutine: opens a comm towards the clients for target; data stolen. NULL on error. */
kl_comm *kl_comm_open(kl_kernel *k, const char *tenant_session, const char *target_name,
                      const kl_msg *parent, json_t *data);
/* Coroutine: closes comm from the kernel's side (sends comm_close, calls on_close, frees). */
void kl_comm_close(kl_kernel *k, kl_comm *comm, const kl_msg *parent, json_t *data);

const char *kl_comm_id(const kl_comm *comm);
const char *kl_comm_target_name(const kl_comm *comm);
void *kl_comm_user(const kl_comm *comm);
void kl_comm_set_user(kl_comm *comm, void *user);

/* Registers the built-in targets (kindling.echo). */
int kl_comm_register_builtin(kl_comm_manager *mgr);

#endif
