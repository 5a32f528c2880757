/* Each line is built in memory and written with one write() under a mutex, so lines from different
 * threads never interleave even when stderr is a pipe shared with other processes. */
#include "runtime/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static atomic_int g_level = KL_LOG_WARN;
static atomic_bool g_json = false;
/* Set by the explicit setters so the environment cannot undo them, whatever the call order. */
static atomic_bool g_level_explicit = false;
static atomic_bool g_json_explicit = false;
static pthread_mutex_t g_write_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *const kl_log_names[] = {"debug", "info", "warn", "error", "off"};
static const char *const kl_log_plain_names[] = {"DEBUG", "INFO ", "WARN ", "ERROR", "OFF  "};

int kl_log_parse_level(const char *name) {
    if (!name) return -1;
    for (int i = KL_LOG_DEBUG; i <= KL_LOG_OFF; i++)
        if (strcasecmp(name, kl_log_names[i]) == 0) return i;
    if (strcasecmp(name, "warning") == 0) return KL_LOG_WARN;
    return -1;
}

void kl_log_init_from_env(void) {
    const char *lvl = getenv("KINDLING_LOG_LEVEL");
    if (lvl && *lvl && !atomic_load(&g_level_explicit)) {
        int l = kl_log_parse_level(lvl);
        if (l >= 0) atomic_store(&g_level, l);
    }
    const char *fmt = getenv("KINDLING_LOG_FORMAT");
    if (fmt && *fmt && !atomic_load(&g_json_explicit)) {
        if (strcasecmp(fmt, "json") == 0)
            atomic_store(&g_json, true);
        else if (strcasecmp(fmt, "plain") == 0)
            atomic_store(&g_json, false);
    }
}

void kl_log_set_level(kl_log_level level) {
    atomic_store(&g_level, (int)level);
    atomic_store(&g_level_explicit, true);
}

void kl_log_set_json(bool json) {
    atomic_store(&g_json, json);
    atomic_store(&g_json_explicit, true);
}

bool kl_log_enabled(kl_log_level level) {
    return level < KL_LOG_OFF && (int)level >= atomic_load(&g_level);
}

/* A growable line buffer; on allocation failure it keeps what fits and marks itself truncated. */
typedef struct {
    char *p;
    size_t len, cap;
    char stack[1024];
} kl_logbuf;

static void kl_logbuf_put(kl_logbuf *b, const char *s, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap * 2;
        while (cap < b->len + n) cap *= 2;
        char *p = b->p == b->stack ? malloc(cap) : realloc(b->p, cap);
        if (!p) {
            n = b->cap - b->len;
        } else {
            if (b->p == b->stack) memcpy(p, b->stack, b->len);
            b->p = p;
            b->cap = cap;
        }
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void kl_logbuf_puts(kl_logbuf *b, const char *s) {
    kl_logbuf_put(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if it is not valid. */
static size_t kl_utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0) {
        len = 2;
        min = 0x80;
        c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        min = 0x800;
        c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        min = 0x10000;
        c &= 0x07;
    } else {
        return 0;
    }
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
    return len;
}

/* Appends s as a JSON string literal; invalid UTF-8 becomes U+FFFD so the line stays valid JSON. */
static void kl_logbuf_json_str(kl_logbuf *b, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    kl_logbuf_put(b, "\"", 1);
    while (n > 0) {
        unsigned char c = *p;
        char esc[8];
        const char *rep = NULL;
        switch (c) {
        case '"':
            rep = "\\\"";
            break;
        case '\\':
            rep = "\\\\";
            break;
        case '\n':
            rep = "\\n";
            break;
        case '\r':
            rep = "\\r";
            break;
        case '\t':
            rep = "\\t";
            break;
        case '\b':
            rep = "\\b";
            break;
        case '\f':
            rep = "\\f";
            break;
        default:
            break;
        }
        if (rep) {
            kl_logbuf_puts(b, rep);
            p++, n--;
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            kl_logbuf_puts(b, esc);
            p++, n--;
        } else {
            size_t l = kl_utf8_len(p, n);
            if (l == 0) {
                kl_logbuf_puts(b, "\\ufffd");
                p++, n--;
            } else {
                kl_logbuf_put(b, (const char *)p, l);
                p += l, n -= l;
            }
        }
    }
    kl_logbuf_put(b, "\"", 1);
}

static void kl_log_timestamp(char out[32]) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 24, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
}

static void kl_log_emit(const char *s, size_t n) {
    pthread_mutex_lock(&g_write_mu);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            break; /* nowhere left to report it */
        }
        s += w;
        n -= (size_t)w;
    }
    pthread_mutex_unlock(&g_write_mu);
}

void kl_log_write(kl_log_level level, const char *module, const char *fmt, ...) {
    if (!kl_log_enabled(level)) return;
    int saved_errno = errno; /* callers often log right before returning -errno */
    if (!module) module = "-";

    char msg_stack[512];
    const char *msg = msg_stack;
    char *big = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg_stack, sizeof(msg_stack), fmt, ap);
    va_end(ap);
    if (n < 0) {
        msg = "(unformattable log message)";
    } else if ((size_t)n >= sizeof(msg_stack)) {
        big = malloc((size_t)n + 1);
        if (big) {
            va_start(ap, fmt);
            vsnprintf(big, (size_t)n + 1, fmt, ap);
            va_end(ap);
            msg = big;
        }
    }

    char ts[32];
    kl_log_timestamp(ts);
    kl_logbuf b;
    b.p = b.stack;
    b.len = 0;
    b.cap = sizeof(b.stack);
    if (atomic_load(&g_json)) {
        kl_logbuf_puts(&b, "{\"ts\":\"");
        kl_logbuf_puts(&b, ts);
        kl_logbuf_puts(&b, "\",\"level\":\"");
        kl_logbuf_puts(&b, kl_log_names[level]);
        kl_logbuf_puts(&b, "\",\"module\":");
        kl_logbuf_json_str(&b, module);
        kl_logbuf_puts(&b, ",\"msg\":");
        kl_logbuf_json_str(&b, msg);
        kl_logbuf_puts(&b, "}\n");
    } else {
        kl_logbuf_puts(&b, ts);
        kl_logbuf_puts(&b, " ");
        kl_logbuf_puts(&b, kl_log_plain_names[level]);
        kl_logbuf_puts(&b, " [");
        kl_logbuf_puts(&b, module);
        kl_logbuf_puts(&b, "] ");
        kl_logbuf_puts(&b, msg);
        kl_logbuf_puts(&b, "\n");
    }
    kl_log_emit(b.p, b.len);
    if (b.p != b.stack) free(b.p);
    free(big);
    errno = saved_errno;
}
