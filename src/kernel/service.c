#include "kernel/service.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "jupyter/connection.h"
#include "jupyter/message.h"
#include "kernel/health.h"
#include "kernel/metrics.h"
#include "kernel/options.h"
#include "kernel/tenant.h"
#include "kl_version.h"
#include "runtime/log.h"
#include "spark/client.h"
#include "spark/errors.h"
#include "spark/remote.h"

#define MOD "service"
/* A key file holds one line; anything bigger is not a key. */
#define KEY_FILE_MAX 4096

/* The process's one service. Fields below "loop thread" are touched only there. */
typedef struct kl_service {
    bool serving;              /* `kindling serve` (not a plain kernel with a registration) */
    const char *conn_file_out; /* --connection-file-out, or NULL */
    bool conn_file_written;
    char public_ip[256];    /* the ip written into --connection-file-out */
    char reg_endpoint[512]; /* JEP 66 registration socket, or "" */
    char *temp_conn_file;   /* a fallback temporary file to remove once read, or NULL */
    long grace_ms;
    kl_health *health;

    /* loop thread */
    kl_kernel *k;
    uv_timer_t tick;
    bool tick_started;
    bool stopping;
    /* registration */
    kl_zsock *reg_sock;
    kl_coro *reg_watchdog;
    bool reg_running, reg_done;
    /* readiness probe */
    kl_coro *probe;
    bool probe_running;
    kl_sc_remote remote; /* the configured endpoint (kind local: the embedded server) */
    char *remote_error;  /* why no endpoint can work (bad URL), or NULL */
    char *local_url;     /* the embedded server's URL once ready, or NULL */
    char local_reason[512];
    bool local_changed;
    kl_sc_remote probe_remote; /* what the probe's channel points at */
    kl_grpc *grpc;
    kl_grpc_channel *chan;
    kl_spark_client *client;
    bool ready;
} kl_service;

static kl_service svc;

static uint64_t now_ms(void) {
    return uv_hrtime() / 1000000u;
}

/* ---- JEP 66: the registration handshake ----------------------------------------------------- */

/* Reads a connection file again for the one field the kernel's parser ignores. It is the file
 * the kernel has just read at start-up, before the loop runs, so the read cannot stall anything.
 */
static void registration_from_file(kl_service *s, const kl_kernel *k) {
    const char *path = k->opts.connection_file;
    if (!path || s->reg_endpoint[0]) return;
    json_t *root = json_load_file(path, 0, NULL);
    json_t *port = json_object_get(root, "registration_port");
    if (json_is_integer(port) && json_integer_value(port) > 0 && json_integer_value(port) < 65536) {
        const char *ip = k->info.ip;
        bool v6 = strchr(ip, ':') && ip[0] != '[';
        snprintf(s->reg_endpoint, sizeof s->reg_endpoint, v6 ? "%s://[%s]:%lld" : "%s://%s:%lld",
                 k->info.transport, ip, (long long)json_integer_value(port));
        if (strcmp(k->info.transport, "ipc") == 0)
            snprintf(s->reg_endpoint, sizeof s->reg_endpoint, "ipc://%s-%lld", ip,
                     (long long)json_integer_value(port));
    }
    json_decref(root);
}

static void registration_failed(kl_service *s, const char *why) {
    KL_ERROR(MOD, "JEP 66 registration with %s failed: %s; shutting down", s->reg_endpoint, why);
    s->k->exit_code = 1;
    kl_kernel_begin_shutdown(s->k, false);
}

static void registration_watchdog(void *arg) {
    kl_service *s = arg;
    uint64_t deadline = now_ms() + KL_REGISTRATION_TIMEOUT_MS;
    while (!s->reg_done && !s->stopping && now_ms() < deadline)
        kl_loop_sleep(s->k->loop, deadline - now_ms());
    /* Closing wakes the handshake, which then reports the failure. */
    if (!s->reg_done && s->reg_sock) {
        kl_zsock *z = s->reg_sock;
        s->reg_sock = NULL;
        kl_zsock_close(z);
    }
    s->reg_watchdog = NULL;
}

/* Coroutine: connects to the launcher's registration socket, sends handshake_request with the
 * bound ports (signed like every message), and waits for handshake_reply with status "ok". */
static void registration_main(void *arg) {
    kl_service *s = arg;
    kl_kernel *k = s->k;
    char why[512] = "";
    kl_zsock *z = kl_zsock_new(k->loop, k->zctx, ZMQ_REQ);
    if (!z) {
        registration_failed(s, "cannot make a ZeroMQ REQ socket");
        s->reg_running = false;
        return;
    }
    int zero = 0;
    zmq_setsockopt(kl_zsock_raw(z), ZMQ_LINGER, &zero, sizeof zero);
    int rc = kl_zsock_connect(z, s->reg_endpoint);
    if (rc != 0) {
        snprintf(why, sizeof why, "cannot connect: %s", zmq_strerror(-rc));
        kl_zsock_close(z);
        registration_failed(s, why);
        s->reg_running = false;
        return;
    }
    s->reg_sock = z;
    s->reg_watchdog = kl_loop_spawn(k->loop, registration_watchdog, s, 0);
    const int *p = k->info.ports;
    kl_msg m;
    kl_frames f;
    kl_frames_init(&f);
    rc = kl_msg_init_child(&m, NULL, "handshake_request", k->session,
                           json_pack("{s:i, s:i, s:i, s:i, s:i}", "shell_port", p[KL_CH_SHELL],
                                     "iopub_port", p[KL_CH_IOPUB], "stdin_port", p[KL_CH_STDIN],
                                     "control_port", p[KL_CH_CONTROL], "hb_port", p[KL_CH_HB]));
    if (rc == 0) rc = kl_msg_encode(&m, &k->signer, &f);
    kl_msg_clear(&m);
    if (rc == 0 && s->reg_sock) rc = kl_zsock_send(s->reg_sock, &f);
    kl_frames_clear(&f);
    if (rc == 0 && s->reg_sock) rc = kl_zsock_recv(s->reg_sock, &f);
    if (rc != 0 || !s->reg_sock) {
        if (s->stopping)
            snprintf(why, sizeof why, "the kernel is shutting down");
        else if (!s->reg_sock || rc == -ECANCELED)
            snprintf(why, sizeof why, "no handshake_reply within %d s",
                     KL_REGISTRATION_TIMEOUT_MS / 1000);
        else
            snprintf(why, sizeof why, "%s", zmq_strerror(-rc));
    } else {
        kl_msg reply;
        char err[256];
        if (kl_msg_decode(&f, &k->signer, &reply, err, sizeof err) != 0) {
            snprintf(why, sizeof why, "the reply is not a valid signed message: %s", err);
        } else {
            const char *status = json_string_value(json_object_get(reply.content, "status"));
            if (!status) status = "(none)";
            if (strcmp(kl_msg_type(&reply), "handshake_reply") != 0)
                snprintf(why, sizeof why, "expected a handshake_reply, got %s",
                         kl_msg_type(&reply));
            else if (strcmp(status, "ok") != 0)
                snprintf(why, sizeof why, "the launcher answered status \"%s\"", status);
        }
        kl_msg_clear(&reply);
    }
    kl_frames_clear(&f);
    s->reg_done = true;
    if (s->reg_sock) {
        kl_zsock *zs = s->reg_sock;
        s->reg_sock = NULL;
        kl_zsock_close(zs);
    }
    if (s->reg_watchdog) kl_loop_wake(k->loop, s->reg_watchdog);
    if (why[0] && !s->stopping)
        registration_failed(s, why);
    else if (!why[0])
        KL_INFO(MOD, "registered with %s (JEP 66): shell %d, iopub %d, stdin %d, control %d, hb %d",
                s->reg_endpoint, p[KL_CH_SHELL], p[KL_CH_IOPUB], p[KL_CH_STDIN], p[KL_CH_CONTROL],
                p[KL_CH_HB]);
    s->reg_running = false;
}

/* ---- readiness ------------------------------------------------------------------------------ */

static void probe_release(kl_service *s) {
    if (s->client) kl_spark_client_free(s->client);
    s->client = NULL;
    if (s->chan) kl_grpc_channel_free(s->chan);
    s->chan = NULL;
    kl_sc_remote_free(&s->probe_remote);
}

/* The endpoint to probe now: the configured one, or the embedded server's once it is up. NULL
 * with the reason in why. */
static const kl_sc_remote *probe_target(kl_service *s, char *why, size_t len) {
    if (s->remote_error) {
        snprintf(why, len, "no usable Spark Connect endpoint: %s", s->remote_error);
        return NULL;
    }
    if (s->remote.kind != KL_SC_KIND_LOCAL) return &s->remote;
    if (s->local_changed) {
        /* A restarted embedded server may listen elsewhere: connect afresh. */
        probe_release(s);
        s->local_changed = false;
    }
    if (!s->local_url) {
        snprintf(why, len, "%s",
                 s->local_reason[0] ? s->local_reason
                                    : "the embedded local Spark Connect server is starting");
        return NULL;
    }
    if (!s->probe_remote.host && kl_sc_remote_parse(s->local_url, &s->probe_remote, why, len) != 0)
        return NULL;
    return &s->probe_remote;
}

/* Coroutine: one AnalyzePlan spark_version on the probe's own session. */
static bool probe_once(kl_service *s, char *why, size_t len) {
    const kl_sc_remote *target = probe_target(s, why, len);
    if (!target) return false;
    /* A driver of its own: the SQL module starts gRPC only with the first SQL cell. */
    if (!s->grpc) {
        if (kl_grpc_load_on(s->k->pool, why, len) != 0) return false;
        s->grpc = kl_grpc_new(s->k->loop, 1);
    }
    if (!s->grpc) {
        snprintf(why, len, "the gRPC driver could not start");
        return false;
    }
    if (!s->chan) s->chan = kl_grpc_channel_new(s->grpc, target, NULL, why, len);
    if (!s->chan) return false;
    if (!s->client) s->client = kl_spark_client_new(s->chan, NULL, NULL);
    if (!s->client) {
        snprintf(why, len, "out of memory");
        return false;
    }
    kl_grpc_call_opts o = {.timeout_ms = KL_SERVICE_PROBE_TIMEOUT_MS};
    char *version = NULL;
    kl_grpc_status st = {0};
    int rc = kl_spark_client_version(s->client, &o, &version, &st);
    if (rc == 0) {
        if (!s->ready)
            KL_INFO(MOD, "ready: Spark Connect at %s answers (Spark %s)",
                    kl_grpc_channel_endpoint(s->chan), version ? version : "?");
    } else {
        snprintf(why, len, "Spark Connect at %s: %s", kl_grpc_channel_endpoint(s->chan),
                 st.message && *st.message ? st.message : kl_grpc_code_name(st.code));
        /* A fresh session next time: after a server restart the old one is gone for good. */
        if (s->client) kl_spark_client_free(s->client);
        s->client = NULL;
    }
    free(version);
    kl_grpc_status_clear(&st);
    return rc == 0;
}

static void probe_main(void *arg) {
    kl_service *s = arg;
    char why[1024];
    while (!s->stopping) {
        why[0] = 0;
        bool ok = probe_once(s, why, sizeof why);
        if (s->stopping) break;
        if (!ok && (s->ready || !s->probe_running)) KL_WARN(MOD, "not ready: %s", why);
        s->ready = ok;
        s->probe_running = true;
        kl_health_set_ready(s->health, ok, why);
        kl_loop_sleep(s->k->loop, ok ? KL_SERVICE_PROBE_READY_MS : KL_SERVICE_PROBE_NOT_READY_MS);
    }
    s->probe = NULL;
}

void kl_service_local_spark_changed(kl_spark_local *l, void *user) {
    (void)user;
    kl_service *s = &svc;
    kl_spark_local_state st = kl_spark_local_state_of(l);
    free(s->local_url);
    s->local_url = NULL;
    if (st == KL_SPARK_LOCAL_READY && kl_spark_local_url(l)) {
        s->local_url = strdup(kl_spark_local_url(l));
    } else if (st == KL_SPARK_LOCAL_FAILED) {
        const char *e = kl_spark_local_error(l);
        snprintf(s->local_reason, sizeof s->local_reason,
                 "the embedded local Spark Connect server failed: %s", e ? e : "unknown reason");
    } else {
        snprintf(s->local_reason, sizeof s->local_reason,
                 "the embedded local Spark Connect server is %s",
                 st == KL_SPARK_LOCAL_STOPPING || st == KL_SPARK_LOCAL_STOPPED ? "stopping"
                                                                               : "starting");
    }
    s->local_changed = true;
    if (s->probe && s->k) kl_loop_wake(s->k->loop, s->probe);
}

/* ---- the loop tick: liveness and sampled gauges --------------------------------------------- */

static void on_tick(uv_timer_t *t) {
    kl_service *s = t->data;
    kl_health_beat(s->health);
    kl_metrics_set_coroutines((int64_t)kl_loop_coro_count(s->k->loop));
    kl_metrics_set_connections((int64_t)kl_tenant_connections(s->k));
}

static void on_tick_closed(uv_handle_t *h) {
    (void)h;
}

/* ---- kernel hooks --------------------------------------------------------------------------- */

static int write_connection_file(kl_service *s, const kl_kernel *k, char *err, size_t errlen) {
    kl_connection_info info = k->info; /* shallow: the strings stay the kernel's */
    snprintf(info.ip, sizeof info.ip, "%s", s->public_ip[0] ? s->public_ip : k->info.ip);
    snprintf(info.kernel_name, sizeof info.kernel_name, "kindling");
    /* Written at start-up, before the loop runs: the file is small, and a client must not see
     * the kernel ready before the file is there. kl_connection_write renames a 0600 file into
     * place, so no reader ever sees half of it. */
    int rc = kl_connection_write(s->conn_file_out, &info);
    if (rc != 0) {
        snprintf(err, errlen, "cannot write the connection file %s: %s", s->conn_file_out,
                 strerror(-rc));
        return -1;
    }
    s->conn_file_written = true;
    return 0;
}

int kl_service_kernel_started(kl_kernel *k, const char *hb_bound, char *err, size_t errlen) {
    kl_service *s = &svc;
    s->k = k;
    s->stopping = false;
    if (s->temp_conn_file) {
        unlink(s->temp_conn_file);
        free(s->temp_conn_file);
        s->temp_conn_file = NULL;
    }
    const char *colon = hb_bound ? strrchr(hb_bound, ':') : NULL;
    if (colon && strcmp(k->info.transport, "tcp") == 0 && k->info.ports[KL_CH_HB] == 0)
        k->info.ports[KL_CH_HB] = atoi(colon + 1);
    registration_from_file(s, k);
    if (s->conn_file_out && write_connection_file(s, k, err, errlen) != 0) return -1;
    if (s->reg_endpoint[0]) {
        s->reg_running = true;
        if (!kl_loop_spawn(k->loop, registration_main, s, 0)) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    if (!s->serving) return 0;

    const int *p = k->info.ports;
    KL_INFO(MOD,
            "kernel %s serving on %s://%s: shell %d, iopub %d, stdin %d, control %d, hb %d; "
            "grace period %ld s",
            k->kernel_id, k->info.transport, k->info.ip, p[KL_CH_SHELL], p[KL_CH_IOPUB],
            p[KL_CH_STDIN], p[KL_CH_CONTROL], p[KL_CH_HB], s->grace_ms / 1000);
    uv_timer_init(kl_loop_uv(k->loop), &s->tick);
    s->tick.data = s;
    uv_timer_start(&s->tick, on_tick, 0, 1000);
    s->tick_started = true;
    if (s->health) {
        char why[512];
        if (kl_sc_remote_select(k->opts.spark_remote, &s->remote, why, sizeof why) != 0)
            s->remote_error = strdup(why);
        s->probe = kl_loop_spawn(k->loop, probe_main, s, 0);
    }
    return 0;
}

void kl_service_drain(kl_kernel *k) {
    kl_service *s = &svc;
    if (s->k != k) return;
    kl_health_set_draining(s->health);
    if (s->grace_ms > 0 && kl_tenant_any_busy(k)) {
        KL_INFO(MOD, "shutting down: running cells get up to %ld s to finish", s->grace_ms / 1000);
        uint64_t deadline = now_ms() + (uint64_t)s->grace_ms;
        while (kl_tenant_any_busy(k) && now_ms() < deadline) kl_loop_sleep(k->loop, 50);
        if (kl_tenant_any_busy(k))
            KL_WARN(MOD, "grace period over: interrupting the cells still running");
        else
            KL_INFO(MOD, "every running cell finished within the grace period");
    }
    s->stopping = true;
    if (s->reg_sock) {
        kl_zsock *z = s->reg_sock;
        s->reg_sock = NULL;
        kl_zsock_close(z);
    }
    if (s->reg_watchdog) kl_loop_wake(k->loop, s->reg_watchdog);
    /* The probe's call has a deadline, so this wait is bounded by it. */
    if (s->probe) kl_loop_wake(k->loop, s->probe);
    while (s->probe || s->reg_running || s->reg_watchdog) kl_loop_sleep(k->loop, 10);
    if (s->client) {
        kl_grpc_call_opts o = {.timeout_ms = 1000};
        kl_grpc_status st = {0};
        kl_spark_client_release_session(s->client, &o, &st);
        kl_grpc_status_clear(&st);
    }
    probe_release(s);
    /* No call is in flight any more, so this only joins the driver thread. */
    if (s->grpc) kl_grpc_free(s->grpc);
    s->grpc = NULL;
    if (s->tick_started) {
        uv_timer_stop(&s->tick);
        uv_close((uv_handle_t *)&s->tick, on_tick_closed);
        s->tick_started = false;
    }
}

/* ---- `kindling serve` ----------------------------------------------------------------------- */

static const char *SERVE_USAGE =
    "Usage: kindling serve [options]\n"
    "\n"
    "Runs one long-lived kernel for many clients (a container's main process): ports, key and\n"
    "Spark endpoint from flags, environment and files; JSON logs; a health and metrics endpoint;\n"
    "SIGTERM drains running cells before exiting 0.\n"
    "\n"
    "Network:\n"
    "      --ip ADDR               address the five ZeroMQ sockets bind (default 0.0.0.0)\n"
    "      --shell-port N, --iopub-port N, --stdin-port N, --control-port N, --hb-port N\n"
    "                              fixed ports (default 0: a free port each)\n"
    "      --transport tcp|ipc     ZeroMQ transport (default tcp; with ipc, --ip is a path\n"
    "                              prefix)\n"
    "      --connection-file-out PATH  write the connection file (mode 0600, real ports and\n"
    "                              the key) once the sockets are bound; removed at exit\n"
    "      --registration-file FILE  JEP 66: a launcher's registration file (transport, ip,\n"
    "                              key, signature_scheme, registration_port); the kernel binds\n"
    "                              its own ports and sends them to the registration socket\n"
    "Security:\n"
    "      --key-file PATH         the HMAC key (one line; trailing whitespace ignored); else\n"
    "                              env KINDLING_KEY (removed from the environment once read);\n"
    "                              else a random key, written only to --connection-file-out.\n"
    "                              Never on the command line: /proc/PID/cmdline is world-readable\n"
    "      --signature-scheme S    hmac-sha256 (default) or another hmac-<digest>\n"
    "Health:\n"
    "      --health-port N         HTTP /healthz, /readyz, /metrics (default 8080; 0: off)\n"
    "      --health-ip ADDR        address of the health endpoint (default 0.0.0.0)\n"
    "      --grace-period SECS     on SIGTERM, how long running cells may finish before they\n"
    "                              are interrupted (default 20)\n"
    "Spark and kernel:\n"
    "      --spark-remote URL      Spark Connect endpoint (sc://host:port/;params); env\n"
    "                              SPARK_REMOTE; neither: an embedded local server\n"
    "      --log-level LEVEL       debug, info (default here), warn or error\n"
    "      --log-format FORMAT     json (default here) or plain\n"
    "      and every `kindling kernel` option: --history-file PATH, --no-history,\n"
    "      --display-limit N, --magic-plugin PATH, --plugin-dir DIR, --allow-shell,\n"
    "      --shell-timeout SECS, --max-connections N, --cull-idle SECS, --shared-session,\n"
    "      --max-spark-ops N, --max-result-bytes N (see kindling help kernel)\n"
    "  -h, --help                  this text\n";

enum {
    OPT_IP = 256,
    OPT_SHELL_PORT,
    OPT_IOPUB_PORT,
    OPT_STDIN_PORT,
    OPT_CONTROL_PORT,
    OPT_HB_PORT,
    OPT_TRANSPORT,
    OPT_KEY,
    OPT_KEY_FILE,
    OPT_SCHEME,
    OPT_CONN_OUT,
    OPT_REGISTRATION,
    OPT_HEALTH_PORT,
    OPT_HEALTH_IP,
    OPT_GRACE,
};

static bool parse_long(const char *text, long min, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) return false;
    *out = v;
    return true;
}

/* Reads a key file: one line, trailing whitespace dropped (Kubernetes secrets often end in a
 * newline). Returns a malloc'd key or NULL with a message in err. */
static char *read_key_file(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "--key-file %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(KEY_FILE_MAX + 1);
    size_t n = 0;
    ssize_t r = 0;
    while (buf && n <= KEY_FILE_MAX && (r = read(fd, buf + n, KEY_FILE_MAX + 1 - n)) != 0) {
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf || r < 0) {
        snprintf(err, errlen, "--key-file %s: %s", path, buf ? strerror(errno) : "out of memory");
        free(buf);
        return NULL;
    }
    if (n > KEY_FILE_MAX) {
        snprintf(err, errlen, "--key-file %s: larger than %d bytes; not a key", path, KEY_FILE_MAX);
        free(buf);
        return NULL;
    }
    while (n &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    buf[n] = 0;
    if (n == 0 || memchr(buf, 0, n) || strchr(buf, '\n')) {
        snprintf(err, errlen, "--key-file %s: %s", path,
                 n == 0 ? "the file is empty (an empty key would turn signing off)"
                        : "the key must be one line of text");
        free(buf);
        return NULL;
    }
    return buf;
}

static char *random_key(void) {
    unsigned char raw[32];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t r = getrandom(raw + got, sizeof raw - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return NULL;
        got += (size_t)r;
    }
    char *hex = malloc(2 * sizeof raw + 1);
    if (!hex) return NULL;
    for (size_t i = 0; i < sizeof raw; i++) snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    return hex;
}

/* The connection file the kernel reads at start: kept off the file system (a memfd read back
 * through /proc) so a read-only root file system needs no writable directory for it, and the
 * key is never on disk except where --connection-file-out asks. */
static int pass_connection_info(kl_service *s, const kl_connection_info *info, char *path,
                                size_t len, char *err, size_t errlen) {
    json_t *root =
        json_pack("{s:i, s:i, s:i, s:i, s:i, s:s, s:s, s:s, s:s, s:s}", "shell_port",
                  info->ports[KL_CH_SHELL], "iopub_port", info->ports[KL_CH_IOPUB], "stdin_port",
                  info->ports[KL_CH_STDIN], "control_port", info->ports[KL_CH_CONTROL], "hb_port",
                  info->ports[KL_CH_HB], "ip", info->ip, "transport", info->transport, "key",
                  info->key, "signature_scheme", info->signature_scheme, "kernel_name", "kindling");
    char *text = root ? json_dumps(root, 0) : NULL;
    json_decref(root);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t n = strlen(text);
    int fd = memfd_create("kindling-connection", MFD_CLOEXEC);
    if (fd >= 0) {
        snprintf(path, len, "/proc/self/fd/%d", fd);
        if (access(path, R_OK) != 0) { /* no /proc: fall back to a private file */
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        const char *tmp = getenv("TMPDIR");
        snprintf(path, len, "%s/kindling-connection-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        fd = mkstemp(path); /* 0600 */
        if (fd < 0) {
            snprintf(err, errlen, "cannot create a private connection file in %s: %s",
                     tmp && *tmp ? tmp : "/tmp", strerror(errno));
            memset(text, 0, n);
            free(text);
            return -1;
        }
        s->temp_conn_file = strdup(path);
    }
    bool ok = write(fd, text, n) == (ssize_t)n;
    memset(text, 0, n);
    free(text);
    if (!ok) {
        snprintf(err, errlen, "cannot write the connection info: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int registration_file(kl_service *s, const char *path, kl_connection_info *info,
                             bool ip_given, char *err, size_t errlen) {
    kl_connection_info reg;
    if (kl_connection_load(path, &reg, err, errlen) != 0) return -1;
    json_t *root = json_load_file(path, 0, NULL);
    json_t *port = json_object_get(root, "registration_port");
    long long p = json_is_integer(port) ? json_integer_value(port) : 0;
    json_decref(root);
    if (p <= 0 || p > 65535) {
        snprintf(err, errlen, "%s: field \"registration_port\" must be a port 1-65535", path);
        kl_connection_free(&reg);
        return -1;
    }
    bool v6 = strchr(reg.ip, ':') && reg.ip[0] != '[';
    if (strcmp(reg.transport, "ipc") == 0)
        snprintf(s->reg_endpoint, sizeof s->reg_endpoint, "ipc://%s-%lld", reg.ip, p);
    else
        snprintf(s->reg_endpoint, sizeof s->reg_endpoint, v6 ? "tcp://[%s]:%lld" : "tcp://%s:%lld",
                 reg.ip, p);
    snprintf(info->transport, sizeof info->transport, "%s", reg.transport);
    if (!ip_given) snprintf(info->ip, sizeof info->ip, "%s", reg.ip);
    snprintf(info->signature_scheme, sizeof info->signature_scheme, "%s", reg.signature_scheme);
    info->key = reg.key; /* ownership moves */
    reg.key = NULL;
    kl_connection_free(&reg);
    return 0;
}

int kl_service_main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"ip", required_argument, NULL, OPT_IP},
        {"shell-port", required_argument, NULL, OPT_SHELL_PORT},
        {"iopub-port", required_argument, NULL, OPT_IOPUB_PORT},
        {"stdin-port", required_argument, NULL, OPT_STDIN_PORT},
        {"control-port", required_argument, NULL, OPT_CONTROL_PORT},
        {"hb-port", required_argument, NULL, OPT_HB_PORT},
        {"transport", required_argument, NULL, OPT_TRANSPORT},
        {"key", required_argument, NULL, OPT_KEY},
        {"key-file", required_argument, NULL, OPT_KEY_FILE},
        {"signature-scheme", required_argument, NULL, OPT_SCHEME},
        {"connection-file-out", required_argument, NULL, OPT_CONN_OUT},
        {"registration-file", required_argument, NULL, OPT_REGISTRATION},
        {"health-port", required_argument, NULL, OPT_HEALTH_PORT},
        {"health-ip", required_argument, NULL, OPT_HEALTH_IP},
        {"grace-period", required_argument, NULL, OPT_GRACE},
        {"help", no_argument, NULL, 'h'},
        KL_KERNEL_LONGOPTS,
        {0, 0, 0, 0},
    };
    kl_service *s = &svc;
    kl_kernel_options o = {0};
    kl_connection_info info;
    kl_connection_defaults(&info);
    snprintf(info.ip, sizeof info.ip, "0.0.0.0");
    const char *key_file = NULL, *reg_file = NULL, *health_ip = NULL;
    long health_port = KL_SERVICE_DEFAULT_HEALTH_PORT, grace = KL_SERVICE_DEFAULT_GRACE_PERIOD;
    bool ip_given = false, scheme_given = false;
    /* A service logs for a collector: JSON lines at info, unless the environment says otherwise
     * (main has read it already) or a flag does below. */
    if (!getenv("KINDLING_LOG_FORMAT")) kl_log_set_json(true);
    if (!getenv("KINDLING_LOG_LEVEL")) kl_log_set_level(KL_LOG_INFO);
    int rc = 2, c, memfd = -1;
    long v;
    char err[1024];
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int k = kl_kernel_option("serve", c, optarg, &o);
        if (k < 0) goto out;
        if (k > 0) continue;
        switch (c) {
        case OPT_IP:
            snprintf(info.ip, sizeof info.ip, "%s", optarg);
            ip_given = true;
            break;
        case OPT_SHELL_PORT:
        case OPT_IOPUB_PORT:
        case OPT_STDIN_PORT:
        case OPT_CONTROL_PORT:
        case OPT_HB_PORT: {
            static const kl_channel chans[] = {KL_CH_SHELL, KL_CH_IOPUB, KL_CH_STDIN, KL_CH_CONTROL,
                                               KL_CH_HB};
            kl_channel ch = chans[c - OPT_SHELL_PORT];
            if (!parse_long(optarg, 0, 65535, &v)) {
                fprintf(stderr, "kindling serve: --%s-port takes a port from 0 to 65535\n",
                        kl_channel_name(ch));
                goto out;
            }
            info.ports[ch] = (int)v;
            break;
        }
        case OPT_TRANSPORT:
            if (strcmp(optarg, "tcp") != 0 && strcmp(optarg, "ipc") != 0) {
                fprintf(stderr, "kindling serve: --transport takes tcp or ipc\n");
                goto out;
            }
            snprintf(info.transport, sizeof info.transport, "%s", optarg);
            break;
        case OPT_KEY:
            fprintf(stderr, "kindling serve: --key is not accepted: a key on the command line is "
                            "visible to every user in /proc/PID/cmdline. Use --key-file PATH or "
                            "the KINDLING_KEY environment variable.\n");
            goto out;
        case OPT_KEY_FILE:
            key_file = optarg;
            break;
        case OPT_SCHEME:
            snprintf(info.signature_scheme, sizeof info.signature_scheme, "%s", optarg);
            scheme_given = true;
            break;
        case OPT_CONN_OUT:
            s->conn_file_out = optarg;
            break;
        case OPT_REGISTRATION:
            reg_file = optarg;
            break;
        case OPT_HEALTH_PORT:
            if (!parse_long(optarg, 0, 65535, &health_port)) {
                fprintf(stderr, "kindling serve: --health-port takes a port from 0 (off) to "
                                "65535\n");
                goto out;
            }
            break;
        case OPT_HEALTH_IP:
            health_ip = optarg;
            break;
        case OPT_GRACE:
            if (!parse_long(optarg, 0, 86400, &grace)) {
                fprintf(stderr, "kindling serve: --grace-period takes seconds from 0 to 86400\n");
                goto out;
            }
            break;
        case 'h':
            fputs(SERVE_USAGE, stdout);
            rc = 0;
            goto out;
        default:
            fputs(SERVE_USAGE, stderr);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kindling serve: unexpected argument \"%s\"\n", argv[optind]);
        goto out;
    }

    /* The key: from the registration file, a key file, or the environment, else made here. */
    const char *env_key = getenv("KINDLING_KEY");
    int sources = (reg_file != NULL) + (key_file != NULL) + (env_key && *env_key);
    if (sources > 1) {
        fprintf(stderr, "kindling serve: the key comes from one place: --registration-file, "
                        "--key-file or KINDLING_KEY\n");
        goto out;
    }
    if (reg_file) {
        if (scheme_given) {
            fprintf(stderr, "kindling serve: with --registration-file the signature scheme is "
                            "the file's\n");
            goto out;
        }
        if (registration_file(s, reg_file, &info, ip_given, err, sizeof err) != 0) {
            fprintf(stderr, "kindling serve: %s\n", err);
            goto out;
        }
    } else if (key_file) {
        info.key = read_key_file(key_file, err, sizeof err);
        if (!info.key) {
            fprintf(stderr, "kindling serve: %s\n", err);
            goto out;
        }
    } else if (env_key && *env_key) {
        info.key = strdup(env_key);
    } else {
        if (!s->conn_file_out) {
            fprintf(stderr, "kindling serve: no key: give --key-file PATH or KINDLING_KEY, or "
                            "--connection-file-out PATH to publish a generated one\n");
            goto out;
        }
        info.key = random_key();
    }
    /* Children (%sh, the embedded Spark server) have no business seeing the key. */
    unsetenv("KINDLING_KEY");
    if (!info.key) {
        fprintf(stderr, "kindling serve: could not get a key (out of memory or no randomness)\n");
        goto out;
    }
    /* Clients on this host read the file; a wildcard address is not one they can dial. */
    if (strcmp(info.ip, "0.0.0.0") == 0 || strcmp(info.ip, "*") == 0)
        snprintf(s->public_ip, sizeof s->public_ip, "127.0.0.1");
    else if (strcmp(info.ip, "::") == 0)
        snprintf(s->public_ip, sizeof s->public_ip, "::1");

    char path[512];
    memfd = pass_connection_info(s, &info, path, sizeof path, err, sizeof err);
    if (memfd < 0) {
        fprintf(stderr, "kindling serve: %s\n", err);
        goto out;
    }
    o.connection_file = path;
    s->serving = true;
    s->grace_ms = grace * 1000;
    if (health_port > 0) {
        kl_health_opts ho = {.ip = health_ip, .port = (int)health_port};
        s->health = kl_health_start(&ho, err, sizeof err);
        if (!s->health) {
            fprintf(stderr, "kindling serve: %s\n", err);
            KL_ERROR(MOD, "%s", err);
            goto out;
        }
    }
    kl_metrics_global();
    rc = kl_kernel_main(&o);
    kl_health_stop(s->health);
    s->health = NULL;
    /* A file that outlives the kernel would send clients to ports nobody serves. */
    if (s->conn_file_written) unlink(s->conn_file_out);
out:
    if (memfd >= 0) close(memfd);
    if (s->temp_conn_file) unlink(s->temp_conn_file);
    free(s->temp_conn_file);
    s->temp_conn_file = NULL;
    kl_sc_remote_free(&s->remote);
    free(s->remote_error);
    s->remote_error = NULL;
    /* The embedded server may still report a state change from an exit handler. */
    free(s->local_url);
    s->local_url = NULL;
    kl_connection_free(&info);
    return rc;
}

/* ---- `kindling health` ---------------------------------------------------------------------- */

static const char *HEALTH_USAGE =
    "Usage: kindling health [--host H] [--port N] [--path /healthz] [--timeout SECS]\n"
    "\n"
    "GETs a path of a kernel's health endpoint and exits 0 on HTTP 200, 1 otherwise: a container\n"
    "HEALTHCHECK that needs neither a shell nor curl. Prints the status and the body.\n"
    "\n"
    "      --host H        default 127.0.0.1\n"
    "      --port N        default 8080\n"
    "      --path P        /healthz (default), /readyz or /metrics\n"
    "      --timeout SECS  default 3\n"
    "  -q, --quiet         print nothing\n"
    "  -h, --help          this text\n";

int kl_health_cli_main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"path", required_argument, NULL, 'P'},
        {"timeout", required_argument, NULL, 't'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    const char *host = "127.0.0.1", *path = "/healthz";
    long port = KL_SERVICE_DEFAULT_HEALTH_PORT, timeout = 3;
    bool quiet = false;
    int c;
    while ((c = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'H':
            host = optarg;
            break;
        case 'p':
            if (!parse_long(optarg, 1, 65535, &port)) {
                fprintf(stderr, "kindling health: --port takes a port from 1 to 65535\n");
                return 2;
            }
            break;
        case 'P':
            path = optarg;
            break;
        case 't':
            if (!parse_long(optarg, 1, 3600, &timeout)) {
                fprintf(stderr, "kindling health: --timeout takes seconds from 1 to 3600\n");
                return 2;
            }
            break;
        case 'q':
            quiet = true;
            break;
        case 'h':
            fputs(HEALTH_USAGE, stdout);
            return 0;
        default:
            fputs(HEALTH_USAGE, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kindling health: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    char body[4096], err[512];
    int status =
        kl_health_get(host, (int)port, path, timeout * 1000, body, sizeof body, err, sizeof err);
    if (!quiet) {
        if (status < 0)
            fprintf(stderr, "kindling health: %s\n", err);
        else
            printf("%d %s", status, body);
    }
    return status == 200 ? 0 : 1;
}
