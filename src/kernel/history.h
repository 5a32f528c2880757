/* Execution history in an SQLite file with IPython's schema (sessions, history, output_history),
 * so it survives restarts. Calls block on disk: run them on the worker pool, never on the loop.
 * One kl_history may be used from several threads (SQLite serialises). */
#ifndef KL_KERNEL_HISTORY_H
#define KL_KERNEL_HISTORY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct kl_history kl_history;

/* Opens or creates the database at path (":memory:" for none on disk); creates parent directories.
 * NULL with a message in err on failure. */
kl_history *kl_history_open(const char *path, char *err, size_t errlen);
void kl_history_close(kl_history *h);

/* Starts a new history session (one per client connection) owned by the client's user, its number
 * in *session. The owner is user (the request header's username); a client that sends an empty
 * username owns the session by its client session id alone, so anonymous clients never pool their
 * history. The owner is kept in the sessions table's remark column ("kindling:user=NAME" or
 * "kindling:session=ID"), so the file keeps IPython's schema. */
int kl_history_session_begin(kl_history *h, const char *user, const char *client_session,
                             int64_t *session);
int kl_history_session_end(kl_history *h, int64_t session, int num_cmds);
/* Stores one input (and its text/plain output, or NULL), both passed through
 * kl_history_redact first. 0 or -1. */
int kl_history_store(kl_history *h, int64_t session, int line, const char *source,
                     const char *output);

/* A copy of text with credentials blanked out: the value after any key ending in "token" and
 * followed by '=' or ':' (token=..., SPARK_CONNECT_AUTHENTICATE_TOKEN=...) and after "Bearer ",
 * up to a blank, ';', '&', ',' or the end (or the closing quote of a quoted value), reads
 * "<redacted>". History keeps what cells said, never a secret typed into one. malloc'd; NULL when
 * out of memory. */
char *kl_history_redact(const char *text);

/* Which sessions a query sees: those with the same owner as session current (its own among
 * them), or every session in the file when all is set (--shared-session). Sessions without an
 * owner (written before owners were recorded, or by IPython) are seen only with all. current 0
 * (no session) sees nothing unless all. */
typedef struct kl_history_view {
    int64_t current;
    bool all;
} kl_history_view;

/* Each returns a new JSON array of [session, line, input] triples, or [session, line,
 * [input, output]] when output is true (output null when none); NULL on error. Entries come
 * oldest first, from sessions v sees only. */
json_t *kl_history_tail(kl_history *h, kl_history_view v, int n, bool output);
/* session <= 0 counts back from v.current (0 = current, -1 the session before): among the
 * sessions v sees, or by number with all (as IPython). A positive session v does not see gives
 * nothing. stop <= 0: to the end of the session. */
json_t *kl_history_range(kl_history *h, kl_history_view v, int64_t session, int start, int stop,
                         bool output);
/* pattern is an SQLite GLOB (as IPython's); n <= 0 for all; unique drops repeated inputs keeping
 * the newest. */
json_t *kl_history_search(kl_history *h, kl_history_view v, const char *pattern, int n, bool unique,
                          bool output);

#endif
