/* Bounded channel of pointers. Receivers are coroutines on the loop thread. Senders are coroutines
 * on the loop thread (they park while full) or other threads (they block while full), so a slow
 * consumer slows its producer instead of growing memory. */
#ifndef KL_RUNTIME_CHAN_H
#define KL_RUNTIME_CHAN_H

#include <stddef.h>

#include "runtime/loop.h"

typedef struct kl_chan kl_chan;

kl_chan *kl_chan_new(kl_loop *loop, size_t capacity);
/* Frees the channel; items still inside are not freed (drain first if they own memory). */
void kl_chan_free(kl_chan *ch);

/* 0 when sent; -EPIPE when the channel is closed (the item stays the caller's). */
int kl_chan_send(kl_chan *ch, void *item);
/* Never waits: 0, -EAGAIN when full, -EPIPE when closed. */
int kl_chan_try_send(kl_chan *ch, void *item);
/* Coroutine only: 0 with *item set; -EPIPE once closed and empty. */
int kl_chan_recv(kl_chan *ch, void **item);
/* Never waits: 0, -EAGAIN when empty, -EPIPE when closed and empty. */
int kl_chan_try_recv(kl_chan *ch, void **item);
/* Wakes every waiter; later sends fail, receives drain what is left. Any thread. */
void kl_chan_close(kl_chan *ch);
size_t kl_chan_len(kl_chan *ch);

#endif
