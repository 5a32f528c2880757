/* The magic registry (a sorted array: a kernel has a few dozen magics, looked up once per use) and
 * the cell parser that separates magics from SQL. */
#include "kernel/magic.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct kl_magic_registry {
    kl_magic *items; /* sorted by name, case-insensitively */
    size_t count, cap;
};

kl_magic_registry *kl_magic_registry_new(void) {
    return calloc(1, sizeof(kl_magic_registry));
}

void kl_magic_registry_free(kl_magic_registry *reg) {
    if (!reg) return;
    free(reg->items);
    free(reg);
}

/* Compares a counted name with a registered NUL-terminated one, ignoring case. */
static int name_cmp(const char *name, size_t namelen, const char *registered) {
    size_t rlen = strlen(registered);
    size_t n = namelen < rlen ? namelen : rlen;
    int c = strncasecmp(name, registered, n);
    if (c != 0) return c;
    return namelen < rlen ? -1 : namelen > rlen ? 1 : 0;
}

/* Index of name in the registry, or of where it would be inserted (with *found false). */
static size_t lookup(const kl_magic_registry *reg, const char *name, size_t namelen, int *found) {
    size_t lo = 0, hi = reg->count;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(name, namelen, reg->items[mid].name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

int kl_magic_register(kl_magic_registry *reg, const kl_magic *m) {
    int found;
    size_t at = lookup(reg, m->name, strlen(m->name), &found);
    if (found) return -EEXIST;
    if (reg->count == reg->cap) {
        size_t ncap = reg->cap ? reg->cap * 2 : 16;
        kl_magic *n = realloc(reg->items, ncap * sizeof *n);
        if (!n) return -ENOMEM;
        reg->items = n;
        reg->cap = ncap;
    }
    memmove(&reg->items[at + 1], &reg->items[at], (reg->count - at) * sizeof *reg->items);
    reg->items[at] = *m;
    reg->count++;
    return 0;
}

/* kind 0 accepts a magic of any kind (for help and "did you mean" lookups). */
const kl_magic *kl_magic_find(const kl_magic_registry *reg, const char *name, size_t namelen,
                              kl_magic_kind kind) {
    int found;
    size_t at = lookup(reg, name, namelen, &found);
    if (!found) return NULL;
    const kl_magic *m = &reg->items[at];
    return (kind == 0 || (m->kinds & (int)kind)) ? m : NULL;
}

static size_t edit_distance(const char *a, size_t alen, const char *b, size_t blen, size_t *row) {
    for (size_t j = 0; j <= blen; j++) row[j] = j;
    for (size_t i = 1; i <= alen; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= blen; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t best = diag + cost;
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[blen];
}

/* "Near" is a distance of at most max(2, len/3) of the typed name. Ties go to the alphabetically
 * first name because the registry is visited in name order and only a strictly better distance
 * replaces the candidate. An empty name has nothing to be near. */
const char *kl_magic_closest(const kl_magic_registry *reg, const char *name, size_t namelen) {
    if (namelen == 0) return NULL;
    size_t limit = namelen / 3 > 2 ? namelen / 3 : 2;
    const char *best = NULL;
    size_t best_d = limit + 1;
    for (size_t k = 0; k < reg->count; k++) {
        const char *cand = reg->items[k].name;
        size_t clen = strlen(cand);
        size_t *row = malloc((clen + 1) * sizeof *row);
        if (!row) return NULL;
        size_t d = edit_distance(name, namelen, cand, clen, row);
        free(row);
        if (d < best_d) {
            best_d = d;
            best = cand;
        }
    }
    return best;
}

void kl_magic_foreach(const kl_magic_registry *reg, void (*fn)(const kl_magic *m, void *arg),
                      void *arg) {
    for (size_t k = 0; k < reg->count; k++) fn(&reg->items[k], arg);
}

/* ---- parser ---- */

static int is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static int is_name_char(char c) {
    return isalnum((unsigned char)c) || c == '_';
}

static size_t line_end(const char *s, size_t len, size_t i) {
    const char *nl = memchr(s + i, '\n', len - i);
    return nl ? (size_t)(nl - s) : len;
}

static size_t skip_indent(const char *s, size_t end, size_t i) {
    while (i < end && (s[i] == ' ' || s[i] == '\t')) i++;
    return i;
}

/* Fills the name and args of a magic line whose name begins at i (just after the % or %%). */
static void parse_magic_line(const char *s, size_t i, size_t end, kl_segment *seg) {
    seg->name_start = i;
    while (i < end && is_name_char(s[i])) i++;
    seg->name_len = i - seg->name_start;
    while (i < end && is_blank(s[i])) i++;
    size_t args_end = end;
    while (args_end > i && is_blank(s[args_end - 1])) args_end--;
    seg->args_start = i;
    seg->args_len = args_end - i;
}

typedef struct {
    kl_segment *items;
    long count;
    size_t cap;
} seglist;

static int push(seglist *l, kl_segment seg) {
    if (l->count == (long)l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 4;
        kl_segment *n = realloc(l->items, ncap * sizeof *n);
        if (!n) return -1;
        l->items = n;
        l->cap = ncap;
    }
    l->items[l->count++] = seg;
    return 0;
}

static int push_code(seglist *l, const char *s, size_t start, size_t end) {
    size_t i = start;
    while (i < end && (is_blank(s[i]) || s[i] == '\n')) i++;
    if (i == end) return 0;
    return push(l, (kl_segment){.kind = KL_SEG_CODE, .body_start = start, .body_len = end - start});
}

/* Choices beyond the header's contract, so the kernel can report what the user typed:
 * - a '%' not followed by a name character ("%", "% foo") is a line magic with an empty name;
 * - a later line starting with "%%" is a line magic whose name span starts at the second '%'
 *   (name "%sql"), which no registered magic matches, so it is reported as unknown;
 * - a code segment spans whole lines, from its first line's start to the next magic line's start
 *   (or the end of the cell), so code and magic lines tile the cell exactly.
 * With no segments *out is NULL. */
long kl_magic_parse(const char *cell, size_t len, kl_segment **out) {
    seglist l = {0};
    *out = NULL;

    size_t i = 0;
    for (;;) { /* find the first non-blank line */
        size_t end = line_end(cell, len, i);
        size_t j = i;
        while (j < end && is_blank(cell[j])) j++;
        if (j < end || end == len) break;
        i = end + 1;
    }
    size_t first = skip_indent(cell, len, i);
    if (first + 1 < len && cell[first] == '%' && cell[first + 1] == '%') {
        size_t end = line_end(cell, len, first);
        kl_segment seg = {.kind = KL_SEG_CELL_MAGIC};
        parse_magic_line(cell, first + 2, end, &seg);
        seg.body_start = end < len ? end + 1 : len;
        seg.body_len = len - seg.body_start;
        if (push(&l, seg) != 0) goto oom;
        *out = l.items;
        return l.count;
    }

    size_t code_start = 0;
    for (i = 0; i < len;) {
        size_t end = line_end(cell, len, i);
        size_t j = skip_indent(cell, end, i);
        if (j < end && cell[j] == '%') {
            if (push_code(&l, cell, code_start, i) != 0) goto oom;
            kl_segment seg = {.kind = KL_SEG_LINE_MAGIC};
            if (j + 1 < end && cell[j + 1] == '%') {
                parse_magic_line(cell, j + 2, end, &seg);
                seg.name_start--;
                seg.name_len++;
            } else {
                parse_magic_line(cell, j + 1, end, &seg);
            }
            seg.body_start = end;
            if (push(&l, seg) != 0) goto oom;
            code_start = end < len ? end + 1 : len;
        }
        i = end < len ? end + 1 : len;
    }
    if (push_code(&l, cell, code_start, len) != 0) goto oom;
    *out = l.items;
    return l.count;
oom:
    free(l.items);
    return -1;
}
