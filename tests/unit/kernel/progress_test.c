#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/progress.h"

static void expect_bytes(int64_t n, const char *want) {
    char buf[32];
    kl_progress_bytes(n, buf, sizeof buf);
    cr_expect_str_eq(buf, want, "%lld bytes", (long long)n);
}

Test(progress, bytes_in_binary_units) {
    expect_bytes(0, "0 B");
    expect_bytes(1023, "1023 B");
    expect_bytes(1024, "1.0 KiB");
    expect_bytes(47290000, "45.1 MiB");
    expect_bytes(1048575, "1.0 MiB");
    expect_bytes(3LL << 30, "3.0 GiB");
}

/* Stage 1 was skipped (its output reused), 2 is done, 3 runs, 4 waits. */
static const kl_progress_stage STAGES[] = {
    {1, 2, 0, 0, false},
    {2, 4, 4, 47290000, true},
    {3, 200, 12, 0, false},
    {4, 8, 0, 0, false},
};

Test(progress, running_line_names_the_stage_at_work) {
    char *t = kl_progress_text(STAGES, 4, 3.21, KL_PROGRESS_RUNNING);
    cr_assert_not_null(t);
    cr_expect_str_eq(
        t, "[Stage 3: 12/200 tasks] 1 of 4 stages done, 16/214 tasks, 45.1 MiB read, 3.2 s");
    free(t);
}

Test(progress, waiting_stage_is_the_newest_not_done) {
    kl_progress_stage s[] = {{0, 2, 2, 0, true}, {1, 2, 0, 0, false}, {5, 1, 0, 0, false}};
    char *t = kl_progress_text(s, 3, 0.5, KL_PROGRESS_RUNNING);
    cr_expect_str_eq(t, "[Stage 5: 0/1 tasks] 1 of 3 stages done, 2/5 tasks, 0 B read, 0.5 s");
    free(t);
}

Test(progress, final_lines) {
    char *t = kl_progress_text(STAGES, 4, 10.0, KL_PROGRESS_DONE);
    cr_expect_str_eq(t, "Done: 4 stages, 45.1 MiB read, 10.0 s");
    free(t);
    t = kl_progress_text(STAGES, 4, 1.0, KL_PROGRESS_INTERRUPTED);
    cr_expect_str_eq(t, "Interrupted: 1 of 4 stages done, 16/214 tasks, 45.1 MiB read, 1.0 s");
    free(t);
    t = kl_progress_text(NULL, 0, 1.0, KL_PROGRESS_FAILED);
    cr_expect_str_eq(t, "Failed: 0 of 0 stages done, 0/0 tasks, 0 B read, 1.0 s");
    free(t);
}

Test(progress, html_bar_width_follows_tasks) {
    kl_progress_stage s[] = {{0, 4, 1, 0, false}};
    char *h = kl_progress_html(s, 1, 1.0, KL_PROGRESS_RUNNING);
    cr_assert_not_null(h);
    cr_expect_not_null(strstr(h, "width:25.0%"), "%s", h);
    cr_expect_not_null(strstr(h, "[Stage 0: 1/4 tasks]"), "%s", h);
    free(h);
    h = kl_progress_html(s, 1, 1.0, KL_PROGRESS_DONE);
    cr_expect_not_null(strstr(h, "width:100.0%"), "%s", h);
    free(h);
}
