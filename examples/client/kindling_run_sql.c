/* kindling_run_sql: runs SQL on a running Kindling kernel with libkindling-client's blocking API
 * and prints the result tables.
 *
 *   cc kindling_run_sql.c $(pkg-config --cflags --libs kindling-client libuv) -o kindling_run_sql
 *   ./kindling_run_sql ~/.local/share/jupyter/runtime/kernel-1234.json "SELECT 1 AS one"
 *
 * Exit status 0 on success, 1 when the SQL failed, 2 when the kernel could not be reached. */
#include <kindling/client.h>
#include <stdio.h>
#include <string.h>

static void on_stream(kindling_client *c, const kindling_msg *m, const char *name, const char *text,
                      void *user) {
    (void)c, (void)m, (void)user;
    fputs(text, strcmp(name, "stderr") == 0 ? stderr : stdout);
}

/* A SQL result arrives as an execute_result (or display_data for all but the last statement)
 * with text/plain, text/html and a data-resource JSON; the text is Spark's show() table. */
static void on_result(kindling_client *c, const kindling_msg *m, int execution_count,
                      const kindling_bundle *data, void *user) {
    (void)c, (void)m, (void)execution_count, (void)user;
    const char *table = kindling_bundle_get(data, "text/plain");
    if (table) printf("%s\n", table);
}

static void on_display(kindling_client *c, const kindling_msg *m, const kindling_bundle *data,
                       const char *display_id, bool update, void *user) {
    (void)display_id, (void)update;
    on_result(c, m, 0, data, user);
}

static void on_error(kindling_client *c, const kindling_msg *m, const char *ename,
                     const char *evalue, const char *const *traceback, size_t n, void *user) {
    (void)c, (void)m, (void)traceback, (void)n, (void)user;
    fprintf(stderr, "%s: %s\n", ename, evalue);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s CONNECTION_FILE SQL\n", argv[0]);
        return 2;
    }
    /* NULL loop: the client gets a private one, which the blocking calls run. */
    kindling_client *c = kindling_client_new(NULL, NULL);
    if (!c) return 2;
    if (kindling_client_connect_file(c, argv[1]) != 0 ||
        kindling_client_wait_ready(c, 10000) != 0) {
        fprintf(stderr, "%s\n", kindling_client_last_error(c));
        kindling_client_close(c);
        return 2;
    }
    kindling_execute_handlers h = {
        .on_stream = on_stream,
        .on_result = on_result,
        .on_display = on_display,
        .on_error = on_error,
    };
    kindling_msg *reply = NULL;
    int rc = kindling_client_execute_blocking(c, argv[2], NULL, &h, NULL, -1, &reply);
    if (rc == 0) {
        fprintf(stderr, "[execution %s done]\n",
                kindling_msg_get(reply, "content.execution_count"));
    } else if (rc != KINDLING_EREPLY) {
        fprintf(stderr, "%s\n", kindling_client_last_error(c));
    }
    kindling_msg_free(reply);
    kindling_client_close(c);
    return rc == 0 ? 0 : rc == KINDLING_EREPLY ? 1 : 2;
}
