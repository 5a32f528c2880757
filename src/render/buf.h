/* Growable byte buffer that every renderer writes into. Allocation failure is sticky: later
 * appends do nothing and kl_render_buf_take returns NULL, so callers check once at the end. */
#ifndef KL_RENDER_BUF_H
#define KL_RENDER_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct kl_render_buf {
    char *data; /* NUL-terminated whenever len > 0 and !failed */
    size_t len, cap;
    bool failed;
} kl_render_buf;

void kl_render_buf_init(kl_render_buf *b);
void kl_render_buf_free(kl_render_buf *b); /* frees the bytes, keeps the struct */
void kl_render_buf_append(kl_render_buf *b, const void *p, size_t n);
void kl_render_buf_puts(kl_render_buf *b, const char *s);
void kl_render_buf_putc(kl_render_buf *b, char c);
void kl_render_buf_repeat(kl_render_buf *b, char c, size_t n);
__attribute__((format(printf, 2, 3))) void kl_render_buf_printf(kl_render_buf *b, const char *fmt,
                                                                ...);
/* Drops bytes after len (len <= b->len). */
void kl_render_buf_truncate(kl_render_buf *b, size_t len);
/* Hands the NUL-terminated bytes to the caller (free() them) and resets b; NULL after a failed
 * allocation (b is then freed). *len may be NULL. */
char *kl_render_buf_take(kl_render_buf *b, size_t *len);

#endif
