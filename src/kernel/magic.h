/* Magics: parsing a cell into line magics, a cell magic and SQL text, and the registry that maps
 * case-insensitive names to handlers. */
#ifndef KL_KERNEL_MAGIC_H
#define KL_KERNEL_MAGIC_H

#include <stdbool.h>
#include <stddef.h>

typedef struct kl_magic_ctx kl_magic_ctx; /* defined by the kernel: where output goes */

/* Returns 0 on success, -1 when the handler has reported an error through its context. */
typedef int (*kl_magic_fn)(kl_magic_ctx *ctx, const char *args, const char *body);

typedef enum { KL_MAGIC_LINE = 1, KL_MAGIC_CELL = 2 } kl_magic_kind;

typedef struct kl_magic {
    const char *name;  /* canonical spelling, e.g. "lsmagic", "AddJar" */
    int kinds;         /* KL_MAGIC_LINE | KL_MAGIC_CELL */
    const char *usage; /* e.g. "%truncation [on|off]" */
    const char *help;  /* one line */
    kl_magic_fn fn;
} kl_magic;

typedef struct kl_magic_registry kl_magic_registry;

kl_magic_registry *kl_magic_registry_new(void);
void kl_magic_registry_free(kl_magic_registry *reg);
/* Registers m (copied; the strings must outlive the registry). -EEXIST if the name is taken. */
int kl_magic_register(kl_magic_registry *reg, const kl_magic *m);
/* Case-insensitive lookup of a magic usable as kind; NULL when none. */
const kl_magic *kl_magic_find(const kl_magic_registry *reg, const char *name, size_t namelen,
                              kl_magic_kind kind);
/* The registered name closest to name (edit distance, case-insensitive), or NULL if none is near.
 */
const char *kl_magic_closest(const kl_magic_registry *reg, const char *name, size_t namelen);
/* Visits every magic in name order (case-insensitive). */
void kl_magic_foreach(const kl_magic_registry *reg, void (*fn)(const kl_magic *m, void *arg),
                      void *arg);

typedef enum { KL_SEG_CODE, KL_SEG_LINE_MAGIC, KL_SEG_CELL_MAGIC } kl_segment_kind;

/* One piece of a cell; spans point into the parsed text. */
typedef struct kl_segment {
    kl_segment_kind kind;
    size_t name_start, name_len; /* magic name without % or %% */
    size_t args_start, args_len; /* rest of the magic's line, trimmed */
    size_t body_start, body_len; /* cell magic: every line after the first; code: the code */
} kl_segment;

/* A cell whose first non-blank line starts with %% is one cell magic. Otherwise each line starting
 * (after indentation) with % is a line magic and runs of other lines are code segments; code that
 * is only whitespace is dropped. Returns the count and a malloc'd array in *out (caller frees), or
 * -1 on allocation failure. */
long kl_magic_parse(const char *cell, size_t len, kl_segment **out);

#endif
