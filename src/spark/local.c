/* The embedded local Spark Connect server. A start runs in its own coroutine (find on the pool,
 * spawn on the loop, probe the port with non-blocking connects); a stop runs in another one that
 * first cancels the start, then brings the process group down. Both touch `l` only on the loop
 * thread; pool jobs get private copies of what they need. */
#include "spark/local.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/log.h"
#include "runtime/waitq.h"
#include "spark/remote.h"

#define MOD          "spark-local"
#define ELLIPSIS     "\xe2\x80\xa6"
#define CORO_STACK   (128 * 1024)
#define SERVER_CLASS "org.apache.spark.sql.connect.service.SparkConnectServer"
#define TAIL_LINES   20
#define TAIL_BYTES   8192
#define JAVA_MIN     17

#define INSTALL_SPARK "pip install pyspark==4.0.1 into the kernel's environment"
#define INSTALL_JAVA                                                                               \
    "install Java 17 or newer (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME"

extern char **environ;

struct kl_spark_local {
    kl_loop *loop;
    kl_pool *pool;

    char *master, *driver_memory, *tmp_parent;
    char **conf;
    size_t nconf;
    unsigned start_ms, grace_ms;
    void (*on_change)(kl_spark_local *l, void *user);
    void *user;

    kl_spark_local_state state;
    char *status, *error;
    char *spark_home, *version, *java, *java_home, *dir, *log_path;
    int port;
    char url[48];
    int slot; /* registry slot while a directory or process exists, else -1 */

    uv_process_t proc;
    bool spawned; /* proc is initialised and not yet closed */
    bool exited;
    int64_t exit_status;
    int term_signal;
    int pid;
    bool proc_closed;
    kl_coro *closer; /* the coroutine waiting for proc's close callback */

    kl_coro *starter, *stopper; /* borrowed; NULL when not running */
    bool cancel;                /* the starter must give up */
    bool restart_after_stop;
    uint64_t t0_ms;

    kl_waitq state_waiters;   /* kl_spark_local_wait, kl_spark_local_stop */
    kl_waitq exit_waiters;    /* the child's exit */
    kl_waitq starter_waiters; /* the starter's end */
};

/* ---- small helpers ---- */

static uint64_t now_ms(void) {
    return uv_hrtime() / 1000000u;
}

static char *xstrdup(const char *s) {
    return s ? strdup(s) : NULL;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

static char *env_dup(const char *name) {
    const char *v = getenv(name);
    return v && *v ? strdup(v) : NULL;
}

static bool is_exec_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

static void wake_all(kl_loop *loop, kl_waitq *q) {
    while (q->head) {
        kl_waiter *w = q->head;
        kl_waitq_remove(q, w);
        kl_loop_wake(loop, w->co);
    }
}

/* From a coroutine: park on q until woken or ms elapsed (other wakes end it early too). */
static void park_on(kl_spark_local *l, kl_waitq *q, uint64_t ms) {
    kl_waiter w = {.co = kl_coro_current()};
    kl_waitq_push(q, &w);
    kl_loop_sleep(l->loop, ms);
    kl_waitq_remove(q, &w);
}

static bool group_alive(int pid) {
    return pid > 0 && (kill(-pid, 0) == 0 || errno == EPERM);
}

/* Blocking (reads /proc): how many processes of group pgid are not zombies. Orphaned members
 * that already died stay zombies until init reaps them, so kill(-pgid, 0) alone would wait for
 * that. Returns -1 when /proc cannot be read. */
static int live_members(int pgid) {
    DIR *d = opendir("/proc");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%.20s/stat", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t len = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (len <= 0) continue;
        buf[len] = '\0';
        char *rp = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
        char state;
        int ppid, pgrp;
        if (rp && sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid &&
            state != 'Z' && state != 'X')
            n++;
    }
    closedir(d);
    return n;
}

/* Blocking: true while some member of the group is still running. */
static bool group_running(int pgid) {
    if (!group_alive(pgid)) return false;
    return live_members(pgid) != 0; /* -1 (no /proc) counts as running */
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Blocking: removes a directory tree without following symlinks. */
static void remove_tree(const char *dir) {
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the registry of live servers, for exit paths that cannot run the loop ---- */

#define REG_SLOTS 16

static struct {
    bool used;
    pid_t owner;     /* a forked child inherits the table but must not stop its parent's servers */
    _Atomic int pid; /* read from signal handlers */
    unsigned grace_ms;
    char dir[PATH_MAX];
} registry[REG_SLOTS];
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;

static void reg_atexit(void) {
    kl_spark_local_stop_all_now();
}

static void reg_install(void) {
    atexit(reg_atexit);
}

static int reg_claim(const char *dir, unsigned grace_ms) {
    pthread_once(&reg_once, reg_install);
    int slot = -1;
    pthread_mutex_lock(&reg_mu);
    for (int i = 0; i < REG_SLOTS; i++) {
        if (registry[i].used) continue;
        registry[i].used = true;
        registry[i].owner = getpid();
        registry[i].grace_ms = grace_ms;
        snprintf(registry[i].dir, sizeof registry[i].dir, "%s", dir);
        atomic_store(&registry[i].pid, 0);
        slot = i;
        break;
    }
    pthread_mutex_unlock(&reg_mu);
    if (slot < 0)
        KL_WARN(MOD, "more than %d local servers: %s is not stopped at exit", REG_SLOTS, dir);
    return slot;
}

static void reg_set_pid(int slot, int pid) {
    if (slot >= 0) atomic_store(&registry[slot].pid, pid);
}

static void reg_release(int slot) {
    if (slot < 0) return;
    pthread_mutex_lock(&reg_mu);
    atomic_store(&registry[slot].pid, 0);
    registry[slot].dir[0] = '\0';
    registry[slot].used = false;
    pthread_mutex_unlock(&reg_mu);
}

static void sleep_ms(unsigned ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Blocking: true once the group is gone; reaps the leader so a zombie does not count. */
static bool wait_group_gone(int pid, unsigned ms) {
    uint64_t deadline = now_ms() + ms;
    for (;;) {
        waitpid(pid, NULL, WNOHANG);
        if (!group_running(pid)) return true;
        if (now_ms() >= deadline) return false;
        sleep_ms(20);
    }
}

void kl_spark_local_stop_all_now(void) {
    pthread_mutex_lock(&reg_mu);
    for (int i = 0; i < REG_SLOTS; i++) {
        if (!registry[i].used || registry[i].owner != getpid()) continue;
        int pid = atomic_exchange(&registry[i].pid, 0);
        if (pid > 0) {
            kill(-pid, SIGTERM);
            if (!wait_group_gone(pid, registry[i].grace_ms)) {
                kill(-pid, SIGKILL);
                wait_group_gone(pid, 2000);
            }
        }
        if (registry[i].dir[0]) remove_tree(registry[i].dir);
        registry[i].dir[0] = '\0';
        registry[i].used = false;
    }
    pthread_mutex_unlock(&reg_mu);
}

void kl_spark_local_kill_all(void) {
    for (int i = 0; i < REG_SLOTS; i++) {
        int pid = atomic_load(&registry[i].pid);
        if (pid > 0 && registry[i].owner == getpid()) kill(-pid, SIGKILL);
    }
}

/* ---- state ---- */

static void set_state(kl_spark_local *l, kl_spark_local_state s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_state(kl_spark_local *l, kl_spark_local_state s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *status = NULL;
    if (vasprintf(&status, fmt, ap) < 0) status = NULL;
    va_end(ap);
    free(l->status);
    l->status = status;
    l->state = s;
    KL_INFO(MOD, "%s", status ? status : kl_spark_local_state_name(s));
    wake_all(l->loop, &l->state_waiters);
    if (l->on_change) l->on_change(l, l->user);
}

/* Takes ownership of error. */
static void fail(kl_spark_local *l, char *error) {
    free(l->error);
    l->error = error ? error : strdup("out of memory");
    size_t first = l->error ? strcspn(l->error, "\n") : 0;
    set_state(l, KL_SPARK_LOCAL_FAILED, "local Spark Connect server failed: %.*s", (int)first,
              l->error ? l->error : "");
}

/* ---- finding Spark and Java (pool) ---- */

/* The folder of the pyspark package python3 imports, or NULL. */
static char *spark_from_python(void) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) return NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    char *argv[] = {"python3", "-c", "import pyspark,os;print(os.path.dirname(pyspark.__file__))",
                    NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "python3", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return NULL;
    }
    char buf[PATH_MAX + 1];
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], buf + len, sizeof buf - 1 - len)) != 0) {
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        len += (size_t)n;
        if (len == sizeof buf - 1) break;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return NULL;
    buf[len] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf[0] ? strdup(buf) : NULL;
}

static bool has_spark_submit(const char *home) {
    char path[PATH_MAX];
    return snprintf(path, sizeof path, "%s/bin/spark-submit", home) < (int)sizeof path &&
           is_exec_file(path);
}

static char *spark_from_venv(const char *venv) {
    char *pattern = xasprintf("%s/lib/python3*/site-packages/pyspark", venv);
    if (!pattern) return NULL;
    glob_t g;
    char *found = NULL;
    if (glob(pattern, GLOB_NOSORT, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc && !found; i++)
            if (has_spark_submit(g.gl_pathv[i])) found = strdup(g.gl_pathv[i]);
        globfree(&g);
    }
    free(pattern);
    return found;
}

/* From the jar names (spark-core_2.13-4.0.1.jar), which every distribution and pyspark carry. */
static char *spark_version(const char *home, bool *has_connect) {
    *has_connect = false;
    char *jars = xasprintf("%s/jars", home);
    DIR *d = jars ? opendir(jars) : NULL;
    free(jars);
    if (!d) return NULL;
    char *version = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *name = e->d_name;
        size_t len = strlen(name);
        if (len < 5 || strcmp(name + len - 4, ".jar") != 0) continue;
        if (strncmp(name, "spark-connect_", 14) == 0) *has_connect = true;
        if (!version && strncmp(name, "spark-core_", 11) == 0) {
            const char *dash = strrchr(name, '-');
            if (dash && dash > name + 11)
                version = strndup(dash + 1, (size_t)(name + len - 4 - dash - 1));
        }
    }
    closedir(d);
    return version;
}

/* The major version from $home/release (JAVA_VERSION="17.0.15" or "1.8.0_392"), or 0. */
static int java_major(const char *home) {
    char *path = xasprintf("%s/release", home);
    FILE *f = path ? fopen(path, "r") : NULL;
    free(path);
    if (!f) return 0;
    char line[512];
    int major = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "JAVA_VERSION=\"", 14) != 0) continue;
        int a = 0, b = 0;
        if (sscanf(line + 14, "%d.%d", &a, &b) >= 1) major = a == 1 ? b : a;
        break;
    }
    fclose(f);
    return major;
}

static char *java_on_path(const char *path_env) {
    if (!path_env) return NULL;
    char *copy = strdup(path_env);
    if (!copy) return NULL;
    char *found = NULL, *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
        char *p = xasprintf("%s/java", *dir ? dir : ".");
        if (p && is_exec_file(p))
            found = p;
        else
            free(p);
    }
    free(copy);
    return found;
}

/* A path that can go into spark.driver.extraJavaOptions unquoted. */
static bool plain_path(const char *p) {
    for (; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("/._-+", *p)))
            return false;
    return true;
}

typedef struct {
    /* in: snapshots taken on the loop thread */
    char *env_spark_home, *env_venv, *env_java_home, *env_path, *tmp_parent;
    /* out */
    char *spark_home, *version, *java, *java_home, *dir, *log_path, *error;
    int log_fd;
} find_job;

static char *find_spark(find_job *j) {
    if (j->env_spark_home) {
        if (has_spark_submit(j->env_spark_home)) return strdup(j->env_spark_home);
        j->error = xasprintf("SPARK_HOME=%s has no bin/spark-submit: point SPARK_HOME at a Spark 4 "
                             "installation, or unset it and " INSTALL_SPARK,
                             j->env_spark_home);
        return NULL;
    }
    char *home = j->env_venv ? spark_from_venv(j->env_venv) : NULL;
    if (!home) home = spark_from_python();
    if (!home)
        j->error = xasprintf("no Spark found (SPARK_HOME is not set%s%s, and python3 cannot import "
                             "pyspark): set SPARK_HOME, or " INSTALL_SPARK,
                             j->env_venv ? ", no pyspark in VIRTUAL_ENV=" : "",
                             j->env_venv ? j->env_venv : "");
    return home;
}

/* Appends a message to j->error, one per line. */
static void add_error(find_job *j, char *msg) {
    if (!msg) return;
    if (!j->error) {
        j->error = msg;
        return;
    }
    char *both = xasprintf("%s\n%s", j->error, msg);
    free(msg);
    if (both) {
        free(j->error);
        j->error = both;
    }
}

static void find_java(find_job *j) {
    if (j->env_java_home) {
        char *p = xasprintf("%s/bin/java", j->env_java_home);
        if (p && is_exec_file(p)) {
            j->java = p;
            j->java_home = strdup(j->env_java_home);
        } else {
            free(p);
        }
    }
    if (!j->java) {
        char *p = java_on_path(j->env_path);
        char real[PATH_MAX];
        if (p && realpath(p, real)) {
            free(p);
            j->java = strdup(real);
            /* spark-class prefers $JAVA_HOME/bin/java, so the server needs the home of this one. */
            char *slash = strrchr(real, '/');
            if (slash && slash - real >= 4 && strncmp(slash - 4, "/bin", 4) == 0) {
                slash[-4] = '\0';
                char *q = xasprintf("%s/bin/java", real);
                if (q && is_exec_file(q)) j->java_home = strdup(real);
                free(q);
            }
            if (j->env_java_home)
                KL_WARN(MOD, "JAVA_HOME=%s has no bin/java; using %s", j->env_java_home, j->java);
        } else {
            free(p);
        }
    }
    if (!j->java) {
        if (j->env_java_home)
            add_error(j,
                      xasprintf("no Java runtime found (JAVA_HOME=%s has no bin/java, and no java "
                                "is on PATH): " INSTALL_JAVA,
                                j->env_java_home));
        else
            add_error(j, strdup("no Java runtime found (JAVA_HOME is not set, and no java is on "
                                "PATH): " INSTALL_JAVA));
        return;
    }
    int major = j->java_home ? java_major(j->java_home) : 0;
    if (major > 0 && major < JAVA_MIN)
        add_error(j, xasprintf("Java %d at %s is too old: Spark 4 needs Java %d or newer (Debian: "
                               "apt-get install openjdk-17-jre-headless; then set JAVA_HOME)",
                               major, j->java_home, JAVA_MIN));
}

static int make_dir(find_job *j) {
    const char *parent = j->tmp_parent && plain_path(j->tmp_parent) ? j->tmp_parent : "/tmp";
    char *dir = xasprintf("%s/kindling-local-XXXXXX", parent);
    if (!dir || !mkdtemp(dir)) {
        j->error =
            xasprintf("cannot create a private directory in %s: %s", parent, strerror(errno));
        free(dir);
        return -1;
    }
    j->dir = dir;
    const char *subdirs[] = {"local", "tmp"};
    for (size_t i = 0; i < sizeof subdirs / sizeof *subdirs; i++) {
        char *p = xasprintf("%s/%s", dir, subdirs[i]);
        if (p) mkdir(p, 0700);
        free(p);
    }
    j->log_path = xasprintf("%s/server.log", dir);
    j->log_fd =
        j->log_path ? open(j->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
    if (j->log_fd < 0) {
        j->error = xasprintf("cannot create %s/server.log: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

static void find_work(void *arg) {
    find_job *j = arg;
    j->spark_home = find_spark(j);
    if (j->spark_home) {
        bool has_connect = false;
        j->version = spark_version(j->spark_home, &has_connect);
        if (!has_connect)
            j->error = xasprintf("Spark %s at %s does not bundle the Spark Connect server (no "
                                 "jars/spark-connect_*.jar): Spark 4.0 or newer is needed; "
                                 "set SPARK_HOME to one, or " INSTALL_SPARK,
                                 j->version ? j->version : "(unknown version)", j->spark_home);
    }
    find_java(j);
    if (!j->error) make_dir(j);
}

/* ---- small pool jobs ---- */

typedef struct {
    char *dir;
    int pid, port;
} pidfile_job;

static void write_file(const char *dir, const char *name, long value) {
    char *p = xasprintf("%s/%s", dir, name);
    FILE *f = p ? fopen(p, "w") : NULL;
    if (f) {
        fprintf(f, "%ld\n", value);
        fclose(f);
    }
    free(p);
}

static void pidfile_work(void *arg) {
    pidfile_job *j = arg;
    write_file(j->dir, "server.pid", j->pid);
    write_file(j->dir, "kernel.pid", (long)getpid());
    write_file(j->dir, "server.port", j->port);
}

typedef struct {
    const char *path;
    char *text; /* out */
} tail_job;

/* The last TAIL_LINES lines of the log, from at most its last TAIL_BYTES. */
static void tail_work(void *arg) {
    tail_job *j = arg;
    int fd = open(j->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        j->text = xasprintf("(no log: %s)", strerror(errno));
        return;
    }
    struct stat st;
    off_t size = fstat(fd, &st) == 0 ? st.st_size : 0;
    off_t from = size > TAIL_BYTES ? size - TAIL_BYTES : 0;
    char *buf = malloc(TAIL_BYTES + 1);
    ssize_t n = buf ? pread(fd, buf, TAIL_BYTES, from) : -1;
    close(fd);
    if (n < 0) {
        free(buf);
        j->text = NULL;
        return;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
    buf[n] = '\0';
    char *start = buf;
    int lines = 0;
    for (char *p = buf + n; p > buf; p--) {
        if (p[-1] == '\n' && ++lines == TAIL_LINES) {
            start = p;
            break;
        }
    }
    if (start == buf && from > 0) {
        /* the first line was cut by the byte limit */
        char *nl = strchr(buf, '\n');
        if (nl) start = nl + 1;
    }
    j->text = strdup(n == 0 ? "(the log is empty)" : start);
    free(buf);
}

typedef struct {
    const char *dir;
} rmtree_job;

static void rmtree_work(void *arg) {
    remove_tree(((rmtree_job *)arg)->dir);
}

/* ---- the process ---- */

static void proc_on_exit(uv_process_t *p, int64_t status, int term_signal) {
    kl_spark_local *l = p->data;
    l->exited = true;
    l->exit_status = status;
    l->term_signal = term_signal;
    KL_INFO(MOD, "server %d exited (status %lld, signal %d)", l->pid, (long long)status,
            term_signal);
    wake_all(l->loop, &l->exit_waiters);
}

static void proc_on_close(uv_handle_t *h) {
    kl_spark_local *l = h->data;
    l->proc_closed = true;
    if (l->closer) kl_loop_wake(l->loop, l->closer);
}

/* From a coroutine: closes the process handle and waits for the close callback. */
static void close_proc(kl_spark_local *l) {
    l->proc_closed = false;
    l->closer = kl_coro_current();
    uv_close((uv_handle_t *)&l->proc, proc_on_close);
    while (!l->proc_closed) kl_loop_park(l->loop);
    l->closer = NULL;
    l->spawned = false;
}

static void wait_exit(kl_spark_local *l, uint64_t ms) {
    uint64_t deadline = now_ms() + ms;
    for (uint64_t now = now_ms(); !l->exited && now < deadline; now = now_ms())
        park_on(l, &l->exit_waiters, deadline - now);
}

typedef struct {
    int pgid;
    bool running; /* out */
} group_job;

static void group_work(void *arg) {
    group_job *g = arg;
    g->running = group_running(g->pgid);
}

/* From a coroutine: whether a member of the group still runs (the /proc scan runs on the pool). */
static bool group_running_async(kl_spark_local *l) {
    if (!group_alive(l->pid)) return false;
    group_job g = {.pgid = l->pid, .running = true};
    kl_pool_run(l->pool, group_work, &g);
    return g.running;
}

/* From a coroutine: polls until no member of the group runs, up to ms. */
static bool wait_group(kl_spark_local *l, uint64_t ms) {
    uint64_t deadline = now_ms() + ms;
    while (group_running_async(l)) {
        if (now_ms() >= deadline) return false;
        kl_loop_sleep(l->loop, 50);
    }
    return true;
}

/* From a coroutine: SIGTERM to the group, SIGKILL after the grace period, reap, close. */
static void terminate(kl_spark_local *l) {
    if (!l->exited) {
        kill(-l->pid, SIGTERM);
        wait_exit(l, l->grace_ms);
        if (!l->exited) {
            KL_WARN(MOD, "server %d ignored SIGTERM for %u ms: sending SIGKILL", l->pid,
                    l->grace_ms);
            kill(-l->pid, SIGKILL);
            wait_exit(l, 5000);
        }
        if (!l->exited) KL_ERROR(MOD, "server %d did not die after SIGKILL", l->pid);
    }
    /* The leader is gone; anything it started in its group goes too. */
    if (l->exited && group_running_async(l)) {
        kill(-l->pid, SIGTERM);
        if (!wait_group(l, 1000)) {
            kill(-l->pid, SIGKILL);
            wait_group(l, 2000);
        }
    }
    reg_set_pid(l->slot, 0);
    close_proc(l);
}

static int pick_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int rc = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        rc = -errno;
    close(fd);
    return rc < 0 ? rc : ntohs(a.sin_port);
}

static bool env_drop(const char *entry) {
    static const char *const names[] = {
        "SPARK_HOME=", "JAVA_HOME=", "SPARK_LOCAL_IP=",
        /* A client setting: with it spark-submit would refuse --master. */
        "SPARK_REMOTE=", "SPARK_CONNECT_MODE_ENABLED=", "SPARK_LOCAL_REMOTE="};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strncmp(entry, names[i], strlen(names[i])) == 0) return true;
    return false;
}

/* The server's environment: the kernel's, minus client settings, plus where Spark and Java are.
 * Returns a NULL-terminated array whose strings from index `*owned_from` on are owned. */
static char **build_env(const kl_spark_local *l, size_t *owned_from) {
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + 4, sizeof *env);
    if (!env) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!env_drop(environ[i])) env[k++] = environ[i];
    *owned_from = k;
    env[k++] = xasprintf("SPARK_HOME=%s", l->spark_home);
    env[k++] = strdup("SPARK_LOCAL_IP=127.0.0.1");
    if (l->java_home) env[k++] = xasprintf("JAVA_HOME=%s", l->java_home);
    env[k] = NULL;
    for (size_t i = *owned_from; i < k; i++)
        if (!env[i]) {
            for (size_t m = *owned_from; m < k; m++) free(env[m]);
            free(env);
            return NULL;
        }
    return env;
}

static int spawn_server(kl_spark_local *l, int log_fd) {
    char *submit = xasprintf("%s/bin/spark-submit", l->spark_home);
    char *settings[] = {
        strdup("spark.connect.grpc.binding.address=127.0.0.1"),
        xasprintf("spark.connect.grpc.binding.port=%d", l->port),
        strdup("spark.driver.host=127.0.0.1"),
        strdup("spark.driver.bindAddress=127.0.0.1"),
        strdup("spark.ui.enabled=false"),
        strdup("spark.sql.catalogImplementation=in-memory"),
        xasprintf("spark.sql.warehouse.dir=%s/warehouse", l->dir),
        xasprintf("spark.local.dir=%s/local", l->dir),
        xasprintf("spark.driver.extraJavaOptions=-Dderby.system.home=%s -Djava.io.tmpdir=%s/tmp",
                  l->dir, l->dir),
    };
    enum { NSET = sizeof settings / sizeof *settings };
    size_t nargs = 10 + 2 * (NSET + l->nconf) + 2;
    char **args = calloc(nargs, sizeof *args);
    size_t owned_from = 0;
    char **env = build_env(l, &owned_from);
    int rc = submit && args && env ? 0 : -ENOMEM;
    for (size_t i = 0; i < NSET; i++)
        if (!settings[i]) rc = -ENOMEM;

    if (rc == 0) {
        size_t a = 0;
        args[a++] = submit;
        args[a++] = "--class";
        args[a++] = SERVER_CLASS;
        args[a++] = "--name";
        args[a++] = "kindling-local-spark-connect";
        args[a++] = "--master";
        args[a++] = l->master;
        args[a++] = "--driver-memory";
        args[a++] = l->driver_memory;
        for (size_t i = 0; i < NSET; i++) {
            args[a++] = "--conf";
            args[a++] = settings[i];
        }
        for (size_t i = 0; i < l->nconf; i++) {
            args[a++] = "--conf";
            args[a++] = l->conf[i];
        }
        args[a++] = "spark-internal"; /* spark-submit's marker for a class on its own classpath */
        args[a] = NULL;

        uv_stdio_container_t stdio[3] = {
            {.flags = UV_IGNORE},
            {.flags = UV_INHERIT_FD, .data.fd = log_fd},
            {.flags = UV_INHERIT_FD, .data.fd = log_fd},
        };
        uv_process_options_t o = {
            .exit_cb = proc_on_exit,
            .file = submit,
            .args = args,
            .env = env,
            .cwd = l->dir, /* whatever Spark drops in its working directory lands here */
            .flags = UV_PROCESS_DETACHED, /* setsid: its pid is the group to signal */
            .stdio_count = 3,
            .stdio = stdio,
        };
        l->exited = false;
        l->proc.data = l;
        rc = uv_spawn(kl_loop_uv(l->loop), &l->proc, &o);
        l->spawned = true; /* initialised even on failure, so it must be closed */
        if (rc == 0) {
            l->pid = l->proc.pid;
            reg_set_pid(l->slot, l->pid);
            /* A running server alone must not keep kl_loop_run from returning. */
            uv_unref((uv_handle_t *)&l->proc);
        }
    }

    free(submit);
    for (size_t i = 0; i < NSET; i++) free(settings[i]);
    free(args);
    if (env) {
        for (size_t i = owned_from; env[i]; i++) free(env[i]);
        free(env);
    }
    return rc;
}

/* ---- probing ---- */

typedef struct {
    uv_tcp_t tcp;
    uv_connect_t req;
    kl_spark_local *l;
    kl_coro *co;
    int status;
    bool done, closed;
} probe_t;

static void probe_on_connect(uv_connect_t *req, int status) {
    probe_t *p = req->data;
    p->status = status;
    p->done = true;
    kl_loop_wake(p->l->loop, p->co);
}

static void probe_on_close(uv_handle_t *h) {
    probe_t *p = h->data;
    p->closed = true;
    kl_loop_wake(p->l->loop, p->co);
}

/* From a coroutine: one non-blocking connect to the server's port; true if it was accepted. */
static bool probe(kl_spark_local *l) {
    probe_t p = {.l = l, .co = kl_coro_current(), .status = UV_ECANCELED};
    if (uv_tcp_init(kl_loop_uv(l->loop), &p.tcp) < 0) return false;
    p.tcp.data = &p;
    p.req.data = &p;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", l->port, &a);
    int rc = uv_tcp_connect(&p.req, &p.tcp, (const struct sockaddr *)&a, probe_on_connect);
    if (rc < 0) {
        p.done = true;
        p.status = rc;
    }
    uint64_t deadline = now_ms() + 2000;
    for (uint64_t now = now_ms(); !p.done && !l->cancel && now < deadline; now = now_ms())
        kl_loop_sleep(l->loop, deadline - now);
    /* Closing cancels a pending connect; its callback runs before the close callback. */
    uv_close((uv_handle_t *)&p.tcp, probe_on_close);
    while (!p.closed || !p.done) kl_loop_park(l->loop);
    return p.status == 0;
}

/* ---- the starter ---- */

static char *read_tail(kl_spark_local *l) {
    tail_job t = {.path = l->log_path};
    if (!l->log_path || kl_pool_run(l->pool, tail_work, &t) < 0) return strdup("(no log)");
    return t.text ? t.text : strdup("(the log could not be read)");
}

static void find_job_free(find_job *j) {
    free(j->env_spark_home);
    free(j->env_venv);
    free(j->env_java_home);
    free(j->env_path);
    free(j->tmp_parent);
    free(j->spark_home);
    free(j->version);
    free(j->java);
    free(j->java_home);
    free(j->dir);
    free(j->log_path);
    free(j->error);
}

static void starter_main(void *arg) {
    kl_spark_local *l = arg;
    l->t0_ms = now_ms();

    find_job j = {.log_fd = -1};
    j.env_spark_home = env_dup("SPARK_HOME");
    j.env_venv = env_dup("VIRTUAL_ENV");
    j.env_java_home = env_dup("JAVA_HOME");
    j.env_path = env_dup("PATH");
    j.tmp_parent = l->tmp_parent ? strdup(l->tmp_parent) : env_dup("TMPDIR");
    int rc = kl_pool_run(l->pool, find_work, &j);
    if (rc < 0 && !j.error) j.error = xasprintf("cannot look for Spark: %s", strerror(-rc));
    /* The directory is ours (and the stopper's to remove) as soon as it exists. */
    if (j.dir) {
        l->dir = j.dir;
        l->log_path = j.log_path;
        j.dir = j.log_path = NULL;
        l->slot = reg_claim(l->dir, l->grace_ms);
    }
    int log_fd = j.log_fd;
    if (l->cancel) goto out;
    if (j.error) {
        fail(l, j.error);
        j.error = NULL;
        goto out;
    }
    free(l->spark_home);
    free(l->version);
    free(l->java);
    free(l->java_home);
    l->spark_home = j.spark_home;
    l->version = j.version ? j.version : strdup("(unknown version)");
    l->java = j.java;
    l->java_home = j.java_home;
    j.spark_home = j.version = j.java = j.java_home = NULL;
    set_state(l, KL_SPARK_LOCAL_STARTING,
              "starting local Spark Connect server (Spark %s from %s) " ELLIPSIS, l->version,
              l->spark_home);

    if (l->port != 0 && probe(l)) {
        /* A given port (or a restart's) must be free, or the probes would find a stranger. */
        fail(l, xasprintf("cannot start the local Spark Connect server: 127.0.0.1:%d is already "
                          "in use by another process",
                          l->port));
        goto out;
    }
    if (l->cancel) goto out;
    if (l->port == 0) {
        int port = pick_port();
        if (port < 0) {
            fail(l, xasprintf("cannot find a free port on 127.0.0.1: %s", strerror(-port)));
            goto out;
        }
        l->port = port;
    }
    snprintf(l->url, sizeof l->url, "sc://127.0.0.1:%d", l->port);

    rc = spawn_server(l, log_fd);
    close(log_fd); /* the child has its own copies */
    log_fd = -1;
    if (rc < 0) {
        if (l->spawned) close_proc(l);
        fail(l, xasprintf("cannot run %s/bin/spark-submit: %s", l->spark_home, uv_strerror(rc)));
        goto out;
    }
    pidfile_job pj = {.dir = l->dir, .pid = l->pid, .port = l->port};
    kl_pool_run(l->pool, pidfile_work, &pj);

    uint64_t deadline = l->t0_ms + l->start_ms;
    for (;;) {
        if (l->cancel) goto out;
        if (l->exited) {
            char *tail = read_tail(l);
            char how[64];
            if (l->term_signal)
                snprintf(how, sizeof how, "killed by signal %d", l->term_signal);
            else
                snprintf(how, sizeof how, "exit status %lld", (long long)l->exit_status);
            terminate(l);
            fail(l, xasprintf("the local Spark Connect server exited during start-up (%s). "
                              "Last lines of %s:\n%s",
                              how, l->log_path, tail ? tail : ""));
            free(tail);
            goto out;
        }
        if (probe(l)) break;
        if (l->cancel) goto out;
        uint64_t now = now_ms();
        if (now >= deadline) {
            char *tail = read_tail(l);
            terminate(l);
            fail(l, xasprintf("the local Spark Connect server did not accept connections on "
                              "127.0.0.1:%d within %u s, and was stopped (raise the start "
                              "timeout on a slow machine). Last lines of %s:\n%s",
                              l->port, (l->start_ms + 999) / 1000, l->log_path, tail ? tail : ""));
            free(tail);
            goto out;
        }
        uint64_t pause =
            deadline - now < KL_SPARK_LOCAL_PROBE_MS ? deadline - now : KL_SPARK_LOCAL_PROBE_MS;
        if (!l->exited) park_on(l, &l->exit_waiters, pause);
    }
    uint64_t took = now_ms() - l->t0_ms;
    set_state(l, KL_SPARK_LOCAL_READY,
              "local Spark Connect server ready at %s (Spark %s, started in %llu.%llu s)", l->url,
              l->version, (unsigned long long)(took / 1000),
              (unsigned long long)(took % 1000 / 100));

out:
    if (log_fd >= 0) close(log_fd);
    find_job_free(&j);
    l->starter = NULL;
    wake_all(l->loop, &l->starter_waiters);
}

static int launch_starter(kl_spark_local *l) {
    free(l->error);
    l->error = NULL;
    l->cancel = false;
    set_state(l, KL_SPARK_LOCAL_FINDING,
              "looking for Spark and Java for the local Spark Connect server " ELLIPSIS);
    l->starter = kl_loop_spawn(l->loop, starter_main, l, CORO_STACK);
    if (!l->starter) {
        fail(l, strdup("cannot start the local Spark Connect server: out of memory"));
        return -ENOMEM;
    }
    return 0;
}

/* ---- the stopper ---- */

static void stopper_main(void *arg) {
    kl_spark_local *l = arg;
    kl_waiter w = {.co = kl_coro_current()};
    while (l->starter) {
        kl_waitq_push(&l->starter_waiters, &w);
        kl_loop_park(l->loop);
        kl_waitq_remove(&l->starter_waiters, &w);
    }
    if (l->spawned) terminate(l);
    if (l->dir) {
        rmtree_job rj = {.dir = l->dir};
        kl_pool_run(l->pool, rmtree_work, &rj);
        free(l->dir);
        free(l->log_path);
        l->dir = l->log_path = NULL;
    }
    reg_release(l->slot);
    l->slot = -1;
    l->pid = 0;
    l->stopper = NULL;
    if (l->restart_after_stop) {
        l->restart_after_stop = false;
        launch_starter(l);
    } else {
        set_state(l, KL_SPARK_LOCAL_STOPPED, "local Spark Connect server stopped");
    }
}

static void begin_stop(kl_spark_local *l) {
    if (l->stopper || l->state == KL_SPARK_LOCAL_STOPPED) return;
    l->cancel = true;
    if (l->starter) kl_loop_wake(l->loop, l->starter);
    set_state(l, KL_SPARK_LOCAL_STOPPING, "stopping local Spark Connect server " ELLIPSIS);
    l->stopper = kl_loop_spawn(l->loop, stopper_main, l, CORO_STACK);
    if (!l->stopper) {
        /* No coroutine for an orderly stop: at least take the server down. */
        KL_ERROR(MOD, "out of memory stopping server %d: sending SIGKILL", l->pid);
        if (l->pid > 0) kill(-l->pid, SIGKILL);
    }
}

/* ---- public ---- */

int kl_spark_local_start(kl_loop *loop, kl_pool *pool, const kl_spark_local_opts *opts,
                         kl_spark_local **out) {
    static const kl_spark_local_opts none = {0};
    if (!opts) opts = &none;
    *out = NULL;
    kl_spark_local *l = calloc(1, sizeof *l);
    if (!l) return -ENOMEM;
    l->loop = loop;
    l->pool = pool;
    l->slot = -1;
    l->state = KL_SPARK_LOCAL_STOPPED;
    l->master = strdup(opts->master && *opts->master ? opts->master : KL_SC_DEFAULT_LOCAL_MASTER);
    l->driver_memory =
        strdup(opts->driver_memory && *opts->driver_memory ? opts->driver_memory
                                                           : KL_SPARK_LOCAL_DEFAULT_DRIVER_MEMORY);
    l->tmp_parent = xstrdup(opts->tmp_dir);
    l->port = opts->port > 0 && opts->port < 65536 ? opts->port : 0;
    l->start_ms = opts->start_timeout_ms ? opts->start_timeout_ms : KL_SPARK_LOCAL_DEFAULT_START_MS;
    l->grace_ms = opts->stop_grace_ms ? opts->stop_grace_ms : KL_SPARK_LOCAL_DEFAULT_GRACE_MS;
    l->on_change = opts->on_change;
    l->user = opts->user;
    bool oom = !l->master || !l->driver_memory || (opts->tmp_dir && !l->tmp_parent);
    if (opts->conf) {
        while (opts->conf[l->nconf]) l->nconf++;
        l->conf = calloc(l->nconf + 1, sizeof *l->conf);
        if (!l->conf) oom = true;
        for (size_t i = 0; l->conf && i < l->nconf; i++)
            if (!(l->conf[i] = strdup(opts->conf[i]))) oom = true;
    }
    if (oom) {
        kl_spark_local_free(l);
        return -ENOMEM;
    }
    int rc = launch_starter(l);
    if (rc < 0) {
        kl_spark_local_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

static bool starting(const kl_spark_local *l) {
    return l->state == KL_SPARK_LOCAL_FINDING || l->state == KL_SPARK_LOCAL_STARTING ||
           (l->state == KL_SPARK_LOCAL_STOPPING && l->restart_after_stop);
}

int kl_spark_local_wait(kl_spark_local *l) {
    kl_waiter w = {.co = kl_coro_current()};
    if (!w.co) return -1;
    while (starting(l)) {
        kl_waitq_push(&l->state_waiters, &w);
        kl_loop_park(l->loop);
        kl_waitq_remove(&l->state_waiters, &w);
    }
    return l->state == KL_SPARK_LOCAL_READY ? 0 : -1;
}

void kl_spark_local_request_stop(kl_spark_local *l) {
    l->restart_after_stop = false;
    begin_stop(l);
}

void kl_spark_local_stop(kl_spark_local *l) {
    kl_spark_local_request_stop(l);
    kl_waiter w = {.co = kl_coro_current()};
    while (l->stopper) {
        kl_waitq_push(&l->state_waiters, &w);
        kl_loop_park(l->loop);
        kl_waitq_remove(&l->state_waiters, &w);
    }
}

int kl_spark_local_restart(kl_spark_local *l) {
    if (l->state == KL_SPARK_LOCAL_STOPPED && !l->stopper) return launch_starter(l);
    l->restart_after_stop = true;
    begin_stop(l);
    return l->stopper ? 0 : -ENOMEM;
}

static void free_on_close(uv_handle_t *h) {
    free(h->data);
}

void kl_spark_local_free(kl_spark_local *l) {
    if (!l) return;
    if (l->starter || l->stopper) {
        /* Those coroutines still use l: leaking it beats a use after free. */
        KL_ERROR(MOD, "kl_spark_local_free during a start or stop: not freed");
        return;
    }
    if (l->dir) KL_WARN(MOD, "freeing a local server that was not stopped; %s is left", l->dir);
    reg_release(l->slot);
    free(l->master);
    free(l->driver_memory);
    free(l->tmp_parent);
    for (size_t i = 0; l->conf && i < l->nconf; i++) free(l->conf[i]);
    free(l->conf);
    free(l->status);
    free(l->error);
    free(l->spark_home);
    free(l->version);
    free(l->java);
    free(l->java_home);
    free(l->dir);
    free(l->log_path);
    if (l->spawned) {
        if (!l->exited && l->pid > 0) kill(-l->pid, SIGKILL);
        l->proc.data = l;
        uv_close((uv_handle_t *)&l->proc, free_on_close);
        return;
    }
    free(l);
}

kl_spark_local_state kl_spark_local_state_of(const kl_spark_local *l) {
    return l->state;
}

const char *kl_spark_local_state_name(kl_spark_local_state s) {
    switch (s) {
    case KL_SPARK_LOCAL_FINDING:
        return "finding";
    case KL_SPARK_LOCAL_STARTING:
        return "starting";
    case KL_SPARK_LOCAL_READY:
        return "ready";
    case KL_SPARK_LOCAL_FAILED:
        return "failed";
    case KL_SPARK_LOCAL_STOPPING:
        return "stopping";
    case KL_SPARK_LOCAL_STOPPED:
        return "stopped";
    }
    return "unknown";
}

const char *kl_spark_local_status(const kl_spark_local *l) {
    return l->status ? l->status : kl_spark_local_state_name(l->state);
}

const char *kl_spark_local_error(const kl_spark_local *l) {
    if (l->error) return l->error;
    if (l->state == KL_SPARK_LOCAL_STOPPING || l->state == KL_SPARK_LOCAL_STOPPED)
        return "the local Spark Connect server was stopped";
    return NULL;
}

const char *kl_spark_local_url(const kl_spark_local *l) {
    return l->url[0] ? l->url : NULL;
}

int kl_spark_local_port(const kl_spark_local *l) {
    return l->port;
}

int kl_spark_local_pid(const kl_spark_local *l) {
    return l->pid;
}

const char *kl_spark_local_dir(const kl_spark_local *l) {
    return l->dir;
}

const char *kl_spark_local_spark_home(const kl_spark_local *l) {
    return l->spark_home;
}

const char *kl_spark_local_spark_version(const kl_spark_local *l) {
    return l->version;
}
