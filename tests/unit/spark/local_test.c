/* The embedded local Spark Connect server. One test starts a real server from the repository's
 * .venv pyspark (Java 17 on PATH); the others use a fake SPARK_HOME whose bin/spark-submit is a
 * shell script (it records its arguments, environment and working directory, then listens with
 * python3, crashes, stays silent or ignores SIGTERM, as $FAKE_MODE says), so process-group
 * handling, timeouts, crash reports, restart and the exit paths are checked in seconds. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/log.h"
#include "runtime/pool.h"
#include "spark/local.h"

static kl_loop *loop;
static kl_pool *pool;
static char scratch[256]; /* per-test temporary directory */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_tree(const char *dir) {
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void) {
    snprintf(scratch, sizeof scratch, "/tmp/kl-local-test-XXXXXX");
    cr_assert_not_null(mkdtemp(scratch));
    setenv("TMPDIR", scratch, 1); /* private directories of servers go here */
    unsetenv("SPARK_HOME");
    unsetenv("VIRTUAL_ENV");
    unsetenv("FAKE_MODE");
    loop = kl_loop_new();
    cr_assert_not_null(loop);
    pool = kl_pool_new(loop, 2);
    cr_assert_not_null(pool);
}

static void teardown(void) {
    kl_pool_free(pool);
    kl_loop_free(loop);
    remove_tree(scratch);
}

TestSuite(local, .init = setup, .fini = teardown, .timeout = 300);

/* ---- helpers ---- */

/* No member of the group runs any more. Members that died after their parent stay zombies until
 * init reaps them, which may take a moment; those count as gone. */
static bool group_gone(int pid) {
    if (pid <= 0) return false;
    if (kill(-pid, 0) == -1 && errno == ESRCH) return true;
    DIR *d = opendir("/proc");
    cr_assert_not_null(d);
    bool live = false;
    struct dirent *e;
    while (!live && (e = readdir(d))) {
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *rp = strrchr(buf, ')');
        char state;
        int ppid, pgrp;
        if (rp && sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pid &&
            state != 'Z' && state != 'X')
            live = true;
    }
    closedir(d);
    return !live;
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* A blocking connect, fine on the test's own thread: loopback answers at once. */
static bool port_open(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static char *slurp(const char *dir, const char *name) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static bool has_line(const char *text, const char *line) {
    size_t len = strlen(line);
    for (const char *p = text; p && (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && (p[len] == '\n' || p[len] == '\0')) return true;
    return false;
}

static void write_file(const char *path, const char *text, mode_t mode) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static const char fake_submit[] =
    "#!/bin/sh\n"
    "printf '%s\\n' \"$@\" > args.txt\n"
    "env > env.txt\n"
    "pwd > cwd.txt\n"
    "port=\n"
    "for a in \"$@\"; do\n"
    "  case \"$a\" in spark.connect.grpc.binding.port=*) port=\"${a#*=}\" ;; esac\n"
    "done\n"
    "case \"$FAKE_MODE\" in\n"
    "crash)\n"
    "  i=1\n"
    "  while [ $i -le 30 ]; do echo \"log line $i\"; i=$((i + 1)); done\n"
    "  echo boom >&2\n"
    "  exit 3 ;;\n"
    "silent) exec sleep 300 ;;\n"
    "stubborn) trap '' TERM ;;\n"
    "esac\n"
    "sleep 300 &\n" /* a second member of the process group */
    "sleep 0.4\n"   /* so that the first probes are refused */
    "exec python3 -c '\n"
    "import socket, sys\n"
    "s = socket.socket()\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind((\"127.0.0.1\", int(sys.argv[1])))\n"
    "s.listen(16)\n"
    "while True:\n"
    "    c, _ = s.accept()\n"
    "    c.close()\n"
    "' \"$port\"\n";

/* A SPARK_HOME with a script for spark-submit and the jar names the finder looks for. */
static void make_fake_spark(char *home, size_t len) {
    snprintf(home, len, "%s/fake-spark", scratch);
    char path[PATH_MAX];
    cr_assert_eq(mkdir(home, 0755), 0);
    snprintf(path, sizeof path, "%s/bin", home);
    cr_assert_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/jars", home);
    cr_assert_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/bin/spark-submit", home);
    write_file(path, fake_submit, 0755);
    snprintf(path, sizeof path, "%s/jars/spark-core_2.13-9.8.7.jar", home);
    write_file(path, "", 0644);
    snprintf(path, sizeof path, "%s/jars/spark-connect_2.13-9.8.7.jar", home);
    write_file(path, "", 0644);
}

static void use_fake_spark(const char *mode) {
    char home[PATH_MAX];
    make_fake_spark(home, sizeof home);
    setenv("SPARK_HOME", home, 1);
    if (mode) setenv("FAKE_MODE", mode, 1);
}

/* Records every state change, and the status shown while starting. */
typedef struct {
    kl_spark_local_state seen[32];
    int n;
    char starting_status[PATH_MAX + 128];
} history;

static void on_change(kl_spark_local *l, void *user) {
    history *h = user;
    if (h->n < 32) h->seen[h->n++] = kl_spark_local_state_of(l);
    if (kl_spark_local_state_of(l) == KL_SPARK_LOCAL_STARTING)
        snprintf(h->starting_status, sizeof h->starting_status, "%s", kl_spark_local_status(l));
}

static void run(void (*fn)(void *), void *arg) {
    cr_assert_not_null(kl_loop_spawn(loop, fn, arg, 256 * 1024));
    kl_loop_run(loop);
    cr_assert_eq(kl_loop_coro_count(loop), 0, "every coroutine finished");
}

/* What a test body found out, asserted after the loop has returned. */
typedef struct {
    kl_spark_local_opts opts;
    history h;
    int wait_rc;
    kl_spark_local_state state;
    char error[8192];
    char status[PATH_MAX + 128];
    char dir[PATH_MAX];
    char url[64];
    int port, pid;
    bool open_when_ready;
    char *args, *env, *cwd, *pidfile, *kernelpid;
    kl_spark_local_state after_stop;
    bool group_gone_after_stop, port_closed_after_stop, dir_gone_after_stop;
    uint64_t stop_ms;
} result;

static void result_free(result *r) {
    free(r->args);
    free(r->env);
    free(r->cwd);
    free(r->pidfile);
    free(r->kernelpid);
}

static void record(result *r, kl_spark_local *l) {
    r->state = kl_spark_local_state_of(l);
    snprintf(r->error, sizeof r->error, "%s",
             kl_spark_local_error(l) ? kl_spark_local_error(l) : "");
    snprintf(r->status, sizeof r->status, "%s", kl_spark_local_status(l));
    snprintf(r->dir, sizeof r->dir, "%s", kl_spark_local_dir(l) ? kl_spark_local_dir(l) : "");
    snprintf(r->url, sizeof r->url, "%s", kl_spark_local_url(l) ? kl_spark_local_url(l) : "");
    r->port = kl_spark_local_port(l);
    r->pid = kl_spark_local_pid(l);
}

static void stop_and_record(result *r, kl_spark_local *l) {
    uint64_t t0 = uv_hrtime();
    kl_spark_local_stop(l);
    r->stop_ms = (uv_hrtime() - t0) / 1000000;
    r->after_stop = kl_spark_local_state_of(l);
    r->group_gone_after_stop = r->pid == 0 || group_gone(r->pid);
    r->port_closed_after_stop = r->port == 0 || !port_open(r->port);
    r->dir_gone_after_stop = r->dir[0] == '\0' || !exists(r->dir);
    cr_expect_null(kl_spark_local_dir(l));
}

/* Start, wait, record, collect what the fake wrote, stop. */
static void start_wait_stop(void *arg) {
    result *r = arg;
    kl_spark_local *l = NULL;
    cr_assert_eq(kl_spark_local_start(loop, pool, &r->opts, &l), 0);
    r->wait_rc = kl_spark_local_wait(l);
    record(r, l);
    r->open_when_ready = r->port && port_open(r->port);
    if (r->dir[0]) {
        r->args = slurp(r->dir, "args.txt");
        r->env = slurp(r->dir, "env.txt");
        r->cwd = slurp(r->dir, "cwd.txt");
        r->pidfile = slurp(r->dir, "server.pid");
        r->kernelpid = slurp(r->dir, "kernel.pid");
    }
    stop_and_record(r, l);
    kl_spark_local_free(l);
}

static void assert_cleaned_up(const result *r) {
    cr_assert_eq(r->after_stop, KL_SPARK_LOCAL_STOPPED);
    cr_assert(r->group_gone_after_stop, "process group %d is gone", r->pid);
    cr_assert(r->port_closed_after_stop, "port %d is closed", r->port);
    cr_assert(r->dir_gone_after_stop, "%s is removed", r->dir);
}

/* ---- a fake server ---- */

static int extra_rc[3];
static kl_spark_local *shared;

static void extra_waiter(void *arg) {
    *(int *)arg = kl_spark_local_wait(shared);
}

static void many_waiters(void *arg) {
    result *r = arg;
    cr_assert_eq(kl_spark_local_start(loop, pool, &r->opts, &shared), 0);
    for (int i = 0; i < 3; i++) {
        extra_rc[i] = 99;
        kl_loop_spawn(loop, extra_waiter, &extra_rc[i], 0);
    }
    r->wait_rc = kl_spark_local_wait(shared);
    record(r, shared);
    r->open_when_ready = port_open(r->port);
    r->args = slurp(r->dir, "args.txt");
    r->env = slurp(r->dir, "env.txt");
    r->cwd = slurp(r->dir, "cwd.txt");
    r->pidfile = slurp(r->dir, "server.pid");
    r->kernelpid = slurp(r->dir, "kernel.pid");
    kl_loop_sleep(loop, 10); /* let the other waiters run */
    stop_and_record(r, shared);
    kl_spark_local_free(shared);
}

Test(local, fake_server_starts_with_the_expected_command_line_and_stops) {
    use_fake_spark(NULL);
    setenv("SPARK_REMOTE", "local", 1);         /* a client setting the server must not see */
    setenv("JAVA_HOME", "/nonexistent/jdk", 1); /* wrong, but java is on PATH */
    result r = {0};
    r.opts.on_change = on_change;
    r.opts.user = &r.h;
    run(many_waiters, &r);

    cr_assert_eq(r.wait_rc, 0, "%s", r.error);
    for (int i = 0; i < 3; i++) cr_assert_eq(extra_rc[i], 0, "waiter %d", i);
    cr_assert_eq(r.state, KL_SPARK_LOCAL_READY);
    cr_assert(strstr(r.status, "ready at sc://127.0.0.1:"), "%s", r.status);
    cr_assert(r.open_when_ready);
    char url[64];
    snprintf(url, sizeof url, "sc://127.0.0.1:%d", r.port);
    cr_assert_str_eq(r.url, url);
    cr_assert(strstr(r.h.starting_status, "Spark 9.8.7 from "), "%s", r.h.starting_status);
    cr_assert(strstr(r.h.starting_status, "/fake-spark"), "%s", r.h.starting_status);

    /* The private directory sits under $TMPDIR and is the server's working directory. */
    cr_assert(strncmp(r.dir, scratch, strlen(scratch)) == 0, "%s", r.dir);
    cr_assert_not_null(r.cwd);
    r.cwd[strcspn(r.cwd, "\n")] = '\0';
    cr_assert_str_eq(r.cwd, r.dir);

    cr_assert_not_null(r.args);
    char line[2 * PATH_MAX + 128];
    const char *want[] = {"--class",
                          "org.apache.spark.sql.connect.service.SparkConnectServer",
                          "--master",
                          "local[*]",
                          "--driver-memory",
                          "1g",
                          "spark.connect.grpc.binding.address=127.0.0.1",
                          "spark.ui.enabled=false",
                          "spark-internal"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_assert(has_line(r.args, want[i]), "argument %s missing:\n%s", want[i], r.args);
    snprintf(line, sizeof line, "spark.connect.grpc.binding.port=%d", r.port);
    cr_assert(has_line(r.args, line), "%s", r.args);
    snprintf(line, sizeof line, "spark.sql.warehouse.dir=%s/warehouse", r.dir);
    cr_assert(has_line(r.args, line), "%s", r.args);
    snprintf(line, sizeof line,
             "spark.driver.extraJavaOptions=-Dderby.system.home=%s -Djava.io.tmpdir=%s/tmp", r.dir,
             r.dir);
    cr_assert(has_line(r.args, line), "%s", r.args);

    cr_assert_not_null(r.env);
    cr_assert(!strstr(r.env, "SPARK_REMOTE="), "SPARK_REMOTE is not passed on");
    cr_assert(strstr(r.env, "SPARK_HOME="), "%s", r.env);
    cr_assert(!strstr(r.env, "JAVA_HOME=/nonexistent"), "the wrong JAVA_HOME is replaced");
    /* ... by the home of the java found on PATH (spark-class prefers $JAVA_HOME/bin/java). */
    const char *jh = strstr(r.env, "\nJAVA_HOME=");
    cr_assert_not_null(jh, "%s", r.env);
    char java[PATH_MAX];
    snprintf(java, sizeof java, "%.*s/bin/java", (int)strcspn(jh + 11, "\n"), jh + 11);
    cr_assert_eq(access(java, X_OK), 0, "%s", java);

    char pidline[32];
    snprintf(pidline, sizeof pidline, "%d\n", r.pid);
    cr_assert_str_eq(r.pidfile, pidline);
    snprintf(pidline, sizeof pidline, "%d\n", (int)getpid());
    cr_assert_str_eq(r.kernelpid, pidline);

    assert_cleaned_up(&r);
    kl_spark_local_state order[] = {KL_SPARK_LOCAL_FINDING, KL_SPARK_LOCAL_STARTING,
                                    KL_SPARK_LOCAL_READY, KL_SPARK_LOCAL_STOPPING,
                                    KL_SPARK_LOCAL_STOPPED};
    cr_assert_eq(r.h.n, 5);
    for (int i = 0; i < 5; i++) cr_assert_eq(r.h.seen[i], order[i], "state %d", i);
    result_free(&r);
}

Test(local, options_reach_the_command_line) {
    use_fake_spark(NULL);
    result r = {0};
    const char *conf[] = {"spark.sql.shuffle.partitions=3", NULL};
    r.opts.master = "local[2]";
    r.opts.driver_memory = "700m";
    r.opts.conf = conf;
    r.opts.port = 0;
    run(start_wait_stop, &r);
    cr_assert_eq(r.wait_rc, 0, "%s", r.error);
    cr_assert(has_line(r.args, "local[2]"), "%s", r.args);
    cr_assert(has_line(r.args, "700m"), "%s", r.args);
    cr_assert(has_line(r.args, "spark.sql.shuffle.partitions=3"), "%s", r.args);
    assert_cleaned_up(&r);
    result_free(&r);
}

Test(local, sigterm_ignored_means_sigkill_after_the_grace_period) {
    use_fake_spark("stubborn");
    result r = {0};
    r.opts.stop_grace_ms = 400;
    run(start_wait_stop, &r);
    cr_assert_eq(r.wait_rc, 0, "%s", r.error);
    cr_assert(r.open_when_ready);
    cr_assert_geq(r.stop_ms, 400, "waited the grace period (%llu ms)",
                  (unsigned long long)r.stop_ms);
    cr_assert_lt(r.stop_ms, 5000);
    assert_cleaned_up(&r);
    result_free(&r);
}

Test(local, crash_at_start_up_reports_the_end_of_the_log) {
    use_fake_spark("crash");
    result r = {0};
    run(start_wait_stop, &r);
    cr_assert_eq(r.wait_rc, -1);
    cr_assert_eq(r.state, KL_SPARK_LOCAL_FAILED);
    cr_assert(strstr(r.error, "exited during start-up (exit status 3)"), "%s", r.error);
    cr_assert(strstr(r.error, "server.log"), "%s", r.error);
    cr_assert(has_line(r.error, "log line 30"), "%s", r.error);
    cr_assert(has_line(r.error, "log line 12"), "%s", r.error);
    cr_assert(has_line(r.error, "boom"), "%s", r.error);
    cr_assert(!has_line(r.error, "log line 11"), "only the last 20 lines: %s", r.error);
    cr_assert(strstr(r.status, "failed"), "%s", r.status);
    cr_assert(!strchr(r.status, '\n'), "the status is one line: %s", r.status);
    cr_assert(r.dir[0], "the log stays until the stop");
    cr_assert(group_gone(r.pid));
    assert_cleaned_up(&r);
    cr_assert_str_neq(r.error, "", "the error survives the stop");
    result_free(&r);
}

Test(local, a_silent_server_times_out_and_is_stopped) {
    use_fake_spark("silent");
    result r = {0};
    r.opts.start_timeout_ms = 1200;
    r.opts.stop_grace_ms = 2000;
    run(start_wait_stop, &r);
    cr_assert_eq(r.wait_rc, -1);
    cr_assert(strstr(r.error, "did not accept connections"), "%s", r.error);
    cr_assert(strstr(r.error, "within 2 s"), "%s", r.error);
    cr_assert(group_gone(r.pid), "the timed-out server was stopped at once");
    assert_cleaned_up(&r);
    result_free(&r);
}

/* ---- stop while starting, restart, exit paths ---- */

static void stop_while_starting(void *arg) {
    result *r = arg;
    kl_spark_local *l = NULL;
    cr_assert_eq(kl_spark_local_start(loop, pool, &r->opts, &l), 0);
    while (kl_spark_local_state_of(l) != KL_SPARK_LOCAL_STARTING || kl_spark_local_pid(l) == 0)
        kl_loop_sleep(loop, 20);
    kl_loop_sleep(loop, 300);
    record(r, l);
    stop_and_record(r, l);
    r->wait_rc = kl_spark_local_wait(l);
    kl_spark_local_free(l);
}

Test(local, stop_cancels_a_start_in_progress) {
    use_fake_spark("silent");
    result r = {0};
    r.opts.start_timeout_ms = 60000;
    run(stop_while_starting, &r);
    cr_assert_eq(r.state, KL_SPARK_LOCAL_STARTING);
    cr_assert_gt(r.pid, 0);
    cr_assert_eq(r.wait_rc, -1);
    cr_assert_lt(r.stop_ms, 5000);
    assert_cleaned_up(&r);
}

typedef struct {
    int rc1, rc2, port1, port2, pid1, pid2;
    bool old_gone, new_open;
    char dir1[PATH_MAX];
    bool dir1_gone;
    result r;
} restart_result;

static void restart_body(void *arg) {
    restart_result *rr = arg;
    kl_spark_local *l = NULL;
    cr_assert_eq(kl_spark_local_start(loop, pool, &rr->r.opts, &l), 0);
    rr->rc1 = kl_spark_local_wait(l);
    rr->port1 = kl_spark_local_port(l);
    rr->pid1 = kl_spark_local_pid(l);
    snprintf(rr->dir1, sizeof rr->dir1, "%s", kl_spark_local_dir(l) ? kl_spark_local_dir(l) : "");
    cr_assert_eq(kl_spark_local_restart(l), 0);
    rr->rc2 = kl_spark_local_wait(l);
    rr->old_gone = group_gone(rr->pid1);
    rr->dir1_gone = !exists(rr->dir1);
    rr->port2 = kl_spark_local_port(l);
    rr->pid2 = kl_spark_local_pid(l);
    rr->new_open = port_open(rr->port2);
    record(&rr->r, l);
    stop_and_record(&rr->r, l);
    kl_spark_local_free(l);
}

Test(local, restart_comes_back_on_the_same_port) {
    use_fake_spark(NULL);
    restart_result rr = {0};
    run(restart_body, &rr);
    cr_assert_eq(rr.rc1, 0);
    cr_assert_eq(rr.rc2, 0, "%s", rr.r.error);
    cr_assert_eq(rr.port2, rr.port1);
    cr_assert_neq(rr.pid2, rr.pid1);
    cr_assert(rr.old_gone);
    cr_assert(rr.dir1_gone, "the first server's directory is removed");
    cr_assert(rr.new_open);
    assert_cleaned_up(&rr.r);
}

static void kill_all_body(void *arg) {
    result *r = arg;
    kl_spark_local *l = NULL;
    cr_assert_eq(kl_spark_local_start(loop, pool, &r->opts, &l), 0);
    r->wait_rc = kl_spark_local_wait(l);
    record(r, l);
    kl_spark_local_kill_all();
    for (int i = 0; i < 100 && !group_gone(r->pid); i++) kl_loop_sleep(loop, 20);
    r->open_when_ready = group_gone(r->pid); /* reused: gone right after kill_all */
    stop_and_record(r, l);
    kl_spark_local_free(l);
}

Test(local, kill_all_kills_the_group_and_stop_still_cleans_up) {
    use_fake_spark(NULL);
    result r = {0};
    run(kill_all_body, &r);
    cr_assert_eq(r.wait_rc, 0);
    cr_assert(r.open_when_ready, "group gone after kl_spark_local_kill_all");
    assert_cleaned_up(&r);
}

typedef struct {
    int fd;
} exit_arg;

static void exit_without_stop(void *arg) {
    exit_arg *e = arg;
    kl_spark_local *l = NULL;
    if (kl_spark_local_start(loop, pool, NULL, &l) != 0 || kl_spark_local_wait(l) != 0) _exit(2);
    char msg[PATH_MAX + 64];
    int n = snprintf(msg, sizeof msg, "%d %d %s", kl_spark_local_pid(l), kl_spark_local_port(l),
                     kl_spark_local_dir(l));
    if (write(e->fd, msg, (size_t)n) != n) _exit(3);
    kl_pool_free(pool); /* idle: joins its threads, so only this one is left at exit */
    exit(0);            /* no stop: the atexit handler must take the server down */
}

Test(local, exit_stops_servers_that_were_not_stopped) {
    use_fake_spark(NULL);
    /* No threads across the fork: the child makes its own pool. */
    kl_pool_free(pool);
    pool = NULL;
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        close(fds[0]);
        exit_arg e = {.fd = fds[1]};
        pool = kl_pool_new(loop, 2);
        kl_loop_spawn(loop, exit_without_stop, &e, 256 * 1024);
        kl_loop_run(loop);
        _exit(4);
    }
    close(fds[1]);
    char msg[PATH_MAX + 64] = {0};
    ssize_t n = read(fds[0], msg, sizeof msg - 1);
    close(fds[0]);
    int status = 0;
    waitpid(child, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    cr_assert_gt(n, 0);
    int pid = 0, port = 0;
    char dir[PATH_MAX];
    cr_assert_eq(sscanf(msg, "%d %d %4095s", &pid, &port, dir), 3, "%s", msg);
    cr_assert(group_gone(pid), "server %d stopped at exit", pid);
    cr_assert(!port_open(port));
    cr_assert(!exists(dir), "%s removed at exit", dir);
}

/* ---- errors found before anything is spawned ---- */

static void start_and_wait(void *arg) {
    result *r = arg;
    kl_spark_local *l = NULL;
    cr_assert_eq(kl_spark_local_start(loop, pool, &r->opts, &l), 0);
    r->wait_rc = kl_spark_local_wait(l);
    record(r, l);
    stop_and_record(r, l);
    kl_spark_local_free(l);
}

static bool scratch_is_empty(void) {
    DIR *d = opendir(scratch);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "fake-spark") &&
            strcmp(e->d_name, "empty"))
            n++;
    closedir(d);
    return n == 0;
}

Test(local, spark_home_without_spark_submit_is_a_clear_error) {
    char empty[PATH_MAX];
    snprintf(empty, sizeof empty, "%s/empty", scratch);
    cr_assert_eq(mkdir(empty, 0755), 0);
    setenv("SPARK_HOME", empty, 1);
    result r = {0};
    run(start_and_wait, &r);
    cr_assert_eq(r.wait_rc, -1);
    cr_assert_eq(r.state, KL_SPARK_LOCAL_FAILED);
    cr_assert(strstr(r.error, "SPARK_HOME="), "%s", r.error);
    cr_assert(strstr(r.error, empty), "%s", r.error);
    cr_assert(strstr(r.error, "has no bin/spark-submit"), "%s", r.error);
    cr_assert(strstr(r.error, "pip install pyspark==4.0.1"), "%s", r.error);
    cr_assert_eq(r.pid, 0, "nothing was spawned");
    cr_assert_str_eq(r.dir, "", "no directory was made");
    cr_assert(scratch_is_empty());
    cr_assert_eq(r.after_stop, KL_SPARK_LOCAL_STOPPED);
}

Test(local, no_java_is_a_clear_error) {
    use_fake_spark(NULL);
    setenv("JAVA_HOME", "/nonexistent/jdk", 1);
    setenv("PATH", scratch, 1); /* no java (and nothing else) on PATH */
    result r = {0};
    run(start_and_wait, &r);
    cr_assert_eq(r.wait_rc, -1);
    cr_assert(strstr(r.error, "no Java runtime found"), "%s", r.error);
    cr_assert(strstr(r.error, "JAVA_HOME=/nonexistent/jdk has no bin/java"), "%s", r.error);
    cr_assert(strstr(r.error, "apt-get install openjdk-17-jre-headless"), "%s", r.error);
    cr_assert(!strstr(r.error, "Spark"), "Spark was found: %s", r.error);
    cr_assert_eq(r.pid, 0);
    cr_assert(scratch_is_empty());
}

Test(local, nothing_installed_names_both_missing_pieces) {
    unsetenv("JAVA_HOME");
    setenv("VIRTUAL_ENV", scratch, 1);
    setenv("PATH", scratch, 1); /* no python3, no java */
    result r = {0};
    run(start_and_wait, &r);
    cr_assert_eq(r.wait_rc, -1);
    cr_assert(strstr(r.error, "no Spark found"), "%s", r.error);
    cr_assert(strstr(r.error, "set SPARK_HOME, or pip install pyspark==4.0.1"), "%s", r.error);
    cr_assert(strstr(r.error, "\nno Java runtime found"), "%s", r.error);
    cr_assert(strstr(r.status, "no Spark found"), "the status names the first problem: %s",
              r.status);
}

Test(local, spark_without_the_connect_server_is_a_clear_error) {
    use_fake_spark(NULL);
    char jar[PATH_MAX];
    snprintf(jar, sizeof jar, "%s/fake-spark/jars/spark-connect_2.13-9.8.7.jar", scratch);
    cr_assert_eq(unlink(jar), 0);
    result r = {0};
    run(start_and_wait, &r);
    cr_assert_eq(r.wait_rc, -1);
    cr_assert(strstr(r.error, "Spark 9.8.7 at "), "%s", r.error);
    cr_assert(strstr(r.error, "does not bundle the Spark Connect server"), "%s", r.error);
}

Test(local, a_port_in_use_is_a_clear_error) {
    use_fake_spark(NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 4), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    result r = {0};
    r.opts.port = ntohs(a.sin_port);
    run(start_and_wait, &r);
    close(fd);
    cr_assert_eq(r.wait_rc, -1);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d is already in use", r.opts.port);
    cr_assert(strstr(r.error, want), "%s", r.error);
    cr_assert_eq(r.pid, 0, "nothing was spawned");
    cr_assert(r.dir_gone_after_stop);
}

/* ---- the real thing ---- */

typedef struct {
    result r;
    char python[PATH_MAX + 16]; /* the venv's interpreter */
    char querylog[PATH_MAX];
    int query_rc; /* exit status of a PySpark round trip against the ready server */
    int restart_rc, port2, pid2;
    bool old_gone_after_restart, open_after_restart;
} real_result;

/* A real Spark Connect call through the official client: the port being open must mean the
 * server answers. Blocking is fine here: the loop has nothing else to do meanwhile. */
static int pyspark_round_trip(const real_result *rr, const char *url) {
    char cmd[4 * PATH_MAX];
    snprintf(cmd, sizeof cmd,
             "env -u SPARK_REMOTE %s -c '\n"
             "import sys\n"
             "from pyspark.sql import SparkSession\n"
             "s = SparkSession.builder.remote(sys.argv[1]).getOrCreate()\n"
             "n = s.range(5).count()\n"
             "s.stop()\n"
             "sys.exit(0 if n == 5 else 7)\n"
             "' %s >%s 2>&1",
             rr->python, url, rr->querylog);
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void real_body(void *arg) {
    real_result *rr = arg;
    result *r = &rr->r;
    kl_spark_local *l = NULL;
    cr_assert_eq(kl_spark_local_start(loop, pool, &r->opts, &l), 0);
    r->wait_rc = kl_spark_local_wait(l);
    record(r, l);
    r->open_when_ready = r->port && port_open(r->port);
    if (r->pid) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/cmdline", r->pid);
        FILE *f = fopen(path, "r");
        if (f) {
            r->args = calloc(1, 1 << 16);
            size_t n = fread(r->args, 1, (1 << 16) - 1, f);
            for (size_t i = 0; i < n; i++)
                if (r->args[i] == '\0') r->args[i] = '\n';
            fclose(f);
        }
    }
    if (r->wait_rc == 0) {
        rr->query_rc = pyspark_round_trip(rr, r->url);
        /* Back on the same port, as a "server killed mid-query" test will need. */
        rr->restart_rc = kl_spark_local_restart(l);
        if (rr->restart_rc == 0) rr->restart_rc = kl_spark_local_wait(l);
        rr->old_gone_after_restart = group_gone(r->pid);
        rr->port2 = kl_spark_local_port(l);
        rr->pid2 = kl_spark_local_pid(l);
        rr->open_after_restart = port_open(rr->port2);
        r->pid = rr->pid2;
        snprintf(r->dir, sizeof r->dir, "%s", kl_spark_local_dir(l) ? kl_spark_local_dir(l) : "");
    }
    stop_and_record(r, l);
    kl_spark_local_free(l);
}

Test(local, real_server_from_the_venv_pyspark) {
    char repo[1024], venv[PATH_MAX], pyspark[PATH_MAX], cwd[PATH_MAX];
    snprintf(repo, sizeof repo, "%s", KL_TEST_DATA);
    char *tail = strstr(repo, "/tests/data");
    cr_assert_not_null(tail);
    *tail = '\0';
    snprintf(venv, sizeof venv, "%s/.venv", repo);
    snprintf(pyspark, sizeof pyspark, "%s/.venv/lib/python3.11/site-packages/pyspark", repo);
    setenv("VIRTUAL_ENV", venv, 1);
    setenv("SPARK_REMOTE", "local", 1);
    /* Run from an empty directory: nothing (metastore_db, derby.log, spark-warehouse) may land
     * in the kernel's working directory. */
    snprintf(cwd, sizeof cwd, "%s/cwd", scratch);
    cr_assert_eq(mkdir(cwd, 0755), 0);
    cr_assert_eq(chdir(cwd), 0);

    real_result rr = {0};
    result *rp = &rr.r;
    snprintf(rr.python, sizeof rr.python, "%s/bin/python", venv);
    snprintf(rr.querylog, sizeof rr.querylog, "%s/query.log", scratch);
    rp->opts.on_change = on_change;
    rp->opts.user = &rp->h;
    rp->opts.master = "local[2]";
    run(real_body, &rr);
    result r = *rp;

    cr_assert_eq(r.wait_rc, 0, "%s", r.error);
    cr_assert(strstr(r.h.starting_status, "starting local Spark Connect server (Spark 4.0.1 from "),
              "%s", r.h.starting_status);
    cr_assert(strstr(r.h.starting_status, pyspark), "%s", r.h.starting_status);
    cr_assert(r.open_when_ready, "port %d accepts connections", r.port);
    cr_assert_not_null(r.args);
    cr_assert(has_line(r.args, "org.apache.spark.deploy.SparkSubmit"),
              "the leader is the server's JVM: %s", r.args);
    cr_assert(strstr(r.args, "/java"), "%s", r.args);
    char *qlog = slurp(scratch, "query.log");
    cr_assert_eq(rr.query_rc, 0, "PySpark round trip failed:\n%s", qlog ? qlog : "");
    free(qlog);
    cr_assert_eq(rr.restart_rc, 0, "%s", r.error);
    cr_assert(rr.old_gone_after_restart);
    cr_assert_eq(rr.port2, r.port, "restarted on the same port");
    cr_assert_neq(rr.pid2, 0);
    cr_assert(rr.open_after_restart);
    assert_cleaned_up(&r);
    DIR *d = opendir(cwd);
    struct dirent *e;
    while ((e = readdir(d)))
        cr_assert(!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."), "%s left in the cwd",
                  e->d_name);
    closedir(d);
    result_free(&r);
}
