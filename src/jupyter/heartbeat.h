/* The heartbeat channel: a REP socket echoing every message, on a thread of its own so that a busy
 * loop never looks like a dead kernel. */
#ifndef KL_JUPYTER_HEARTBEAT_H
#define KL_JUPYTER_HEARTBEAT_H

#include <stddef.h>

typedef struct kl_heartbeat kl_heartbeat;

/* Binds endpoint in zctx and starts echoing. NULL with a message in err on failure. The bound
 * endpoint (port resolved) is written to bound (may be NULL). */
kl_heartbeat *kl_heartbeat_start(void *zctx, const char *endpoint, void (*configure)(void *zsock),
                                 char *bound, size_t boundlen, char *err, size_t errlen);
/* Stops the thread, closes its sockets, frees hb. */
void kl_heartbeat_stop(kl_heartbeat *hb);

#endif
