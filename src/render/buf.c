#include "render/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kl_render_buf_init(kl_render_buf *b) {
    memset(b, 0, sizeof *b);
}

void kl_render_buf_free(kl_render_buf *b) {
    free(b->data);
    kl_render_buf_init(b);
}

/* Room for n more bytes plus the terminating NUL. */
static bool reserve(kl_render_buf *b, size_t n) {
    if (b->failed) return false;
    if (n < b->cap - b->len) return true;
    if (n > (size_t)-1 / 2 - b->len - 1) {
        b->failed = true;
        return false;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len <= n) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void kl_render_buf_append(kl_render_buf *b, const void *p, size_t n) {
    if (!reserve(b, n)) return;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void kl_render_buf_puts(kl_render_buf *b, const char *s) {
    kl_render_buf_append(b, s, strlen(s));
}

void kl_render_buf_putc(kl_render_buf *b, char c) {
    kl_render_buf_append(b, &c, 1);
}

void kl_render_buf_repeat(kl_render_buf *b, char c, size_t n) {
    if (!reserve(b, n)) return;
    memset(b->data + b->len, c, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void kl_render_buf_printf(kl_render_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if (!reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void kl_render_buf_truncate(kl_render_buf *b, size_t len) {
    if (b->failed || len >= b->len) return;
    b->len = len;
    b->data[len] = '\0';
}

char *kl_render_buf_take(kl_render_buf *b, size_t *len) {
    if (!b->data) kl_render_buf_append(b, "", 0); /* an empty text is still a string */
    if (b->failed) {
        kl_render_buf_free(b);
        return NULL;
    }
    char *p = b->data;
    if (len) *len = b->len;
    kl_render_buf_init(b);
    return p;
}
