#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "kernel/health.h"

/* A raw HTTP/1.0 exchange, independent of the server's library and of kl_health_get: returns the
 * status code and copies the whole response (head and body) into resp. */
static int raw_request(int port, const char *method, const char *path, char *resp, size_t len) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect to %d", port);
    char req[256];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: localhost\r\n\r\n", method, path);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    size_t got = 0;
    ssize_t r;
    while (got < len - 1 && (r = read(fd, resp + got, len - 1 - got)) > 0) got += (size_t)r;
    resp[got] = 0;
    close(fd);
    int status = -1;
    sscanf(resp, "HTTP/1.%*d %d", &status);
    return status;
}

static const char *body_of(const char *resp) {
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

static kl_health *start(unsigned stale_ms, kl_metrics *m) {
    char err[256];
    kl_health_opts o = {.ip = "127.0.0.1", .port = 0, .stale_ms = stale_ms, .metrics = m};
    kl_health *h = kl_health_start(&o, err, sizeof err);
    cr_assert_not_null(h, "%s", err);
    cr_assert_gt(kl_health_port(h), 0);
    return h;
}

Test(health, liveness_follows_the_beat) {
    kl_health *h = start(300, NULL);
    char resp[4096];
    int port = kl_health_port(h);
    /* Alive from the start, before the first beat. */
    cr_expect_eq(raw_request(port, "GET", "/healthz", resp, sizeof resp), 200);
    cr_expect_str_eq(body_of(resp), "ok\n");
    usleep(500 * 1000);
    cr_expect_eq(raw_request(port, "GET", "/healthz", resp, sizeof resp), 503);
    cr_expect(strstr(body_of(resp), "event loop has not answered"), "%s", resp);
    kl_health_beat(h);
    cr_expect_eq(raw_request(port, "GET", "/healthz", resp, sizeof resp), 200);
    kl_health_stop(h);
}

Test(health, readiness_says_why_not) {
    kl_health *h = start(0, NULL);
    char resp[4096];
    int port = kl_health_port(h);
    cr_expect_eq(raw_request(port, "GET", "/readyz", resp, sizeof resp), 503);
    cr_expect_str_eq(body_of(resp), "not ready: starting\n");
    kl_health_set_ready(h, true, NULL);
    cr_expect_eq(raw_request(port, "GET", "/readyz", resp, sizeof resp), 200);
    cr_expect_str_eq(body_of(resp), "ready\n");
    cr_expect(strstr(resp, "Cache-Control: no-store"), "%s", resp);
    kl_health_set_ready(h, false, "Spark Connect at sc://x:1: connection refused");
    cr_expect_eq(raw_request(port, "GET", "/readyz", resp, sizeof resp), 503);
    cr_expect_str_eq(body_of(resp), "not ready: Spark Connect at sc://x:1: connection refused\n");
    kl_health_stop(h);
}

Test(health, draining_fails_readiness_but_not_liveness) {
    kl_health *h = start(100, NULL);
    char resp[4096];
    int port = kl_health_port(h);
    kl_health_set_ready(h, true, NULL);
    kl_health_set_draining(h);
    usleep(300 * 1000); /* stale, but shutting down on purpose */
    cr_expect_eq(raw_request(port, "GET", "/readyz", resp, sizeof resp), 503);
    cr_expect_str_eq(body_of(resp), "not ready: shutting down\n");
    cr_expect_eq(raw_request(port, "GET", "/healthz", resp, sizeof resp), 200);
    kl_health_stop(h);
}

Test(health, metrics_are_served_in_the_text_format) {
    kl_metrics *m = kl_metrics_new();
    kl_series_add(
        kl_metric_series(
            kl_metrics_add(m, KL_METRIC_COUNTER, "things_total", "Things.", NULL, NULL, 0), NULL),
        42);
    kl_health *h = start(0, m);
    char resp[8192];
    cr_expect_eq(raw_request(kl_health_port(h), "GET", "/metrics", resp, sizeof resp), 200);
    cr_expect(strstr(resp, "Content-Type: text/plain; version=0.0.4"), "%s", resp);
    cr_expect(strstr(body_of(resp), "# TYPE things_total counter\nthings_total 42\n"), "%s", resp);
    kl_health_stop(h);
    kl_metrics_free(m);
}

Test(health, other_paths_and_methods_are_refused) {
    kl_health *h = start(0, NULL);
    char resp[4096];
    int port = kl_health_port(h);
    cr_expect_eq(raw_request(port, "GET", "/nope", resp, sizeof resp), 404);
    cr_expect_eq(raw_request(port, "POST", "/healthz", resp, sizeof resp), 405);
    cr_expect(strstr(resp, "Allow: GET, HEAD"), "%s", resp);
    cr_expect_eq(raw_request(port, "HEAD", "/healthz", resp, sizeof resp), 200);
    cr_expect_str_eq(body_of(resp), "", "HEAD has no body");
    kl_health_stop(h);
}

Test(health, the_client_reads_status_and_body) {
    kl_health *h = start(0, NULL);
    char body[256], err[256];
    int port = kl_health_port(h);
    cr_expect_eq(
        kl_health_get("127.0.0.1", port, "/healthz", 2000, body, sizeof body, err, sizeof err),
        200);
    cr_expect_str_eq(body, "ok\n");
    cr_expect_eq(
        kl_health_get("127.0.0.1", port, "readyz", 2000, body, sizeof body, err, sizeof err), 503,
        "a path without its slash still works");
    cr_expect_str_eq(body, "not ready: starting\n");
    /* A tiny buffer truncates, never overflows. */
    char tiny[4];
    cr_expect_eq(
        kl_health_get("127.0.0.1", port, "/readyz", 2000, tiny, sizeof tiny, err, sizeof err), 503);
    cr_expect_str_eq(tiny, "not");
    kl_health_stop(h);
    /* Nobody listens there any more. */
    cr_expect_eq(
        kl_health_get("127.0.0.1", port, "/healthz", 2000, body, sizeof body, err, sizeof err), -1);
    cr_expect(strstr(err, "127.0.0.1"), "the error names the URL: %s", err);
}

Test(health, a_taken_port_is_reported) {
    kl_health *h = start(0, NULL);
    char err[256];
    kl_health_opts o = {.ip = "127.0.0.1", .port = kl_health_port(h)};
    cr_expect_null(kl_health_start(&o, err, sizeof err));
    cr_expect(strstr(err, "Address already in use"), "%s", err);
    kl_health_opts bad = {.ip = "not-an-address", .port = 0};
    cr_expect_null(kl_health_start(&bad, err, sizeof err));
    cr_expect(strstr(err, "not an IPv4 or IPv6 address"), "%s", err);
    kl_health_stop(h);
}
