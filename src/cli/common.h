/* What the client commands share: finding the connection file, a connected client, printing a
 * cell's outputs as text or JSON lines, Ctrl-C while a cell runs. */
#ifndef KL_CLI_COMMON_H
#define KL_CLI_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include "kindling/client.h"

/* Exit codes of exec/console/call. */
#define KL_CLI_OK      0
#define KL_CLI_ECELL   1 /* a cell (or comm call) failed */
#define KL_CLI_EUSAGE  2
#define KL_CLI_EKERNEL 3 /* no connection, lost heartbeat, timeout */
#define KL_CLI_EINTR   130

typedef struct kl_cli_session {
    const char *prog; /* "kindling exec", for messages */
    kindling_client *c;
    bool json;        /* one JSON object per output message */
    int cell;         /* index of the running cell, for JSON lines */
    bool quiet_input; /* input requests answered from stdin without a prompt (not a tty) */
    bool lost;        /* the heartbeat stopped */
    int hb_timeout_ms;
    /* Ctrl-C while a cell runs: first an interrupt_request, then giving up on the cell. */
    int sigint_fd;
    uv_poll_t sigint_poll;
    bool sigint_polling, sigint_made;
    int interrupts;
    /* A live display (one with a display_id, such as query progress) shown on the terminal's
     * stderr line, redrawn by its updates. */
    bool live_open;
    char live_id[64];
    void (*iopub_hook)(kindling_client *c, const kindling_msg *m, void *user);
    void *iopub_user;
} kl_cli_session;

/* The file as given, or NAME in the Jupyter runtime directory ($JUPYTER_RUNTIME_DIR, else
 * $JUPYTER_DATA_DIR/runtime, else ~/.local/share/jupyter/runtime) when NAME has no '/' and does
 * not exist here. */
void kl_cli_find_connection_file(const char *given, char *out, size_t len);

/* Connects to the kernel of the connection file and waits until it answers (timeout_ms).
 * Prints the reason and returns KL_CLI_EKERNEL on failure. */
int kl_cli_open(kl_cli_session *s, const char *prog, const char *existing, int timeout_ms,
                int hb_timeout_ms);
void kl_cli_close(kl_cli_session *s);
/* Every IOPub message goes to fn from now on. */
void kl_cli_iopub_hook(kl_cli_session *s,
                       void (*fn)(kindling_client *c, const kindling_msg *m, void *user),
                       void *user);

/* Runs one cell, printing its outputs; timeout_ms < 0 = none. KL_CLI_OK, KL_CLI_ECELL (the cell
 * failed), KL_CLI_EKERNEL (kernel lost, timeout) or KL_CLI_EINTR (Ctrl-C twice). */
int kl_cli_run_cell(kl_cli_session *s, const char *code, int timeout_ms);

/* Ctrl-C handling for the whole command: a handler that records the signal (and makes a pending
 * readline return). kl_cli_sigint_take returns whether one came since the last call. */
void kl_cli_sigint_install(kl_cli_session *s);
bool kl_cli_sigint_take(void);

/* Reads a whole file (or stdin for "-") into a malloc'd NUL-terminated string; NULL and a
 * message on stderr on failure. */
char *kl_cli_read_file(const char *prog, const char *path);
/* Parses seconds ("2.5") into milliseconds; -1 when not a positive number. */
int kl_cli_parse_seconds(const char *s);

#endif
