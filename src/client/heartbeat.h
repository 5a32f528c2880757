/* The client's heartbeat monitor: a thread that pings the kernel's heartbeat socket and reports
 * when the echo stops (and when it comes back). A thread of its own so that a caller whose loop is
 * busy never mistakes itself for a dead kernel. */
#ifndef KL_CLIENT_HEARTBEAT_H
#define KL_CLIENT_HEARTBEAT_H

#include <stddef.h>

#include "client/curve.h"

typedef struct kl_client_hb kl_client_hb;

/* Starts pinging endpoint every interval_ms; a ping without an echo within timeout_ms means the
 * kernel is lost. notify(arg) runs ON THE HEARTBEAT THREAD whenever the state changes: it must
 * only hand over (uv_async_send). NULL with a message in err on failure. */
kl_client_hb *kl_client_hb_start(void *zctx, const char *endpoint, const kl_client_curve *curve,
                                 int interval_ms, int timeout_ms, void (*notify)(void *arg),
                                 void *arg, char *err, size_t errlen);
/* -1 before the first answer or miss, 1 alive, 0 lost. Any thread. */
int kl_client_hb_state(const kl_client_hb *hb);
/* Stops and joins the thread, closes its socket, frees hb. notify is not called afterwards. */
void kl_client_hb_stop(kl_client_hb *hb);

#endif
