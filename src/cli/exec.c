/* kindling exec: runs cells on a running kernel and prints their outputs. */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/common.h"

static const char *EXEC_USAGE =
    "Usage: kindling exec --existing CONNECTION_FILE (-c TEXT ... | --file F) [options]\n"
    "\n"
    "Runs cells on a running kernel (any Jupyter kernel) and prints their outputs: streams as\n"
    "they are, results and displays as text/plain (tables as text), errors on stderr. Stops at\n"
    "the first failing cell.\n"
    "\n"
    "  --existing FILE          the kernel's connection file (a bare name is also looked up in\n"
    "                           the Jupyter runtime directory)\n"
    "  -c, --code TEXT          a cell to run; repeatable, one cell each\n"
    "  -f, --file F             run the cells of file F (\"-\" reads stdin). Lines \"-- %%\" (a\n"
    "                           SQL comment, optionally followed by a title) separate cells;\n"
    "                           without any, the whole file is one cell\n"
    "      --one-cell           run the file as one cell even if it has \"-- %%\" lines\n"
    "      --keep-going         run the remaining cells after a failing one\n"
    "      --format text|json   text (default), or one JSON object per output message:\n"
    "                           {\"cell\": N, \"msg_type\": ..., \"content\": {...}}, the\n"
    "                           execute_reply last\n"
    "      --timeout S          give each cell at most S seconds, then interrupt it\n"
    "      --connect-timeout S  wait at most S seconds for the kernel (default 10)\n"
    "      --heartbeat-timeout S  give up when the kernel's heartbeat stops for S s "
    "(default 10)\n"
    "  -h, --help               this text\n"
    "\n"
    "Exit status: 0 when every cell succeeded, 1 when a cell failed, 2 on a usage error, 3 when\n"
    "the kernel cannot be reached, stops answering or a cell times out, 130 after Ctrl-C twice\n"
    "(the first Ctrl-C interrupts the running cell).\n";

typedef struct cells {
    char **v;
    size_t n, cap;
} cells;

static int cells_add(cells *cs, const char *text, size_t len) {
    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? cs->cap * 2 : 8;
        char **v = realloc(cs->v, cap * sizeof *v);
        if (!v) return -1;
        cs->v = v;
        cs->cap = cap;
    }
    char *copy = strndup(text, len);
    if (!copy) return -1;
    cs->v[cs->n++] = copy;
    return 0;
}

static bool blank(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)s[i])) return false;
    return true;
}

/* A cell separator: "-- %%", alone or followed by white space and a title. */
static bool separator(const char *line, size_t len) {
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
    if (len - i < 2 || strncmp(line + i, "--", 2) != 0) return false;
    i += 2;
    while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
    if (len - i < 2 || strncmp(line + i, "%%", 2) != 0) return false;
    i += 2;
    return i == len || isspace((unsigned char)line[i]);
}

/* Splits text at separator lines; blank cells are dropped. */
static int split_cells(cells *cs, const char *text) {
    const char *start = text, *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        size_t body = len && p[len - 1] == '\r' ? len - 1 : len;
        if (separator(p, body)) {
            if (!blank(start, (size_t)(p - start)) && cells_add(cs, start, (size_t)(p - start)))
                return -1;
            start = eol ? eol + 1 : p + len;
        }
        p = eol ? eol + 1 : p + len;
    }
    if (!blank(start, strlen(start)) && cells_add(cs, start, strlen(start))) return -1;
    return 0;
}

int kl_cli_exec(int argc, char **argv) {
    static const struct option longopts[] = {
        {"existing", required_argument, NULL, 'e'},
        {"code", required_argument, NULL, 'c'},
        {"file", required_argument, NULL, 'f'},
        {"one-cell", no_argument, NULL, '1'},
        {"keep-going", no_argument, NULL, 'k'},
        {"format", required_argument, NULL, 'F'},
        {"timeout", required_argument, NULL, 't'},
        {"connect-timeout", required_argument, NULL, 'C'},
        {"heartbeat-timeout", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    const char *prog = "kindling exec";
    const char *existing = NULL, *file = NULL;
    bool one_cell = false, keep_going = false, json = false;
    int timeout_ms = -1, connect_ms = 10000, hb_ms = 10000;
    cells cs = {0};
    int rc = KL_CLI_EUSAGE, c;
    while ((c = getopt_long(argc, argv, "c:f:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'e':
            existing = optarg;
            break;
        case 'c':
            if (cells_add(&cs, optarg, strlen(optarg)) != 0) goto out;
            break;
        case 'f':
            file = optarg;
            break;
        case '1':
            one_cell = true;
            break;
        case 'k':
            keep_going = true;
            break;
        case 'F':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0) {
                fprintf(stderr, "%s: --format takes text or json, not \"%s\"\n", prog, optarg);
                goto out;
            }
            json = strcmp(optarg, "json") == 0;
            break;
        case 't':
        case 'C':
        case 'H': {
            int ms = kl_cli_parse_seconds(optarg);
            if (ms < 0) {
                fprintf(stderr, "%s: %s takes a number of seconds, not \"%s\"\n", prog,
                        c == 't'   ? "--timeout"
                        : c == 'C' ? "--connect-timeout"
                                   : "--heartbeat-timeout",
                        optarg);
                goto out;
            }
            *(c == 't' ? &timeout_ms : c == 'C' ? &connect_ms : &hb_ms) = ms;
            break;
        }
        case 'h':
            fputs(EXEC_USAGE, stdout);
            rc = KL_CLI_OK;
            goto out;
        default:
            fputs(EXEC_USAGE, stderr);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument \"%s\"\n", prog, argv[optind]);
        goto out;
    }
    if (!existing) {
        fprintf(stderr, "%s: --existing CONNECTION_FILE is required\n\n%s", prog, EXEC_USAGE);
        goto out;
    }
    if (file && cs.n) {
        fprintf(stderr, "%s: give -c or --file, not both\n", prog);
        goto out;
    }
    if (file) {
        char *text = kl_cli_read_file(prog, file);
        if (!text) {
            rc = KL_CLI_EUSAGE;
            goto out;
        }
        int r = one_cell ? (blank(text, strlen(text)) ? 0 : cells_add(&cs, text, strlen(text)))
                         : split_cells(&cs, text);
        free(text);
        if (r != 0) {
            fprintf(stderr, "%s: out of memory\n", prog);
            goto out;
        }
        if (cs.n == 0) {
            rc = KL_CLI_OK; /* nothing to run */
            goto out;
        }
    }
    if (cs.n == 0) {
        fprintf(stderr, "%s: nothing to run: give -c TEXT or --file F\n", prog);
        goto out;
    }

    kl_cli_session s = {0};
    s.json = json;
    s.quiet_input = !isatty(STDIN_FILENO);
    rc = kl_cli_open(&s, prog, existing, connect_ms, hb_ms);
    if (rc != KL_CLI_OK) goto out;
    kl_cli_sigint_install(&s);
    for (size_t i = 0; i < cs.n; i++) {
        s.cell = (int)i;
        int r = kl_cli_run_cell(&s, cs.v[i], timeout_ms);
        if (r > rc) rc = r;
        if (r == KL_CLI_ECELL && keep_going) continue;
        if (r != KL_CLI_OK) break;
    }
    kl_cli_close(&s);
out:
    for (size_t i = 0; i < cs.n; i++) free(cs.v[i]);
    free(cs.v);
    return rc;
}
