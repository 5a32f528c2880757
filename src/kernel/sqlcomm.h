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

#include "kernel/kernel.h"

#define KL_SQLCOMM_TARGET          "kindling.sql"
#define KL_SQLCOMM_DEFAULT_LIMIT   10000 /* rows per call unless the open asks otherwise */
#define KL_SQLCOMM_MAX_CONCURRENCY 64    /* calls of one comm running at once, at most */
#define KL_SQLCOMM_MAX_BATCH       1024  /* pipelined calls one Spark query answers, at most */

int kl_sqlcomm_register(kl_comm_manager *mgr);

#endif
