/* Fuzzes kl_sc_remote_parse. A string that parses must render (redacted) to a connection string
 * that parses back to the same endpoint, minus the redacted values; a string that does not parse
 * must leave nothing allocated and say why with the usual prefix. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spark/remote.h"

#define REDACTED "<redacted>"

static int same_str(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    kl_sc_remote r;
    char err[512];
    if (kl_sc_remote_parse(text, &r, err, sizeof err) != 0) {
        if (strncmp(err, "invalid Spark Connect remote: ", 30) != 0) abort();
        if (r.host || r.master || r.token || r.headers || r.n_headers) abort();
        free(text);
        return 0;
    }
    if (r.kind == KL_SC_KIND_URL) {
        if (!r.host || r.port < 1 || r.port > 65535 || r.max_message_size < 1) abort();
        char target[300];
        if (kl_sc_remote_target(&r, target, sizeof target) != 0) abort();
    } else if (!r.master || strncmp(r.master, "local", 5) != 0) {
        abort();
    }
    (void)kl_sc_transport_name(kl_sc_remote_transport(&r));

    size_t cap = 4 * size + 512; /* every byte may become %XX; plus fixed parts */
    char *shown = malloc(cap);
    if (kl_sc_remote_redacted(&r, shown, cap) != 0) abort();
    if (r.token && !strstr(shown, ";token=" REDACTED)) abort();

    kl_sc_remote back;
    if (kl_sc_remote_parse(shown, &back, err, sizeof err) != 0) abort();
    if (back.kind != r.kind || !same_str(back.master, r.master) || !same_str(back.host, r.host) ||
        back.port != r.port || back.host_is_ipv6 != r.host_is_ipv6 || back.use_ssl != r.use_ssl ||
        !same_str(back.user_id, r.user_id) || !same_str(back.user_agent, r.user_agent) ||
        !same_str(back.session_id, r.session_id) || back.max_message_size != r.max_message_size ||
        back.n_headers != r.n_headers || !back.token != !r.token)
        abort();
    for (size_t i = 0; i < r.n_headers; i++) {
        if (strcmp(back.headers[i].key, r.headers[i].key) != 0) abort();
        if (strcmp(back.headers[i].value, REDACTED) != 0 &&
            strcmp(back.headers[i].value, r.headers[i].value) != 0)
            abort();
    }
    kl_sc_remote_free(&back);
    kl_sc_remote_free(&r);
    free(shown);
    free(text);
    return 0;
}
