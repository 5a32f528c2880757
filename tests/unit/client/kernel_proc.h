/* A real kindling kernel (KL_BINARY) for the client library's tests: started on ipc endpoints in
 * a temporary directory (no port races), pointed at a Spark port where nothing listens, killed and
 * cleaned up at the end. */
#ifndef KL_TEST_KERNEL_PROC_H
#define KL_TEST_KERNEL_PROC_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct test_kernel {
    pid_t pid;
    int status; /* exit status once reaped */
    bool reaped;
    char dir[64];
    char conn[128];
} test_kernel;

static inline long long tk_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes the connection file; curve_public/curve_secret (the kernel's pair) may be NULL. */
static inline void tk_write_connection(test_kernel *k, const char *key, const char *curve_public,
                                       const char *curve_secret) {
    FILE *f = fopen(k->conn, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "{\"transport\": \"ipc\", \"ip\": \"%s/k\", \"shell_port\": 1, \"iopub_port\": 2, "
            "\"stdin_port\": 3, \"control_port\": 4, \"hb_port\": 5, \"key\": \"%s\", "
            "\"signature_scheme\": \"hmac-sha256\", \"kernel_name\": \"kindling\"",
            k->dir, key);
    if (curve_public) fprintf(f, ", \"curve_publickey\": \"%s\"", curve_public);
    if (curve_secret) fprintf(f, ", \"curve_secretkey\": \"%s\"", curve_secret);
    fputs("}\n", f);
    fclose(f);
}

static inline void tk_start_with(test_kernel *k, const char *key, const char *curve_public,
                                 const char *curve_secret) {
    memset(k, 0, sizeof *k);
    snprintf(k->dir, sizeof k->dir, "/tmp/klct-XXXXXX");
    cr_assert_not_null(mkdtemp(k->dir));
    snprintf(k->conn, sizeof k->conn, "%s/kernel.json", k->dir);
    tk_write_connection(k, key, curve_public, curve_secret);
    char log[128];
    snprintf(log, sizeof log, "%s/stderr.log", k->dir);
    k->pid = fork();
    cr_assert(k->pid >= 0);
    if (k->pid == 0) {
        /* A test that times out is killed before its fini: the kernel must not outlive it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(KL_BINARY, KL_BINARY, "kernel", "-f", k->conn, "--spark-remote", "sc://127.0.0.1:9",
              "--no-history", (char *)NULL);
        _exit(127);
    }
}

static inline void tk_start(test_kernel *k) {
    tk_start_with(k, "test-key", NULL, NULL);
}

/* Waits up to timeout_ms for the kernel to exit; true (and k->status set) when it did. */
static inline bool tk_wait_exit(test_kernel *k, int timeout_ms) {
    if (k->reaped) return true;
    long long end = tk_now_ms() + timeout_ms;
    while (tk_now_ms() < end) {
        int st;
        pid_t r = waitpid(k->pid, &st, WNOHANG);
        if (r == k->pid) {
            k->reaped = true;
            k->status = st;
            return true;
        }
        usleep(10000);
    }
    return false;
}

static inline void tk_stop(test_kernel *k) {
    if (k->pid > 0 && !k->reaped) {
        kill(k->pid, SIGCONT);
        kill(k->pid, SIGTERM);
        if (!tk_wait_exit(k, 10000)) {
            kill(k->pid, SIGKILL);
            tk_wait_exit(k, 5000);
        }
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", k->dir);
    if (k->dir[0] && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", k->dir);
}

#endif
