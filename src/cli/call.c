/* kindling call: a comm round trip from a script. Opens a comm, sends every message (pipelined),
 * prints the kernel's comm_msg answers as JSON lines, closes the comm. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "cli/msgpack_json.h"

static const char *CALL_USAGE =
    "Usage: kindling call --existing CONNECTION_FILE --target NAME [--open-data JSON]\n"
    "                     (--msg JSON ... | --msgs-from FILE) [--msgpack] [options]\n"
    "\n"
    "Opens a comm with target NAME (kindling.sql for SQL RPC, kindling.echo to test), sends each\n"
    "message as a comm_msg, prints the data of every comm_msg the kernel answers with as one JSON\n"
    "line on stdout, waits until each message has been answered, and closes the comm.\n"
    "\n"
    "  --existing FILE        the kernel's connection file\n"
    "  --target NAME          the comm target\n"
    "  --open-data JSON       the comm_open data (default {})\n"
    "  --msg JSON             a message's data (a JSON object); repeatable\n"
    "  --msgs-from FILE       one message per line (JSON objects; \"-\" reads stdin)\n"
    "  --msgpack              payloads travel as msgpack: each message is also packed into its\n"
    "                         first binary buffer, and answers that carry buffers are printed\n"
    "                         as their msgpack content decoded to JSON (several buffers: an\n"
    "                         array); bin values print as {\"base64\": ...}, timestamps as ISO\n"
    "                         8601 strings\n"
    "  --timeout S            wait at most S seconds for the answers (default 60)\n"
    "  --connect-timeout S    wait at most S seconds for the kernel (default 10)\n"
    "  -h, --help             this text\n"
    "\n"
    "Exit status: 0 when every message was answered, 1 when the kernel closed the comm (unknown\n"
    "target) or an answer's data has \"status\": \"error\" or an \"error\" member, 2 on a usage\n"
    "error, 3 when the kernel cannot be reached or an answer does not come in time.\n";

typedef struct call_state {
    kl_cli_session *s;
    bool msgpack;
    bool closed;     /* the kernel closed the comm */
    bool failed;     /* an answer reported an error */
    json_t *pending; /* msg_id -> {"sent", "answered", "idle": true when so} */
    size_t outstanding;
} call_state;

static bool is_error(json_t *data) {
    json_t *status = json_object_get(data, "status");
    return json_object_get(data, "error") ||
           (json_is_string(status) && strcmp(json_string_value(status), "error") == 0);
}

static void print_json(json_t *v) {
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text) puts(text);
    fflush(stdout);
    free(text);
}

/* Marks one part of a message's answer; a message is done with its answer and its idle. An
 * answer may come before its message is registered (during the send's own pump), so entries are
 * made by whichever side comes first. */
static json_t *entry(call_state *st, const char *id) {
    json_t *p = json_object_get(st->pending, id);
    if (!p) {
        p = json_object();
        json_object_set_new(st->pending, id, p);
    }
    return p;
}

static bool complete(json_t *p) {
    return json_is_true(json_object_get(p, "answered")) && json_is_true(json_object_get(p, "idle"));
}

static void mark(call_state *st, const char *parent, const char *what) {
    json_t *p = entry(st, parent);
    bool was = complete(p);
    json_object_set_new(p, what, json_true());
    if (!was && complete(p) && json_is_true(json_object_get(p, "sent"))) {
        st->outstanding--;
        if (st->outstanding == 0) kindling_client_break(st->s->c);
    }
}

static void sent(call_state *st, const char *id) {
    json_t *p = entry(st, id);
    json_object_set_new(p, "sent", json_true());
    if (!complete(p)) st->outstanding++;
}

static void on_msg(kindling_comm *comm, const kindling_msg *m, const char *data_json,
                   const kindling_buffer *buffers, size_t nbuffers, void *user) {
    (void)comm;
    call_state *st = user;
    json_t *data = json_loads(data_json, JSON_DECODE_ANY, NULL);
    if (is_error(data)) st->failed = true;
    if (st->msgpack && nbuffers > 0) {
        json_t *out = nbuffers == 1 ? NULL : json_array();
        for (size_t i = 0; i < nbuffers; i++) {
            char err[128];
            json_t *v = kl_cli_msgpack_to_json(buffers[i].data, buffers[i].len, err, sizeof err);
            if (!v) {
                fprintf(stderr, "%s: buffer %zu of an answer: %s\n", st->s->prog, i, err);
                st->failed = true;
                v = json_null();
            }
            if (out)
                json_array_append_new(out, v);
            else
                out = v;
        }
        print_json(out);
        json_decref(out);
    } else {
        print_json(data ? data : json_object());
    }
    json_decref(data);
    mark(st, kindling_msg_parent_id(m), "answered");
}

static void on_close(kindling_comm *comm, const kindling_msg *m, const char *data_json,
                     void *user) {
    (void)comm, (void)m;
    call_state *st = user;
    st->closed = true;
    fprintf(stderr, "%s: the kernel closed the comm (unknown target?)%s%s\n", st->s->prog,
            strcmp(data_json, "{}") ? ": " : "", strcmp(data_json, "{}") ? data_json : "");
    kindling_client_break(st->s->c);
}

/* IOPub: the kernel's idle for each comm_msg says it has handled it. */
static void on_iopub(kindling_client *c, const kindling_msg *m, void *user) {
    (void)c;
    call_state *st = user;
    if (strcmp(kindling_msg_type(m), "status") != 0) return;
    const char *state = kindling_msg_get(m, "content.execution_state");
    if (state && strcmp(state, "idle") == 0) mark(st, kindling_msg_parent_id(m), "idle");
}

static int add_message(json_t *msgs, const char *prog, const char *text) {
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (!json_is_object(v)) {
        fprintf(stderr, "%s: a message must be a JSON object: %s\n", prog,
                v ? "got another kind of value" : e.text);
        json_decref(v);
        return -1;
    }
    json_array_append_new(msgs, v);
    return 0;
}

static int read_messages(json_t *msgs, const char *prog, const char *path) {
    char *text = kl_cli_read_file(prog, path);
    if (!text) return -1;
    int rc = 0;
    for (char *line = strtok(text, "\n"); line && rc == 0; line = strtok(NULL, "\n")) {
        if (strspn(line, " \t\r") == strlen(line)) continue;
        rc = add_message(msgs, prog, line);
    }
    free(text);
    return rc;
}

int kl_cli_call(int argc, char **argv) {
    static const struct option longopts[] = {
        {"existing", required_argument, NULL, 'e'},
        {"target", required_argument, NULL, 'T'},
        {"open-data", required_argument, NULL, 'o'},
        {"msg", required_argument, NULL, 'm'},
        {"msgs-from", required_argument, NULL, 'M'},
        {"msgpack", no_argument, NULL, 'p'},
        {"timeout", required_argument, NULL, 't'},
        {"connect-timeout", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    const char *prog = "kindling call";
    const char *existing = NULL, *target = NULL, *open_data = "{}";
    bool msgpack = false;
    int timeout_ms = 60000, connect_ms = 10000;
    json_t *msgs = json_array();
    int rc = KL_CLI_EUSAGE, c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'e':
            existing = optarg;
            break;
        case 'T':
            target = optarg;
            break;
        case 'o':
            open_data = optarg;
            break;
        case 'm':
            if (add_message(msgs, prog, optarg) != 0) goto out;
            break;
        case 'M':
            if (read_messages(msgs, prog, optarg) != 0) goto out;
            break;
        case 'p':
            msgpack = true;
            break;
        case 't':
        case 'C': {
            int ms = kl_cli_parse_seconds(optarg);
            if (ms < 0) {
                fprintf(stderr, "%s: %s takes a number of seconds, not \"%s\"\n", prog,
                        c == 't' ? "--timeout" : "--connect-timeout", optarg);
                goto out;
            }
            *(c == 't' ? &timeout_ms : &connect_ms) = ms;
            break;
        }
        case 'h':
            fputs(CALL_USAGE, stdout);
            rc = KL_CLI_OK;
            goto out;
        default:
            fputs(CALL_USAGE, stderr);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument \"%s\"\n", prog, argv[optind]);
        goto out;
    }
    if (!existing || !target) {
        fprintf(stderr, "%s: --existing FILE and --target NAME are required\n\n%s", prog,
                CALL_USAGE);
        goto out;
    }
    json_t *od = json_loads(open_data, 0, NULL);
    bool od_ok = json_is_object(od);
    json_decref(od);
    if (!od_ok) {
        fprintf(stderr, "%s: --open-data must be a JSON object\n", prog);
        goto out;
    }

    kl_cli_session s = {0};
    call_state st = {.s = &s, .msgpack = msgpack, .pending = json_object()};
    /* on_iopub needs the state before the client exists: it goes in through the options. */
    rc = kl_cli_open(&s, prog, existing, connect_ms, 10000);
    if (rc != KL_CLI_OK) {
        json_decref(st.pending);
        goto out;
    }
    kl_cli_sigint_install(&s);
    kindling_comm_handlers h = {.on_msg = on_msg, .on_close = on_close};
    kindling_comm *comm = kindling_comm_open(s.c, target, open_data, NULL, 0, &h, &st);
    rc = KL_CLI_EKERNEL;
    if (!comm) {
        fprintf(stderr, "%s: %s\n", prog, kindling_client_last_error(s.c));
        goto done;
    }
    kl_cli_iopub_hook(&s, on_iopub, &st);
    size_t i;
    json_t *msg;
    json_array_foreach(msgs, i, msg) {
        char *text = json_dumps(msg, JSON_COMPACT);
        void *packed = NULL;
        size_t plen = 0;
        if (msgpack) packed = kl_cli_json_to_msgpack(msg, &plen);
        kindling_buffer buf = {packed, plen};
        char id[KINDLING_MSG_ID_LEN];
        int r = text ? kindling_comm_send(comm, text, packed ? &buf : NULL, packed ? 1 : 0, id)
                     : KINDLING_ENOMEM;
        free(text);
        free(packed);
        if (r != 0) {
            fprintf(stderr, "%s: %s\n", prog, kindling_client_last_error(s.c));
            goto done;
        }
        sent(&st, id);
    }
    if (json_array_size(msgs) == 0) {
        /* No message: only the open, and whatever the kernel answers to it, in a moment. */
        kindling_client_run(s.c, 500);
    }
    uint64_t deadline = uv_hrtime() / 1000000 + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = uv_hrtime() / 1000000;
        if (st.outstanding == 0 || st.closed || s.lost || now >= deadline) break;
        if (kindling_client_run(s.c, (int)(deadline - now)) != 0) break;
    }
    if (st.closed || st.failed) {
        rc = KL_CLI_ECELL;
    } else if (s.lost) {
        rc = KL_CLI_EKERNEL;
    } else if (st.outstanding > 0) {
        fprintf(stderr, "%s: %zu of %zu messages got no answer within %.1f s\n", prog,
                st.outstanding, json_array_size(msgs), timeout_ms / 1000.0);
        rc = KL_CLI_EKERNEL;
    } else {
        rc = KL_CLI_OK;
    }
    if (!st.closed) kindling_comm_close(comm, NULL);
done:
    kl_cli_close(&s);
    json_decref(st.pending);
out:
    json_decref(msgs);
    return rc;
}
