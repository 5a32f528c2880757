/* What the live progress display of a running query says: Spark's ExecutionProgress (stages with
 * their tasks, bytes read, done flags) as one line of text and a small HTML bar. Pure functions,
 * any thread; the SQL module publishes the results. */
#ifndef KL_KERNEL_PROGRESS_H
#define KL_KERNEL_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Updates reach the client at most this often (4 a second). */
#define KL_PROGRESS_MIN_INTERVAL_MS 250
/* A statement shows a display only once it has run this long, so quick ones never flash one. */
#define KL_PROGRESS_FIRST_AFTER_MS 500

typedef struct kl_progress_stage {
    int64_t id, tasks, completed, bytes_read;
    bool done;
} kl_progress_stage;

typedef enum {
    KL_PROGRESS_RUNNING,
    KL_PROGRESS_DONE,
    KL_PROGRESS_FAILED,
    KL_PROGRESS_INTERRUPTED,
} kl_progress_state;

/* "45.1 MiB", "512 B": binary units, one decimal above bytes. */
void kl_progress_bytes(int64_t bytes, char *buf, size_t len);

/* One line, e.g. "[Stage 3: 12/200 tasks] 2 of 3 stages done, 16/214 tasks, 45.1 MiB read,
 * 3.2 s" while running (the stage named is the lowest one part-way through, else the newest one
 * waiting: Spark lists stages whose output it reuses as never done), "Done: 3 stages, 45.1 MiB
 * read, 3.2 s" at the end, "Failed: ..." / "Interrupted: ..." with the counts when stopped.
 * malloc'd; NULL when out of memory. */
char *kl_progress_text(const kl_progress_stage *stages, size_t n, double elapsed_s,
                       kl_progress_state state);
/* The same line after a bar of the fraction of tasks done, as an HTML fragment (malloc'd). */
char *kl_progress_html(const kl_progress_stage *stages, size_t n, double elapsed_s,
                       kl_progress_state state);

#endif
