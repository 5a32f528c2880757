/* Fetching artifacts to a local file: http(s) URLs with libcurl (into a cache keyed by URL),
 * file:// URLs and plain paths as they are; and checking what was fetched (size, SHA-256, "is
 * this a zip").
 *
 * Every function here blocks (network, disk): call them on the worker pool, never on the loop
 * thread. They are thread-safe. */
#ifndef KL_KERNEL_DOWNLOAD_H
#define KL_KERNEL_DOWNLOAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KL_DOWNLOAD_MAX_BYTES          (256ull * 1024 * 1024)
#define KL_DOWNLOAD_CONNECT_TIMEOUT_MS (30 * 1000)
#define KL_DOWNLOAD_TIMEOUT_MS         (10 * 60 * 1000)
#define KL_DOWNLOAD_MAX_REDIRECTS      5

typedef struct kl_download_opts {
    uint64_t max_bytes;        /* 0: KL_DOWNLOAD_MAX_BYTES; applies to local files too */
    long connect_timeout_ms;   /* 0: KL_DOWNLOAD_CONNECT_TIMEOUT_MS */
    long timeout_ms;           /* whole transfer; 0: KL_DOWNLOAD_TIMEOUT_MS */
    int max_redirects;         /* 0: KL_DOWNLOAD_MAX_REDIRECTS; < 0: follow none */
    const char *cache_dir;     /* NULL: kl_download_cache_dir() */
    bool force;                /* download again even when the cache holds the URL */
    const atomic_bool *cancel; /* set by another thread to abort a transfer; may be NULL */
} kl_download_opts;

typedef struct kl_download {
    char *path;      /* the local file to read: a cache entry or the user's own file */
    char *file_name; /* the source's last path segment ("x.jar"), never empty, without '/' */
    uint64_t size;
    bool remote;     /* an http(s) URL */
    bool from_cache; /* remote, and the cache's copy was used instead of downloading */
} kl_download;

/* Makes src available as a local file. src is an http:// or https:// URL (downloaded into the
 * cache, following at most max_redirects redirects, failing on HTTP >= 400, on more than
 * max_bytes, on a timeout; https checks the server against the system's CA certificates), a
 * file:// URL, or a path (~/ expanded). 0 with *out filled (clear with kl_download_clear), or -1
 * with a message naming src in err. */
int kl_download_fetch(const char *src, const kl_download_opts *opt, kl_download *out, char *err,
                      size_t errlen);
void kl_download_clear(kl_download *d);

/* The per-user download cache, created on first use: $XDG_CACHE_HOME/kindling/artifacts, else
 * ~/.cache/kindling/artifacts, else a fresh directory under $TMPDIR. Borrowed, process-wide. NULL
 * with err set when none can be made. */
const char *kl_download_cache_dir(char *err, size_t errlen);

/* SHA-256 of a file as 64 lowercase hex digits (+ NUL) and its size. 0 or -1 with err set. */
int kl_download_sha256(const char *path, char hex[65], uint64_t *size, char *err, size_t errlen);

/* Reads len bytes at off into buf; returns the count read (short only at the end) or -1. */
typedef ssize_t (*kl_zip_read_fn)(void *arg, void *buf, size_t len, uint64_t off);
/* Whether size bytes (read through read) look like a zip archive, as a jar must be: a local file
 * header at the start, and an end-of-central-directory record that ends the file exactly and
 * points at a central directory inside it (zip64 records honoured). 0, or -1 with the reason in
 * err. */
int kl_zip_check(kl_zip_read_fn read, void *arg, uint64_t size, char *err, size_t errlen);
/* kl_zip_check on a file; err holds the reason only (the caller names the file). */
int kl_zip_check_file(const char *path, char *err, size_t errlen);

#endif
