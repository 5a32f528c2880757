/* Service mode: `kindling serve` runs one long-lived kernel for many clients, configured from
 * flags, environment and files (never a key on the command line), with a health and metrics
 * endpoint (kernel/health.h), a readiness probe of the Spark Connect endpoint, a connection file
 * written once the ports are bound, and a graceful SIGTERM (running cells get a grace period).
 * Also the JEP 66 registration handshake, for `serve --registration-file` and for `kindling
 * kernel -f FILE` when FILE is a registration file; and `kindling health`, the probe client.
 *
 * One kernel per process, so the service's state is process-wide; the kernel reaches it through
 * the hooks below, which do nothing outside service mode and without a registration file.
 * Documented for users in docs/service.md. */
#ifndef KL_KERNEL_SERVICE_H
#define KL_KERNEL_SERVICE_H

#include <stddef.h>

#include "kernel/kernel.h"
#include "spark/local.h"

/* A kernel that got no handshake_reply this long after starting shuts itself down (JEP 66). */
#define KL_REGISTRATION_TIMEOUT_MS 30000
/* `kindling serve` defaults. */
#define KL_SERVICE_DEFAULT_HEALTH_PORT  8080
#define KL_SERVICE_DEFAULT_GRACE_PERIOD 20 /* seconds; below Kubernetes' default 30 s */
/* The readiness probe: AnalyzePlan spark_version this often (ready / not ready), this deadline. */
#define KL_SERVICE_PROBE_READY_MS     10000
#define KL_SERVICE_PROBE_NOT_READY_MS 1000
#define KL_SERVICE_PROBE_TIMEOUT_MS   3000

/* `kindling serve ...` and `kindling health ...`; argv[0] is the command name. Return the process
 * exit code. */
int kl_service_main(int argc, char **argv);
int kl_health_cli_main(int argc, char **argv);

/* ---- Hooks the kernel calls (loop thread) --------------------------------------------------- */

/* In start(), once every socket is bound (hb_bound: the heartbeat's bound endpoint): records the
 * real ports, writes --connection-file-out, starts the JEP 66 handshake when there is a
 * registration file, and in service mode the 1 s loop tick (liveness, gauges) and the readiness
 * probe. -1 with a message in err when the kernel must not run. */
int kl_service_kernel_started(kl_kernel *k, const char *hb_bound, char *err, size_t errlen);
/* Coroutine, first thing of the shutdown: stops readiness, waits up to the grace period for
 * running cells to finish on their own, then stops the service's own loop handles. The kernel
 * interrupts whatever still runs afterwards. */
void kl_service_drain(kl_kernel *k);
/* kl_spark_local_opts.on_change of the embedded server: readiness follows its state. */
void kl_service_local_spark_changed(kl_spark_local *l, void *user);

#endif
