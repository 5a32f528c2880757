/* The kindling.sql comm target: parameterised SQL as a remote procedure call (docs/comm.md).
 *
 * comm_open data {"sql": "SELECT ... WHERE id = :id", "format": "json" | "application/msgpack",
 * "limit": N, "concurrency": N} parses the statement once; every comm_msg {"request_id": any,
 * "params": {...} | [...]} (or params as one msgpack buffer) runs it with those values bound as
 * typed literals, as one ExecutePlan of the SQL relation on the connection's Spark session, and is
 * answered with one comm_msg carrying the same request_id and either the rows or an "error"
 * {ename, evalue, sqlstate}. With "concurrency" above 1, calls that wait together are answered
 * by one Spark query when the statement allows it (kernel/sqlbatch.h, docs/comm.md "Batching"). */
#ifndef KL_KERNEL_SQLCOMM_H
#define KL_KERNEL_SQLCOMM_H

#include <stdbool.h>
#include <stdint.h>

#include "kernel/kernel.h"

#define KL_SQLCOMM_TARGET          "kindling.sql"
#define KL_SQLCOMM_DEFAULT_LIMIT   10000 /* rows per call unless the open asks otherwise */
#define KL_SQLCOMM_MAX_CONCURRENCY 64    /* calls of one comm running at once, at most */
#define KL_SQLCOMM_MAX_BATCH       1024  /* pipelined calls one Spark query answers, at most */

int kl_sqlcomm_register(kl_comm_manager *mgr);

/* Loop thread, never parks: an interrupt_request (msg) reached the kernel. The comms of its
 * connection stop the calls it sent before the request (by the dates of their headers; every call
 * they hold when the request has none): running Spark operations are interrupted, and every such
 * call is answered KeyboardInterrupt instead of running, in the comm's format. Later calls run as
 * usual. When the connection has no comm calls and runs no request, every connection's comms stop
 * what they hold, as the kernel's rule for cells says (kl_kernel_interrupt_session). True when comm
 * calls were the connection's only work: the interrupt is then served, and must not reach others'
 * cells. */
bool kl_sqlcomm_interrupt(kl_kernel *k, const kl_msg *msg);
/* Loop thread, never parks: SIGINT reached the kernel. Every comm stops what it holds (by arrival:
 * a signal carries no client's clock), as every connection's running request does. */
void kl_sqlcomm_interrupt_all(kl_kernel *k);

#endif
