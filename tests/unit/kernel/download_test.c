/* Fetching artifacts: local paths and file:// URLs, http downloads from a tiny server on loopback
 * (cache, -f, redirects, HTTP errors, the size limit), the errors for bad sources, SHA-256, and
 * the zip check a jar must pass. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/download.h"

static char dir[256];

static void make_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/kl-download-test-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    /* Loopback must not go through a proxy a developer's environment names. */
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");
}

static void remove_dir(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static char *write_file(const char *name, const void *data, size_t len) {
    char *path = NULL;
    cr_assert_geq(asprintf(&path, "%s/%s", dir, name), 0);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
    return path;
}

TestSuite(local, .init = make_dir, .fini = remove_dir);

Test(local, a_path_is_used_in_place) {
    char *path = write_file("lib.jar", "0123456789", 10);
    kl_download d;
    char err[512];
    cr_assert_eq(kl_download_fetch(path, NULL, &d, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(d.path, path);
    cr_assert_str_eq(d.file_name, "lib.jar");
    cr_assert_eq(d.size, 10);
    cr_assert(!d.remote && !d.from_cache);
    kl_download_clear(&d);
    free(path);
}

Test(local, a_file_url_is_decoded) {
    char *path = write_file("my lib.jar", "abc", 3);
    char url[600];
    snprintf(url, sizeof url, "file://%s/my%%20lib.jar", dir);
    kl_download d;
    char err[512];
    cr_assert_eq(kl_download_fetch(url, NULL, &d, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(d.path, path);
    cr_assert_str_eq(d.file_name, "my_lib.jar", "unsafe characters become '_'");
    cr_assert_eq(d.size, 3);
    kl_download_clear(&d);
    snprintf(url, sizeof url, "file://localhost%s/my%%20lib.jar", dir);
    cr_assert_eq(kl_download_fetch(url, NULL, &d, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(d.path, path);
    kl_download_clear(&d);
    free(path);
}

static void expect_error(const char *src, const kl_download_opts *o, const char *want) {
    kl_download d;
    char err[1024] = "";
    cr_assert_eq(kl_download_fetch(src, o, &d, err, sizeof err), -1, "%s should fail", src);
    cr_assert_null(d.path);
    cr_assert(strstr(err, want), "error for %s: \"%s\" lacks \"%s\"", src, err, want);
}

Test(local, errors_name_the_source) {
    char missing[600], url[700];
    char want[800];
    snprintf(missing, sizeof missing, "%s/nope.jar", dir);
    snprintf(want, sizeof want, "no such file: %s", missing);
    expect_error(missing, NULL, want);
    snprintf(url, sizeof url, "file://%s", missing);
    snprintf(want, sizeof want, "no such file: %s", url);
    expect_error(url, NULL, want);
    expect_error(dir, NULL, "is a directory");
    expect_error("hdfs://nn/x.jar", NULL, "the URL scheme 'hdfs' is not supported");
    expect_error("file://otherhost/x.jar", NULL, "another host (otherhost)");
    expect_error("file:relative.jar", NULL, "needs an absolute path");
    expect_error("file:///tmp/bad%zzescape", NULL, "bad % escape");
    expect_error("", NULL, "no file or URL given");
    expect_error("http://", NULL, "http:// is not a valid URL");
    expect_error("http://exa mple.com/x.jar", NULL, "is not a valid URL");
}

Test(local, the_size_limit_applies_to_local_files) {
    char big[2000];
    memset(big, 'x', sizeof big);
    char *path = write_file("big.bin", big, sizeof big);
    kl_download_opts o = {.max_bytes = 1000};
    expect_error(path, &o, "over the limit");
    free(path);
}

Test(local, sha256_of_a_file) {
    char *path = write_file("abc.txt", "abc", 3);
    char hex[65];
    uint64_t size = 0;
    char err[256];
    cr_assert_eq(kl_download_sha256(path, hex, &size, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cr_assert_eq(size, 3);
    free(path);
}

/* ---- http ------------------------------------------------------------------------------------ */

typedef struct server {
    int fd;
    int port;
    pthread_t thread;
    atomic_int requests;
    atomic_bool stop;
    char body[64];
} server;

static server srv;

static void respond(int c, const char *path) {
    char out[8192];
    int n;
    if (strcmp(path, "/ok/lib.jar") == 0) {
        n = snprintf(out, sizeof out,
                     "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     strlen(srv.body), srv.body);
    } else if (strcmp(path, "/redirect/lib.jar") == 0) {
        n = snprintf(out, sizeof out,
                     "HTTP/1.1 302 Found\r\nLocation: /ok/lib.jar\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n");
    } else if (strcmp(path, "/loop") == 0) {
        n = snprintf(out, sizeof out,
                     "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n");
    } else if (strcmp(path, "/big") == 0) {
        n = snprintf(out, sizeof out,
                     "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n");
        memset(out + n, 'b', 5000);
        n += 5000;
    } else {
        n = snprintf(out, sizeof out,
                     "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\n"
                     "not found");
    }
    for (int off = 0; off < n;) {
        ssize_t w = write(c, out + off, (size_t)(n - off));
        if (w <= 0) break;
        off += (int)w;
    }
}

static void *serve(void *arg) {
    (void)arg;
    while (!atomic_load(&srv.stop)) {
        int c = accept(srv.fd, NULL, NULL);
        if (c < 0) continue;
        char req[4096];
        size_t got = 0;
        while (got < sizeof req - 1) {
            ssize_t r = read(c, req + got, sizeof req - 1 - got);
            if (r <= 0) break;
            got += (size_t)r;
            req[got] = 0;
            if (strstr(req, "\r\n\r\n")) break;
        }
        req[got] = 0;
        char path[1024] = "";
        if (sscanf(req, "GET %1023s ", path) == 1) {
            atomic_fetch_add(&srv.requests, 1);
            respond(c, path);
        }
        close(c);
    }
    return NULL;
}

static void start_server(void) {
    make_dir();
    memset(&srv, 0, sizeof srv);
    snprintf(srv.body, sizeof srv.body, "version one");
    srv.fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(srv.fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(srv.fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(srv.fd, 16), 0);
    socklen_t len = sizeof a;
    cr_assert_eq(getsockname(srv.fd, (struct sockaddr *)&a, &len), 0);
    srv.port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&srv.thread, NULL, serve, NULL), 0);
}

static void stop_server(void) {
    atomic_store(&srv.stop, true);
    shutdown(srv.fd, SHUT_RDWR);
    close(srv.fd);
    pthread_join(srv.thread, NULL);
    remove_dir();
}

TestSuite(http, .init = start_server, .fini = stop_server, .timeout = 60);

static char *url_of(const char *path) {
    char *u = NULL;
    cr_assert_geq(asprintf(&u, "http://127.0.0.1:%d%s", srv.port, path), 0);
    return u;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

Test(http, downloads_into_the_cache_then_reuses_it_until_forced) {
    char *url = url_of("/ok/lib.jar");
    kl_download_opts o = {.cache_dir = dir};
    kl_download d;
    char err[1024];
    cr_assert_eq(kl_download_fetch(url, &o, &d, err, sizeof err), 0, "%s", err);
    cr_assert(d.remote && !d.from_cache);
    cr_assert_str_eq(d.file_name, "lib.jar");
    cr_assert_eq(strncmp(d.path, dir, strlen(dir)), 0, "%s is in the cache", d.path);
    cr_assert_str_eq(slurp(d.path), "version one");
    cr_assert_eq(d.size, 11);
    kl_download_clear(&d);
    cr_assert_eq(atomic_load(&srv.requests), 1);

    snprintf(srv.body, sizeof srv.body, "version two!");
    cr_assert_eq(kl_download_fetch(url, &o, &d, err, sizeof err), 0, "%s", err);
    cr_assert(d.from_cache);
    cr_assert_str_eq(slurp(d.path), "version one", "the cached copy, not the server's");
    kl_download_clear(&d);
    cr_assert_eq(atomic_load(&srv.requests), 1, "no request for a cached URL");

    o.force = true;
    cr_assert_eq(kl_download_fetch(url, &o, &d, err, sizeof err), 0, "%s", err);
    cr_assert(!d.from_cache);
    cr_assert_str_eq(slurp(d.path), "version two!");
    cr_assert_eq(d.size, 12);
    kl_download_clear(&d);
    cr_assert_eq(atomic_load(&srv.requests), 2);
    free(url);
}

Test(http, follows_redirects) {
    char *url = url_of("/redirect/lib.jar");
    kl_download_opts o = {.cache_dir = dir};
    kl_download d;
    char err[1024];
    cr_assert_eq(kl_download_fetch(url, &o, &d, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(slurp(d.path), "version one");
    cr_assert_eq(atomic_load(&srv.requests), 2);
    kl_download_clear(&d);
    free(url);
}

Test(http, errors) {
    kl_download_opts o = {.cache_dir = dir};
    char *missing = url_of("/missing.jar");
    char want[600];
    snprintf(want, sizeof want, "HTTP 404 Not Found from %s", missing);
    expect_error(missing, &o, want);
    char *loop = url_of("/loop");
    expect_error(loop, &o, "redirected more than 5 times");
    char *big = url_of("/big");
    kl_download_opts small = {.cache_dir = dir, .max_bytes = 1000};
    expect_error(big, &small, "is larger than the limit");
    expect_error("http://127.0.0.1:1/x.jar", &o, "cannot connect to the server of");
    expect_error("http://nonexistent.invalid/x.jar", &o, "cannot resolve the host of");
    /* A failed download leaves nothing in the cache, so a retry fetches again. */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test -z \"$(find '%s' -type f)\"", dir);
    cr_assert_eq(system(cmd), 0, "no files left behind in %s", dir);
    free(missing);
    free(loop);
    free(big);
}

Test(http, a_set_cancel_flag_stops_the_download) {
    atomic_bool cancel = true;
    kl_download_opts o = {.cache_dir = dir, .cancel = &cancel};
    char *url = url_of("/ok/lib.jar");
    expect_error(url, &o, "was interrupted");
    free(url);
}

/* ---- zip ------------------------------------------------------------------------------------ */

typedef struct mem {
    const uint8_t *p;
    size_t n;
} mem;

static ssize_t mem_read(void *arg, void *buf, size_t len, uint64_t off) {
    mem *m = arg;
    if (off >= m->n) return 0;
    if (len > m->n - off) len = m->n - (size_t)off;
    memcpy(buf, m->p + off, len);
    return (ssize_t)len;
}

static void put16(uint8_t *p, unsigned v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
    put16(p, v & 0xFFFF);
    put16(p + 2, v >> 16);
}

/* A stored zip with one entry "a.txt" holding "hi", and an archive comment. */
static size_t make_zip(uint8_t *z, const char *comment) {
    size_t at = 0;
    uint8_t *lh = z;
    memset(lh, 0, 30);
    memcpy(lh, "PK\3\4", 4);
    put16(lh + 26, 5);
    put32(lh + 18, 2);
    put32(lh + 22, 2);
    memcpy(lh + 30, "a.txt", 5);
    memcpy(lh + 35, "hi", 2);
    at = 37;
    size_t cd = at;
    uint8_t *ch = z + at;
    memset(ch, 0, 46);
    memcpy(ch, "PK\1\2", 4);
    put16(ch + 28, 5);
    memcpy(ch + 46, "a.txt", 5);
    at += 51;
    uint8_t *e = z + at;
    memset(e, 0, 22);
    memcpy(e, "PK\5\6", 4);
    put16(e + 8, 1);
    put16(e + 10, 1);
    put32(e + 12, (uint32_t)(at - cd));
    put32(e + 16, (uint32_t)cd);
    put16(e + 20, (unsigned)strlen(comment));
    memcpy(e + 22, comment, strlen(comment));
    return at + 22 + strlen(comment);
}

static int check(const uint8_t *z, size_t n, char *err, size_t errlen) {
    mem m = {z, n};
    return kl_zip_check(mem_read, &m, n, err, errlen);
}

Test(zip, a_valid_archive_passes_even_with_a_tricky_comment) {
    uint8_t z[512];
    char err[256] = "";
    size_t n = make_zip(z, "");
    cr_assert_eq(check(z, n, err, sizeof err), 0, "%s", err);
    n = make_zip(z, "xxPK\5\6 a fake record in the comment");
    cr_assert_eq(check(z, n, err, sizeof err), 0, "%s", err);
}

static void expect_bad(const uint8_t *z, size_t n, const char *want) {
    char err[256] = "";
    cr_assert_eq(check(z, n, err, sizeof err), -1);
    cr_assert(strstr(err, want), "\"%s\" lacks \"%s\"", err, want);
}

Test(zip, broken_archives_say_why) {
    uint8_t z[512];
    size_t n = make_zip(z, "");
    expect_bad((const uint8_t *)"just some text, not an archive at all", 37,
               "does not start with a zip local file header");
    expect_bad(z, 10, "too short");
    expect_bad(z, n - 5, "no end-of-central-directory record");
    uint8_t t[512];
    memcpy(t, z, n);
    z[n] = 'x'; /* trailing garbage: the record no longer ends the file */
    expect_bad(z, n + 1, "no end-of-central-directory record");
    memcpy(z, t, n);
    put32(z + n - 22 + 16, 400); /* central directory beyond the end */
    expect_bad(z, n, "central directory lies outside the file");
    memcpy(z, t, n);
    put32(z + n - 22 + 16, 30); /* pointing at a wrong place */
    expect_bad(z, n, "does not start with a file header");
    memcpy(z, t, n);
    put16(z + n - 22 + 10, 0);
    expect_bad(z, n, "empty zip archive");
    memcpy(z, t, n);
    put16(z + n - 22 + 10, 0xFFFF); /* claims zip64 without its records */
    expect_bad(z, n, "zip64 end-of-central-directory locator is missing");
}

Test(zip, check_file_on_disk, .init = make_dir, .fini = remove_dir) {
    uint8_t z[512];
    size_t n = make_zip(z, "");
    char *good = write_file("good.jar", z, n);
    const char *html = "<html><body>404 not found</body></html>";
    char *bad = write_file("bad.jar", html, strlen(html));
    char err[256];
    cr_assert_eq(kl_zip_check_file(good, err, sizeof err), 0, "%s", err);
    cr_assert_eq(kl_zip_check_file(bad, err, sizeof err), -1);
    cr_assert(strstr(err, "local file header"), "%s", err);
    free(good);
    free(bad);
}
