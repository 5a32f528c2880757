/* Request handlers: shell requests run on their tenant's coroutine, control requests on the
 * control coroutine. */
#ifndef KL_KERNEL_DISPATCH_H
#define KL_KERNEL_DISPATCH_H

#include "kernel/kernel.h"
#include "kernel/tenant.h"

/* Coroutine: busy, the handler, the reply, idle. msg stays the caller's. */
void kl_dispatch_shell(kl_kernel *k, kl_tenant *t, const kl_msg *msg);
/* Coroutine: answers an execute_request that will not run with status "aborted". */
void kl_dispatch_abort(kl_kernel *k, kl_tenant *t, const kl_msg *msg);
/* Coroutine (the control coroutine): kernel_info, interrupt, shutdown, anything else. Replies go
 * out on sock: control, or shell for old clients that send shutdown/interrupt there. */
void kl_dispatch_control(kl_kernel *k, kl_zsock *sock, const kl_msg *msg);

#endif
