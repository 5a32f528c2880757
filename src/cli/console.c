/* kindling console: an interactive session on a running kernel, with libedit for line editing
 * and history. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <editline/readline.h>
#include <jansson.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "runtime/dynlib.h"

/* libedit is bound when the console starts (runtime/dynlib.h): the same binary is the kernel,
 * which never reads a terminal and would otherwise load libedit and its terminfo at every start.
 * Its variables are reached through RL(), its functions through EL(). */
#define EDITLINE_FUNCS(X)                                                                          \
    X(readline)                                                                                    \
    X(using_history)                                                                               \
    X(stifle_history)                                                                              \
    X(read_history)                                                                                \
    X(write_history)                                                                               \
    X(add_history)                                                                                 \
    X(rl_attempted_completion_over)                                                                \
    X(rl_line_buffer)                                                                              \
    X(rl_point)                                                                                    \
    X(rl_readline_name)                                                                            \
    X(rl_attempted_completion_function)                                                            \
    X(rl_completer_word_break_characters)

KL_DYNLIB_DEFINE(editline_lib, EDITLINE_FUNCS, KL_EDIT_SONAME, "libedit: Debian package libedit2");
#define EL(n) KL_DYNLIB_FN(editline_lib, n)
/* libedit's variable n, as an lvalue. */
#define RL(n) (*KL_DYNLIB_FN(editline_lib, n))

static const char *CONSOLE_USAGE =
    "Usage: kindling console --existing CONNECTION_FILE [options]\n"
    "\n"
    "An interactive session on a running kernel. A cell may span lines: it ends with a line\n"
    "ending in \";\" or with a blank line. A line starting with % (a line magic) runs at once; a\n"
    "cell starting with %% (a cell magic) ends with a blank line only. Ctrl-C while a cell runs\n"
    "interrupts it (twice: stop waiting for it); at the prompt it discards the cell being typed.\n"
    "Ctrl-D, \"exit\" or \"quit\" leaves (the kernel keeps running). Tab completes with the\n"
    "kernel's completions.\n"
    "\n"
    "  --existing FILE          the kernel's connection file (a bare name is also looked up in\n"
    "                           the Jupyter runtime directory)\n"
    "  --history-file PATH      line history (default ~/.local/share/kindling/console_history)\n"
    "  --no-history             keep no history file\n"
    "  --connect-timeout S      wait at most S seconds for the kernel (default 10)\n"
    "  --heartbeat-timeout S    leave when the kernel's heartbeat stops for S s (default 10)\n"
    "  -h, --help               this text\n";

#define HISTORY_MAX 2000

static kl_cli_session *completing; /* readline's completion hook has no user pointer */

static void default_history_path(char *out, size_t len) {
    const char *home = getenv("HOME");
    out[0] = 0;
    if (!home || !*home) return;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/.local/share/kindling", home);
    /* Each level may already exist; only the last mkdir's result matters. */
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s/.local", home);
    mkdir(parent, 0700);
    snprintf(parent, sizeof parent, "%s/.local/share", home);
    mkdir(parent, 0700);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) return;
    if (snprintf(out, len, "%s/console_history", dir) >= (int)len) out[0] = 0;
}

static size_t code_points(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

/* The matches of a complete_reply, NULL-terminated; NULL when there are none. */
static char **matches_of(kindling_msg *reply, size_t *count) {
    size_t n = 0;
    char path[64];
    for (;; n++) {
        snprintf(path, sizeof path, "content.matches.%zu", n);
        if (!kindling_msg_get(reply, path)) break;
    }
    *count = n;
    char **v = n ? calloc(n + 1, sizeof *v) : NULL;
    for (size_t i = 0; v && i < n; i++) {
        snprintf(path, sizeof path, "content.matches.%zu", i);
        v[i] = strdup(kindling_msg_get(reply, path));
    }
    return v;
}

/* Tab: the kernel's complete_request on the current line up to the cursor. Readline wants the
 * replacement of text first (the matches' common prefix), then the matches. */
static char **complete(const char *text, int start, int end) {
    (void)end;
    RL(rl_attempted_completion_over) = 1; /* never fall back to file names */
    kl_cli_session *s = completing;
    if (!s || !s->c) return NULL;
    char *code = strndup(RL(rl_line_buffer), (size_t)RL(rl_point));
    json_t *req =
        code ? json_pack("{s:s, s:i}", "code", code, "cursor_pos", (int)code_points(code)) : NULL;
    char *content = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    free(code);
    kindling_msg *reply = NULL;
    int rc = content ? kindling_client_request_blocking(s->c, KINDLING_SHELL, "complete_request",
                                                        content, 5000, &reply)
                     : KINDLING_ENOMEM;
    free(content);
    const char *cs = rc == 0 ? kindling_msg_get(reply, "content.cursor_start") : NULL;
    /* Only when the kernel replaces exactly the word readline completes (ASCII offsets). */
    size_t n = 0;
    char **m = cs && atoi(cs) == start ? matches_of(reply, &n) : NULL;
    kindling_msg_free(reply);
    if (!m) return NULL;
    char **out = calloc(n + 2, sizeof *out);
    if (!out) {
        for (size_t i = 0; i < n; i++) free(m[i]);
        free(m);
        return NULL;
    }
    size_t common = strlen(m[0]);
    for (size_t i = 1; i < n; i++) {
        size_t k = 0;
        while (k < common && m[i][k] == m[0][k]) k++;
        common = k;
    }
    out[0] = common >= strlen(text) ? strndup(m[0], common) : strdup(text);
    if (n == 1) {
        free(m[0]);
    } else {
        for (size_t i = 0; i < n; i++) out[i + 1] = m[i];
    }
    free(m);
    return out;
}

static bool ends_cell(const char *cell, const char *line) {
    size_t n = strlen(line);
    while (n && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r')) n--;
    if (n == 0) return true; /* a blank line */
    const char *p = cell + strspn(cell, " \t\r\n");
    if (strncmp(p, "%%", 2) == 0) return false; /* cell magics end with a blank line only */
    return line[n - 1] == ';';
}

static int append(char **cell, size_t *len, const char *line) {
    size_t add = strlen(line);
    char *nc = realloc(*cell, *len + add + 2);
    if (!nc) return -1;
    memcpy(nc + *len, line, add);
    *len += add;
    nc[(*len)++] = '\n';
    nc[*len] = 0;
    *cell = nc;
    return 0;
}

int kl_cli_console(int argc, char **argv) {
    static const struct option longopts[] = {
        {"existing", required_argument, NULL, 'e'},
        {"history-file", required_argument, NULL, 'H'},
        {"no-history", no_argument, NULL, 'N'},
        {"connect-timeout", required_argument, NULL, 'C'},
        {"heartbeat-timeout", required_argument, NULL, 'B'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    const char *prog = "kindling console";
    const char *existing = NULL, *history = NULL;
    bool no_history = false;
    int connect_ms = 10000, hb_ms = 10000, c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'e':
            existing = optarg;
            break;
        case 'H':
            history = optarg;
            break;
        case 'N':
            no_history = true;
            break;
        case 'C':
        case 'B': {
            int ms = kl_cli_parse_seconds(optarg);
            if (ms < 0) {
                fprintf(stderr, "%s: %s takes a number of seconds, not \"%s\"\n", prog,
                        c == 'C' ? "--connect-timeout" : "--heartbeat-timeout", optarg);
                return KL_CLI_EUSAGE;
            }
            *(c == 'C' ? &connect_ms : &hb_ms) = ms;
            break;
        }
        case 'h':
            fputs(CONSOLE_USAGE, stdout);
            return KL_CLI_OK;
        default:
            fputs(CONSOLE_USAGE, stderr);
            return KL_CLI_EUSAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument \"%s\"\n", prog, argv[optind]);
        return KL_CLI_EUSAGE;
    }
    if (!existing) {
        fprintf(stderr, "%s: --existing CONNECTION_FILE is required\n\n%s", prog, CONSOLE_USAGE);
        return KL_CLI_EUSAGE;
    }

    char why[512];
    if (kl_dynlib_load(&editline_lib, why, sizeof why) != 0) {
        fprintf(stderr, "%s: %s\n", prog, why);
        return KL_CLI_EUSAGE;
    }
    kl_cli_session s = {0};
    int rc = kl_cli_open(&s, prog, existing, connect_ms, hb_ms);
    if (rc != KL_CLI_OK) return rc;
    kl_cli_sigint_install(&s);

    kindling_msg *info = NULL;
    if (kindling_client_request_blocking(s.c, KINDLING_SHELL, "kernel_info_request", NULL, 10000,
                                         &info) == 0) {
        const char *banner = kindling_msg_get(info, "content.banner");
        if (banner && *banner) printf("%s\n", banner);
    }
    kindling_msg_free(info);
    printf("Cells end with \";\" or a blank line; Ctrl-D leaves.\n");
    fflush(stdout);

    char history_path[PATH_MAX];
    if (no_history)
        history_path[0] = 0;
    else if (history)
        snprintf(history_path, sizeof history_path, "%s", history);
    else
        default_history_path(history_path, sizeof history_path);
    RL(rl_readline_name) = "kindling";
    EL(using_history)();
    EL(stifle_history)(HISTORY_MAX);
    if (*history_path) EL(read_history)(history_path);
    completing = &s;
    RL(rl_attempted_completion_function) = complete;
    RL(rl_completer_word_break_characters) = " \t\n;,()=<>'\"";

    int count = 1;
    char *cell = NULL;
    size_t len = 0;
    rc = KL_CLI_OK;
    for (;;) {
        char prompt[32];
        if (len == 0)
            snprintf(prompt, sizeof prompt, "In [%d]: ", count);
        else
            snprintf(prompt, sizeof prompt, "%*s: ", (int)snprintf(NULL, 0, "In [%d]", count),
                     "...");
        kl_cli_sigint_take();
        char *line = EL(readline)(prompt);
        if (!line) {
            if (kl_cli_sigint_take()) {
                /* Ctrl-C at the prompt: drop what was typed, keep going. */
                fputs("^C\n", stdout);
                free(cell);
                cell = NULL;
                len = 0;
                continue;
            }
            fputc('\n', stdout);
            break; /* Ctrl-D */
        }
        if (len == 0) {
            const char *p = line + strspn(line, " \t");
            if (!*p) {
                free(line);
                continue;
            }
            if (strcmp(p, "exit") == 0 || strcmp(p, "quit") == 0) {
                free(line);
                break;
            }
        }
        if (append(&cell, &len, line) != 0) {
            free(line);
            break;
        }
        const char *start = cell + strspn(cell, " \t");
        bool line_magic = len > 0 && start[0] == '%' && start[1] != '%';
        bool run = line_magic || ends_cell(cell, line);
        free(line);
        if (!run) continue;
        /* The cell without its trailing newlines, as one history entry. */
        while (len && (cell[len - 1] == '\n' || cell[len - 1] == ' ')) cell[--len] = 0;
        EL(add_history)(cell);
        int r = kl_cli_run_cell(&s, cell, -1);
        free(cell);
        cell = NULL;
        len = 0;
        count++;
        if (r == KL_CLI_EKERNEL && s.lost) {
            rc = KL_CLI_EKERNEL;
            break;
        }
    }
    free(cell);
    if (*history_path) EL(write_history)(history_path);
    completing = NULL;
    kl_cli_close(&s);
    return rc;
}
