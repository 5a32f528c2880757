/* The Comm API: targets registered by name, comms opened by clients or by the kernel, messages
 * both ways.
 *
 * A comm belongs to the client connection (Jupyter session) that opened it, or that the kernel
 * opened it towards: a comm_msg or comm_close from another connection is refused (and logged), and
 * the comms of a connection close when it goes away (kl_comm_close_session).
 *
 * Handlers run on the loop thread in the coroutine of the connection that sent the message, so
 * they may park (Spark calls, kl_pool_run); that connection's next request waits until they
 * return. Closing is safe at any time: while a handler of a comm runs, the comm stays allocated and
 * its on_close is deferred until the last running handler returns. */
#ifndef KL_KERNEL_COMM_H
#define KL_KERNEL_COMM_H

#include <jansson.h>

#include "kernel/kernel.h"

typedef struct kl_comm kl_comm;

typedef struct kl_comm_target {
    const char *name;
    /* A client opened a comm: return 0 to keep it, non-zero to close it straight away (comm_close
     * is sent and on_close called). May be NULL. data is borrowed; msg->buffers holds any binary
     * buffers. */
    int (*on_open)(kl_kernel *k, kl_comm *comm, const kl_msg *msg, json_t *data);
    /* A comm_msg from the comm's own connection. May be NULL. */
    void (*on_msg)(kl_kernel *k, kl_comm *comm, const kl_msg *msg, json_t *data);
    /* The comm is going away (either side closed it, its connection ended, the kernel stops);
     * called once: release the comm's user data here. msg and data are NULL unless a client's
     * comm_close (or the kernel's own kl_comm_close) is what closed it and no handler was running.
     * It runs in a coroutine (and may park) except from kl_comm_manager_free. May be NULL. */
    void (*on_close)(kl_kernel *k, kl_comm *comm, const kl_msg *msg, json_t *data);
    void *user; /* the target's own data, for kl_comm_target_user */
} kl_comm_target;

kl_comm_manager *kl_comm_manager_new(void);
/* Frees every comm still open (calling on_close with NULL msg, outside any coroutine) and the
 * manager. */
void kl_comm_manager_free(kl_kernel *k, kl_comm_manager *mgr);
/* Registers target (copied; name and user must outlive the manager). -EEXIST when taken. */
int kl_comm_register_target(kl_comm_manager *mgr, const kl_comm_target *target);

/* Coroutine: handles comm_open, comm_msg and comm_close from client session tenant_session. An
 * open for an unknown target is answered with comm_close, as the protocol asks. */
void kl_comm_handle(kl_kernel *k, const char *tenant_session, const kl_msg *msg);
/* {comm_id: {target_name}} of every open comm, only target_name's when it is non-NULL. New ref. */
json_t *kl_comm_info(kl_comm_manager *mgr, const char *target_name);
/* The same for the comms of one connection only (what a comm_info_request should answer, so one
 * client never learns another's comm ids). New ref. */
json_t *kl_comm_info_session(kl_comm_manager *mgr, const char *session, const char *target_name);
/* Calls fn(comm, arg) for every comm of target_name (every comm when NULL). fn must not open or
 * close comms. */
void kl_comm_foreach(kl_comm_manager *mgr, const char *target_name,
                     void (*fn)(kl_comm *comm, void *arg), void *arg);

/* Coroutine: sends a comm_msg with data (stolen) and buffers (consumed, may be NULL) as a child of
 * parent (may be NULL). -EPIPE (nothing sent) once the comm is closed. */
int kl_comm_send(kl_kernel *k, kl_comm *comm, const kl_msg *parent, json_t *data,
                 kl_frames *buffers);
/* Coroutine: the kernel opens a comm towards the client session `session` (comm_open on IOPub as a
 * child of parent, which may be NULL) for the client-side target target_name. handlers (copied;
 * may be NULL) receive that client's comm_msg and comm_close; handlers->name is ignored. user is
 * the comm's user data. data is stolen. NULL on ENOMEM. */
kl_comm *kl_comm_open_to(kl_kernel *k, const char *session, const kl_msg *parent,
                         const char *target_name, const kl_comm_target *handlers, void *user,
                         json_t *data);
/* kl_comm_open_to with the handlers registered for target_name; NULL when none is registered. */
kl_comm *kl_comm_open(kl_kernel *k, const char *session, const char *target_name,
                      const kl_msg *parent, json_t *data);
/* Coroutine: closes comm from the kernel's side (sends comm_close with data, stolen; calls
 * on_close now or when its running handlers return). Does nothing to a comm already closed. */
void kl_comm_close(kl_kernel *k, kl_comm *comm, const kl_msg *parent, json_t *data);
/* Coroutine: closes every comm of a client session that went away, without waiting for the
 * client; on_close of each has returned (or is deferred behind a running handler) when this
 * returns. Call it before the connection's state is freed. Returns how many were closed. */
size_t kl_comm_close_session(kl_kernel *k, const char *session);

/* The open comm with this id, or NULL. */
kl_comm *kl_comm_find(kl_comm_manager *mgr, const char *comm_id);
const char *kl_comm_id(const kl_comm *comm);
const char *kl_comm_target_name(const kl_comm *comm);
const char *kl_comm_session(const kl_comm *comm); /* the owning client session */
bool kl_comm_is_open(const kl_comm *comm);
void *kl_comm_user(const kl_comm *comm);
void kl_comm_set_user(kl_comm *comm, void *user);
void *kl_comm_target_user(const kl_comm *comm);

/* Registers the built-in targets: kindling.echo and kindling.sql (kernel/sqlcomm.h). */
int kl_comm_register_builtin(kl_comm_manager *mgr);

#endif
