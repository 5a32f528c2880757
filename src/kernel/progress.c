#include "kernel/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kl_progress_bytes(int64_t bytes, char *buf, size_t len) {
    static const char *units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    if (bytes < 1024) {
        snprintf(buf, len, "%lld B", (long long)(bytes < 0 ? 0 : bytes));
        return;
    }
    double v = (double)bytes / 1024.0;
    size_t u = 0;
    /* 1023.96 KiB would print as "1024.0 KiB": move up a unit before rounding does. */
    while (v >= 1023.95 && u + 1 < sizeof units / sizeof *units) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, len, "%.1f %s", v, units[u]);
}

typedef struct totals {
    size_t done_stages;
    int64_t tasks, completed, bytes;
} totals;

static totals sum(const kl_progress_stage *st, size_t n) {
    totals t = {0};
    for (size_t i = 0; i < n; i++) {
        t.tasks += st[i].tasks;
        t.completed += st[i].completed;
        t.bytes += st[i].bytes_read;
        if (st[i].done) t.done_stages++;
    }
    return t;
}

/* The stage to name in brackets: the lowest-numbered one part-way through; otherwise the newest
 * one not done (stages ahead of it may be skipped ones that never start). NULL when none. */
static const kl_progress_stage *current(const kl_progress_stage *st, size_t n) {
    const kl_progress_stage *best = NULL;
    for (size_t i = 0; i < n; i++)
        if (!st[i].done && st[i].completed > 0 && (!best || st[i].id < best->id)) best = &st[i];
    if (best) return best;
    for (size_t i = 0; i < n; i++)
        if (!st[i].done && (!best || st[i].id > best->id)) best = &st[i];
    return best;
}

char *kl_progress_text(const kl_progress_stage *stages, size_t n, double elapsed_s,
                       kl_progress_state state) {
    totals t = sum(stages, n);
    char bytes[32];
    kl_progress_bytes(t.bytes, bytes, sizeof bytes);
    char *out = NULL;
    int rc;
    if (state == KL_PROGRESS_DONE) {
        /* The last report can be two seconds old, so its task counts are not the final ones. */
        rc = asprintf(&out, "Done: %zu stage%s, %s read, %.1f s", n, n == 1 ? "" : "s", bytes,
                      elapsed_s);
    } else {
        char head[96] = "";
        const kl_progress_stage *cur = state == KL_PROGRESS_RUNNING ? current(stages, n) : NULL;
        if (cur)
            snprintf(head, sizeof head, "[Stage %lld: %lld/%lld tasks] ", (long long)cur->id,
                     (long long)cur->completed, (long long)cur->tasks);
        else if (state == KL_PROGRESS_FAILED)
            snprintf(head, sizeof head, "Failed: ");
        else if (state == KL_PROGRESS_INTERRUPTED)
            snprintf(head, sizeof head, "Interrupted: ");
        rc = asprintf(&out, "%s%zu of %zu stage%s done, %lld/%lld tasks, %s read, %.1f s", head,
                      t.done_stages, n, n == 1 ? "" : "s", (long long)t.completed,
                      (long long)t.tasks, bytes, elapsed_s);
    }
    return rc < 0 ? NULL : out;
}

char *kl_progress_html(const kl_progress_stage *stages, size_t n, double elapsed_s,
                       kl_progress_state state) {
    char *text = kl_progress_text(stages, n, elapsed_s, state);
    if (!text) return NULL;
    totals t = sum(stages, n);
    double frac = t.tasks > 0 ? (double)t.completed / (double)t.tasks : 0.0;
    if (state == KL_PROGRESS_DONE) frac = 1.0;
    if (frac > 1.0) frac = 1.0;
    const char *color = state == KL_PROGRESS_FAILED        ? "#d9534f"
                        : state == KL_PROGRESS_INTERRUPTED ? "#f0ad4e"
                                                           : "#5b9bd5";
    /* The text is digits, letters and punctuation of our own making: nothing to escape. */
    char *out = NULL;
    int rc = asprintf(&out,
                      "<div style=\"font-family:monospace\">"
                      "<span style=\"display:inline-block;width:16em;height:0.8em;border:1px "
                      "solid #999;vertical-align:middle;margin-right:0.5em\">"
                      "<span style=\"display:block;width:%.1f%%;height:100%%;background:%s\">"
                      "</span></span>%s</div>",
                      frac * 100.0, color, text);
    free(text);
    return rc < 0 ? NULL : out;
}
