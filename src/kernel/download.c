/* Artifact sources: http(s) with libcurl into a cache keyed by URL, file:// URLs and paths. */
#include "kernel/download.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/curlapi.h"
#include "kl_version.h"

#define MIB (1024.0 * 1024.0)

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void kl_download_clear(kl_download *d) {
    free(d->path);
    free(d->file_name);
    memset(d, 0, sizeof *d);
}

/* ---- names ---------------------------------------------------------------------------------- */

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..len); NULL when a %XX is malformed or decodes to NUL. */
static char *pct_decode(const char *s, size_t len) {
    char *out = malloc(len + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        if (i + 2 >= len) {
            free(out);
            return NULL;
        }
        int a = hexval((unsigned char)s[i + 1]), b = hexval((unsigned char)s[i + 2]);
        if (a < 0 || b < 0 || (a == 0 && b == 0)) {
            free(out);
            return NULL;
        }
        *o++ = (char)(a * 16 + b);
        i += 2;
    }
    *o = 0;
    return out;
}

/* The last segment of a path, made safe as a file name on both ends: only [A-Za-z0-9._+-],
 * others become '_', no leading '.'; "download" when nothing is left. */
static char *file_name_of(const char *path) {
    size_t n = strlen(path);
    while (n && path[n - 1] == '/') n--;
    size_t start = n;
    while (start && path[start - 1] != '/') start--;
    size_t len = n - start;
    if (len == 0) return strdup("download");
    char *out = malloc(len + 1);
    if (!out) return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[start + i];
        out[i] = (isalnum(c) || c == '.' || c == '_' || c == '+' || c == '-') ? (char)c : '_';
    }
    out[len] = 0;
    if (out[0] == '.') out[0] = '_';
    return out;
}

static bool has_prefix_ci(const char *s, const char *prefix) {
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- local files ---------------------------------------------------------------------------- */

static uint64_t max_of(const kl_download_opts *o) {
    return o && o->max_bytes ? o->max_bytes : KL_DOWNLOAD_MAX_BYTES;
}

/* src names the source as the user wrote it, for messages. */
static int use_local(const char *src, const char *path, const kl_download_opts *opt,
                     kl_download *out, char *err, size_t errlen) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT)
            set_err(err, errlen, "no such file: %s", src);
        else
            set_err(err, errlen, "cannot open %s: %s", src, strerror(errno));
        return -1;
    }
    if (S_ISDIR(sb.st_mode)) {
        set_err(err, errlen, "%s is a directory, not a file", src);
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        set_err(err, errlen, "%s is not a regular file", src);
        return -1;
    }
    if ((uint64_t)sb.st_size > max_of(opt)) {
        set_err(err, errlen, "%s is %.1f MiB, over the limit of %.0f MiB", src,
                (double)sb.st_size / MIB, (double)max_of(opt) / MIB);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, "cannot read %s: %s", src, strerror(errno));
        return -1;
    }
    close(fd);
    out->path = strdup(path);
    out->file_name = file_name_of(path);
    out->size = (uint64_t)sb.st_size;
    if (!out->path || !out->file_name) {
        kl_download_clear(out);
        set_err(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* file:///abs/path, file://localhost/abs/path or file:/abs/path. */
static int use_file_url(const char *src, const kl_download_opts *opt, kl_download *out, char *err,
                        size_t errlen) {
    const char *p = src + 5; /* after "file:" */
    if (strncmp(p, "//", 2) == 0) {
        p += 2;
        if (has_prefix_ci(p, "localhost/"))
            p += 9;
        else if (*p != '/') {
            size_t hl = strcspn(p, "/");
            set_err(err, errlen,
                    "%s: file URLs on another host (%.*s) are not supported; use a local path "
                    "or an http(s) URL",
                    src, (int)hl, p);
            return -1;
        }
    }
    if (*p != '/') {
        set_err(err, errlen, "%s: a file URL needs an absolute path (file:///path/to/file)", src);
        return -1;
    }
    char *path = pct_decode(p, strcspn(p, "?#"));
    if (!path) {
        set_err(err, errlen, "%s is not a valid file URL (bad %% escape)", src);
        return -1;
    }
    int rc = use_local(src, path, opt, out, err, errlen);
    free(path);
    return rc;
}

/* ---- cache ---------------------------------------------------------------------------------- */

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static char *cache_dir;

static int mkdirs(const char *path) {
    char *p = strdup(path);
    if (!p) return -1;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            free(p);
            return -1;
        }
        *s = '/';
    }
    int rc = mkdir(p, 0700) != 0 && errno != EEXIST ? -1 : 0;
    free(p);
    if (rc == 0) {
        struct stat sb;
        if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) rc = -1;
    }
    return rc;
}

const char *kl_download_cache_dir(char *err, size_t errlen) {
    pthread_mutex_lock(&cache_lock);
    if (!cache_dir) {
        const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
        char *dir = NULL;
        if (xdg && *xdg == '/') {
            if (asprintf(&dir, "%s/kindling/artifacts", xdg) < 0) dir = NULL;
        } else if (home && *home == '/') {
            if (asprintf(&dir, "%s/.cache/kindling/artifacts", home) < 0) dir = NULL;
        }
        if (dir && mkdirs(dir) != 0) {
            free(dir);
            dir = NULL;
        }
        if (!dir) {
            const char *tmp = getenv("TMPDIR");
            if (asprintf(&dir, "%s/kindling-artifacts-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0)
                dir = NULL;
            if (dir && !mkdtemp(dir)) {
                set_err(err, errlen, "cannot create a download cache directory (%s): %s", dir,
                        strerror(errno));
                free(dir);
                dir = NULL;
            }
        }
        cache_dir = dir;
    }
    const char *d = cache_dir;
    pthread_mutex_unlock(&cache_lock);
    return d;
}

static void sha256_hex(const void *data, size_t len, char hex[65]) {
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* ---- http(s) -------------------------------------------------------------------------------- */

typedef struct transfer {
    FILE *f;
    uint64_t got, max;
    bool too_big, write_failed;
    const atomic_bool *cancel;
    char status[160]; /* the last response's status line, for errors */
} transfer;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg) {
    transfer *t = arg;
    size_t n = size * nmemb;
    if (t->cancel && atomic_load(t->cancel)) return 0;
    if (t->got + n > t->max) {
        t->too_big = true;
        return 0;
    }
    if (fwrite(ptr, 1, n, t->f) != n) {
        t->write_failed = true;
        return 0;
    }
    t->got += n;
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *arg) {
    transfer *t = arg;
    size_t n = size * nmemb;
    if (n > 5 && strncmp(ptr, "HTTP/", 5) == 0) {
        size_t len = n;
        while (len && (ptr[len - 1] == '\r' || ptr[len - 1] == '\n')) len--;
        if (len >= sizeof t->status) len = sizeof t->status - 1;
        memcpy(t->status, ptr, len);
        t->status[len] = 0;
    }
    return n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    transfer *t = arg;
    return t->cancel && atomic_load(t->cancel) ? 1 : 0;
}

/* The reason phrase of a status line "HTTP/1.1 404 Not Found" ("Not Found"), or "". */
static const char *reason_of(const char *status) {
    const char *p = strchr(status, ' ');
    if (!p) return "";
    p = strchr(p + 1, ' ');
    return p ? p + 1 : "";
}

static int curl_fetch(const char *url, const char *dest, const kl_download_opts *opt, char *err,
                      size_t errlen) {
    if (kl_curlapi_load(err, errlen) != 0) return -1;
    FILE *f = fopen(dest, "wxe");
    if (!f) {
        set_err(err, errlen, "cannot write %s: %s", dest, strerror(errno));
        return -1;
    }
    transfer t = {.f = f, .max = max_of(opt), .cancel = opt ? opt->cancel : NULL};
    int redirects = opt && opt->max_redirects ? opt->max_redirects : KL_DOWNLOAD_MAX_REDIRECTS;
    long connect_ms =
        opt && opt->connect_timeout_ms ? opt->connect_timeout_ms : KL_DOWNLOAD_CONNECT_TIMEOUT_MS;
    long total_ms = opt && opt->timeout_ms ? opt->timeout_ms : KL_DOWNLOAD_TIMEOUT_MS;
    char cerr[CURL_ERROR_SIZE] = "";
    CURL *h = KL_CURL(curl_easy_init)();
    if (!h) {
        fclose(f);
        set_err(err, errlen, "cannot start a download (libcurl)");
        return -1;
    }
    KL_CURL(curl_easy_setopt)(h, CURLOPT_URL, url);
    KL_CURL(curl_easy_setopt)(h, CURLOPT_PROTOCOLS_STR, "http,https");
    KL_CURL(curl_easy_setopt)(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    KL_CURL(curl_easy_setopt)(h, CURLOPT_FOLLOWLOCATION, redirects > 0 ? 1L : 0L);
    KL_CURL(curl_easy_setopt)(h, CURLOPT_MAXREDIRS, (long)(redirects > 0 ? redirects : 0));
    KL_CURL(curl_easy_setopt)(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    KL_CURL(curl_easy_setopt)(h, CURLOPT_TIMEOUT_MS, total_ms);
    KL_CURL(curl_easy_setopt)(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)t.max);
    KL_CURL(curl_easy_setopt)(h, CURLOPT_FAILONERROR, 1L);
    KL_CURL(curl_easy_setopt)
    (h, CURLOPT_NOSIGNAL, 1L); /* signals are not thread-safe; we are on a pool */
    KL_CURL(curl_easy_setopt)(h, CURLOPT_USERAGENT, "kindling/" KL_VERSION);
    KL_CURL(curl_easy_setopt)(h, CURLOPT_ERRORBUFFER, cerr);
    KL_CURL(curl_easy_setopt)(h, CURLOPT_WRITEFUNCTION, on_data);
    KL_CURL(curl_easy_setopt)(h, CURLOPT_WRITEDATA, &t);
    KL_CURL(curl_easy_setopt)(h, CURLOPT_HEADERFUNCTION, on_header);
    KL_CURL(curl_easy_setopt)(h, CURLOPT_HEADERDATA, &t);
    KL_CURL(curl_easy_setopt)(h, CURLOPT_NOPROGRESS, 0L);
    KL_CURL(curl_easy_setopt)(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    KL_CURL(curl_easy_setopt)(h, CURLOPT_XFERINFODATA, &t);
    CURLcode rc = KL_CURL(curl_easy_perform)(h);
    long code = 0;
    KL_CURL(curl_easy_getinfo)(h, CURLINFO_RESPONSE_CODE, &code);
    KL_CURL(curl_easy_cleanup)(h);
    if (fclose(f) != 0 && rc == CURLE_OK) {
        set_err(err, errlen, "cannot write %s: %s", dest, strerror(errno));
        return -1;
    }
    if (rc == CURLE_OK) return 0;
    const char *why = *cerr ? cerr : KL_CURL(curl_easy_strerror)(rc);
    if (t.cancel && atomic_load(t.cancel)) {
        set_err(err, errlen, "the download of %s was interrupted", url);
    } else if (t.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        set_err(err, errlen, "%s is larger than the limit of %.0f MiB", url, (double)t.max / MIB);
    } else if (t.write_failed) {
        set_err(err, errlen, "cannot write the download of %s to %s: %s", url, dest,
                strerror(errno));
    } else if (rc == CURLE_HTTP_RETURNED_ERROR) {
        const char *reason = reason_of(t.status);
        set_err(err, errlen, "HTTP %ld%s%s from %s", code, *reason ? " " : "", reason, url);
    } else if (rc == CURLE_COULDNT_RESOLVE_HOST) {
        set_err(err, errlen, "cannot resolve the host of %s (DNS lookup failed: %s)", url, why);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        set_err(err, errlen, "the download of %s timed out: %s", url, why);
    } else if (rc == CURLE_TOO_MANY_REDIRECTS) {
        set_err(err, errlen, "%s redirected more than %d times", url, redirects);
    } else if (rc == CURLE_COULDNT_CONNECT) {
        set_err(err, errlen, "cannot connect to the server of %s: %s", url, why);
    } else if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CONNECT_ERROR ||
               rc == CURLE_SSL_CACERT_BADFILE) {
        set_err(err, errlen, "TLS failed for %s: %s", url, why);
    } else {
        set_err(err, errlen, "cannot download %s: %s", url, why);
    }
    return -1;
}

static int use_remote(const char *src, const kl_download_opts *opt, kl_download *out, char *err,
                      size_t errlen) {
    /* Validate first, so that a malformed URL gets its own message rather than curl's. */
    if (kl_curlapi_load(err, errlen) != 0) return -1;
    CURLU *u = KL_CURL(curl_url)();
    if (!u) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    char *host = NULL, *upath = NULL;
    CURLUcode uc = KL_CURL(curl_url_set)(u, CURLUPART_URL, src, 0);
    if (uc == CURLUE_OK) uc = KL_CURL(curl_url_get)(u, CURLUPART_HOST, &host, 0);
    if (uc == CURLUE_OK) uc = KL_CURL(curl_url_get)(u, CURLUPART_PATH, &upath, 0);
    KL_CURL(curl_url_cleanup)(u);
    if (uc != CURLUE_OK || !host || !*host) {
        set_err(err, errlen, "%s is not a valid URL: %s", src,
                uc != CURLUE_OK ? KL_CURL(curl_url_strerror)(uc) : "no host");
        KL_CURL(curl_free)(host);
        KL_CURL(curl_free)(upath);
        return -1;
    }
    KL_CURL(curl_free)(host);
    char *decoded = upath ? pct_decode(upath, strlen(upath)) : NULL;
    char *name = file_name_of(decoded ? decoded : (upath ? upath : ""));
    free(decoded);
    KL_CURL(curl_free)(upath);
    if (!name) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    const char *dir = opt && opt->cache_dir ? opt->cache_dir : kl_download_cache_dir(err, errlen);
    if (!dir) {
        free(name);
        return -1;
    }
    char key[65];
    sha256_hex(src, strlen(src), key);
    key[16] = 0; /* 64 bits of the URL's hash: a directory per URL, keeping its file name */
    char *entry_dir = NULL, *final = NULL, *part = NULL;
    if (asprintf(&entry_dir, "%s/%s", dir, key) < 0) entry_dir = NULL;
    if (entry_dir && asprintf(&final, "%s/%s", entry_dir, name) < 0) final = NULL;
    if (final && asprintf(&part, "%s/.%s.%ld.%lx.part", entry_dir, name, (long)getpid(),
                          (unsigned long)pthread_self()) < 0)
        part = NULL;
    int rc = -1;
    struct stat sb;
    if (!part) {
        set_err(err, errlen, "out of memory");
    } else if (!(opt && opt->force) && stat(final, &sb) == 0 && S_ISREG(sb.st_mode)) {
        out->from_cache = true;
        rc = 0;
    } else if (mkdirs(entry_dir) != 0) {
        set_err(err, errlen, "cannot create the cache directory %s: %s", entry_dir,
                strerror(errno));
    } else if (curl_fetch(src, part, opt, err, errlen) != 0) {
        unlink(part);
    } else if (rename(part, final) != 0) {
        /* The rename makes a cache entry appear only complete, even with two kernels racing. */
        set_err(err, errlen, "cannot store the download of %s in %s: %s", src, final,
                strerror(errno));
        unlink(part);
    } else {
        rc = 0;
    }
    if (rc == 0) {
        rc = -1;
        if (stat(final, &sb) != 0)
            set_err(err, errlen, "cannot open the download of %s (%s): %s", src, final,
                    strerror(errno));
        else if ((uint64_t)sb.st_size > max_of(opt))
            set_err(err, errlen, "%s is larger than the limit of %.0f MiB", src,
                    (double)max_of(opt) / MIB);
        else
            rc = 0;
    }
    if (rc == 0) {
        out->path = final;
        out->file_name = name;
        out->size = (uint64_t)sb.st_size;
        out->remote = true;
        final = NULL;
        name = NULL;
    }
    free(entry_dir);
    free(final);
    free(part);
    free(name);
    return rc;
}

int kl_download_fetch(const char *src, const kl_download_opts *opt, kl_download *out, char *err,
                      size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!src || !*src) {
        set_err(err, errlen, "no file or URL given");
        return -1;
    }
    if (has_prefix_ci(src, "http://") || has_prefix_ci(src, "https://"))
        return use_remote(src, opt, out, err, errlen);
    if (has_prefix_ci(src, "file:")) return use_file_url(src, opt, out, err, errlen);
    const char *sep = strstr(src, "://");
    if (sep) {
        set_err(err, errlen,
                "%s: the URL scheme '%.*s' is not supported; use http://, https://, file:// or a "
                "local path",
                src, (int)(sep - src), src);
        return -1;
    }
    if (src[0] == '~' && (src[1] == '/' || src[1] == 0)) {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            set_err(err, errlen, "%s: cannot expand ~ (HOME is not set)", src);
            return -1;
        }
        char *path = NULL;
        if (asprintf(&path, "%s%s", home, src + 1) < 0) {
            set_err(err, errlen, "out of memory");
            return -1;
        }
        int rc = use_local(src, path, opt, out, err, errlen);
        free(path);
        return rc;
    }
    return use_local(src, src, opt, out, err, errlen);
}

/* ---- checks --------------------------------------------------------------------------------- */

int kl_download_sha256(const char *path, char hex[65], uint64_t *size, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t cap = 1 << 20;
    unsigned char *buf = malloc(cap);
    int rc = -1;
    if (!ctx || !buf || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        set_err(err, errlen, "out of memory");
        goto out;
    }
    uint64_t total = 0;
    for (;;) {
        ssize_t r = read(fd, buf, cap);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            set_err(err, errlen, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0) break;
        EVP_DigestUpdate(ctx, buf, (size_t)r);
        total += (uint64_t)r;
    }
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    *size = total;
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    free(buf);
    close(fd);
    return rc;
}

static uint16_t le16(const uint8_t *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) {
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

#define EOCD_LEN      22
#define EOCD64_LEN    56
#define LOCATOR64_LEN 20
#define MAX_COMMENT   0xFFFF

static bool read_exact(kl_zip_read_fn rd, void *arg, void *buf, size_t len, uint64_t off) {
    return rd(arg, buf, len, off) == (ssize_t)len;
}

int kl_zip_check(kl_zip_read_fn rd, void *arg, uint64_t size, char *err, size_t errlen) {
    uint8_t head[4];
    if (size < 4 + EOCD_LEN || !read_exact(rd, arg, head, 4, 0)) {
        set_err(err, errlen, "it is too short to be a zip archive (%llu bytes)",
                (unsigned long long)size);
        return -1;
    }
    if (memcmp(head, "PK\3\4", 4) != 0) {
        set_err(err, errlen, "it does not start with a zip local file header (PK\\3\\4)");
        return -1;
    }
    size_t tail_len = size < EOCD_LEN + MAX_COMMENT ? (size_t)size : EOCD_LEN + MAX_COMMENT;
    uint64_t tail_off = size - tail_len;
    uint8_t *tail = malloc(tail_len);
    if (!tail) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    if (!read_exact(rd, arg, tail, tail_len, tail_off)) {
        free(tail);
        set_err(err, errlen, "cannot read its end");
        return -1;
    }
    /* The record ends the file exactly: its comment length must reach the last byte. Scanning
     * from the end finds the real record before any "PK\5\6" inside a comment. */
    long pos = -1;
    for (long i = (long)tail_len - EOCD_LEN; i >= 0; i--) {
        if (memcmp(tail + i, "PK\5\6", 4) == 0 &&
            (size_t)i + EOCD_LEN + le16(tail + i + 20) == tail_len) {
            pos = i;
            break;
        }
    }
    if (pos < 0) {
        free(tail);
        set_err(err, errlen, "it has no end-of-central-directory record (truncated or not a zip)");
        return -1;
    }
    const uint8_t *e = tail + pos;
    uint64_t eocd_off = tail_off + (uint64_t)pos;
    uint64_t entries = le16(e + 10), cd_size = le32(e + 12), cd_off = le32(e + 16);
    uint64_t cd_end_limit = eocd_off;
    free(tail);
    if (entries == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
        uint8_t loc[LOCATOR64_LEN], rec[EOCD64_LEN];
        if (eocd_off < LOCATOR64_LEN ||
            !read_exact(rd, arg, loc, LOCATOR64_LEN, eocd_off - LOCATOR64_LEN) ||
            memcmp(loc, "PK\6\7", 4) != 0) {
            set_err(err, errlen, "its zip64 end-of-central-directory locator is missing");
            return -1;
        }
        uint64_t rec_off = le64(loc + 8);
        if (rec_off > eocd_off - LOCATOR64_LEN || eocd_off - LOCATOR64_LEN - rec_off < EOCD64_LEN ||
            !read_exact(rd, arg, rec, EOCD64_LEN, rec_off) || memcmp(rec, "PK\6\6", 4) != 0) {
            set_err(err, errlen, "its zip64 end-of-central-directory record is unreadable");
            return -1;
        }
        entries = le64(rec + 32);
        cd_size = le64(rec + 40);
        cd_off = le64(rec + 48);
        cd_end_limit = rec_off;
    }
    if (entries == 0) {
        set_err(err, errlen, "it is an empty zip archive");
        return -1;
    }
    if (cd_off > cd_end_limit || cd_size > cd_end_limit - cd_off) {
        set_err(err, errlen, "its central directory lies outside the file");
        return -1;
    }
    uint8_t cd[4];
    if (!read_exact(rd, arg, cd, 4, cd_off) || memcmp(cd, "PK\1\2", 4) != 0) {
        set_err(err, errlen, "its central directory does not start with a file header");
        return -1;
    }
    return 0;
}

static ssize_t fd_read(void *arg, void *buf, size_t len, uint64_t off) {
    int fd = *(int *)arg;
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int kl_zip_check_file(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    char why[256];
    int rc;
    if (fstat(fd, &sb) != 0) {
        set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        rc = -1;
    } else if ((rc = kl_zip_check(fd_read, &fd, (uint64_t)sb.st_size, why, sizeof why)) != 0) {
        set_err(err, errlen, "%s", why);
    }
    close(fd);
    return rc;
}
