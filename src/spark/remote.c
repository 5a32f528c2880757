/* Spark Connect connection strings (sc://host:port/;key=value), following the client connection
 * string spec and the behaviour of the official PySpark and Scala clients. */
#include "spark/remote.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ERR_PREFIX "invalid Spark Connect remote: "

/* PySpark rejects a user_agent longer than this (after percent-encoding; we count it decoded). */
#define USER_AGENT_MAX 2048
#define HOST_MAX       253

static const char *const known_keys[] = {"token",      "use_ssl",    "user_id",
                                         "user_agent", "session_id", "grpc_max_message_size"};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        int n = snprintf(err, errlen, "%s", ERR_PREFIX);
        if (n >= 0 && (size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

void kl_sc_remote_free(kl_sc_remote *r) {
    if (!r) return;
    if (r->token) {
        memset(r->token, 0, strlen(r->token));
        free(r->token);
    }
    free(r->master);
    free(r->host);
    free(r->user_id);
    free(r->user_agent);
    free(r->session_id);
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->headers[i].key);
        free(r->headers[i].value);
    }
    free(r->headers);
    memset(r, 0, sizeof *r);
}

static void defaults(kl_sc_remote *r) {
    memset(r, 0, sizeof *r);
    r->kind = KL_SC_KIND_URL;
    r->source = KL_SC_FROM_OPTION;
    r->port = KL_SC_DEFAULT_PORT;
    r->use_ssl = -1;
    r->max_message_size = KL_SC_DEFAULT_MAX_MESSAGE_SIZE;
}

static char *dup_n(const char *s, size_t n) {
    char *out = malloc(n + 1);
    if (!out) abort();
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

/* ---- "local" ------------------------------------------------------------------------------- */

static bool all_digits(const char *s, size_t n) {
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return false;
    return true;
}

/* local, local[N], local[*], local[N,F], local[*,F]: Spark's local master strings. */
static bool valid_local_master(const char *s, size_t n) {
    if (n == 5) return true;
    if (n < 8 || s[5] != '[' || s[n - 1] != ']') return false;
    const char *in = s + 6;
    size_t in_n = n - 7;
    const char *comma = memchr(in, ',', in_n);
    size_t threads_n = comma ? (size_t)(comma - in) : in_n;
    bool threads_ok = (threads_n == 1 && in[0] == '*') || all_digits(in, threads_n);
    if (!threads_ok) return false;
    return !comma || all_digits(comma + 1, in_n - threads_n - 1);
}

static int parse_local(const char *s, size_t n, kl_sc_remote *out, char *err, size_t errlen) {
    if (!valid_local_master(s, n))
        return fail(err, errlen, "'%.*s' is not local, local[N] or local[*]", (int)n, s);
    out->kind = KL_SC_KIND_LOCAL;
    out->master = dup_n(s, n);
    /* Any case is accepted, but Spark's master parser wants "local" in lower case. */
    for (size_t i = 0; i < 5; i++) out->master[i] = (char)tolower((unsigned char)out->master[i]);
    return 0;
}

/* ---- Authority ------------------------------------------------------------------------------ */

static bool host_char(char c) {
    return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

static int parse_port(const char *s, size_t n, kl_sc_remote *out, char *err, size_t errlen) {
    if (n == 0) return fail(err, errlen, "the port after ':' is empty");
    long v = 0;
    for (size_t i = 0; i < n && i < 6 && isdigit((unsigned char)s[i]); i++)
        v = v * 10 + (s[i] - '0');
    if (n > 5 || !all_digits(s, n) || v < 1 || v > 65535)
        return fail(err, errlen, "port '%.*s' is not a number from 1 to 65535", (int)n, s);
    out->port = (int)v;
    return 0;
}

static int parse_authority(const char *s, size_t n, kl_sc_remote *out, char *err, size_t errlen) {
    if (memchr(s, '@', n))
        return fail(err, errlen,
                    "user info before '@' is not supported: pass ;user_id=... or ;token=...");
    if (n == 0) return fail(err, errlen, "no host after sc://");
    const char *port = NULL;
    size_t host_n;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close) return fail(err, errlen, "IPv6 address '%.*s' lacks its ']'", (int)n, s);
        host_n = (size_t)(close - s) - 1;
        char addr[INET6_ADDRSTRLEN + 1];
        struct in6_addr tmp;
        if (host_n == 0 || host_n >= sizeof addr)
            return fail(err, errlen, "'%.*s' is not an IPv6 address", (int)(host_n + 2), s);
        memcpy(addr, s + 1, host_n);
        addr[host_n] = '\0';
        if (inet_pton(AF_INET6, addr, &tmp) != 1)
            return fail(err, errlen, "'[%s]' is not an IPv6 address", addr);
        const char *after = close + 1;
        size_t rest = n - (size_t)(after - s);
        if (rest > 0) {
            if (*after != ':')
                return fail(err, errlen, "unexpected '%.*s' after the IPv6 address", (int)rest,
                            after);
            port = after + 1;
        }
        out->host = dup_n(s + 1, host_n);
        out->host_is_ipv6 = true;
    } else {
        const char *colon = memchr(s, ':', n);
        host_n = colon ? (size_t)(colon - s) : n;
        if (colon && memchr(colon + 1, ':', n - host_n - 1))
            return fail(err, errlen,
                        "'%.*s' has more than one ':' (write an IPv6 address as [addr]:port)",
                        (int)n, s);
        if (host_n == 0) return fail(err, errlen, "no host before the port in '%.*s'", (int)n, s);
        if (host_n > HOST_MAX)
            return fail(err, errlen, "host name is longer than %d characters", HOST_MAX);
        for (size_t i = 0; i < host_n; i++)
            if (!host_char(s[i]))
                return fail(err, errlen,
                            "host '%.*s' contains '%c'; allowed are letters, digits, "
                            "'-', '.' and '_'",
                            (int)host_n, s, s[i]);
        if (colon) port = colon + 1;
        out->host = dup_n(s, host_n);
    }
    if (port) return parse_port(port, n - (size_t)(port - s), out, err, errlen);
    return 0;
}

/* ---- Parameters ----------------------------------------------------------------------------- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes a value. The key names the parameter in errors; a token's text is never
 * echoed, only the broken escape. */
static char *decode_value(const char *key, const char *s, size_t n, char *err, size_t errlen) {
    char *out = malloc(n + 1), *o = out;
    if (!out) abort();
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int hi = i + 1 < n ? hexval(s[i + 1]) : -1;
        int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            int shown = (int)(n - i < 3 ? n - i : 3);
            fail(err, errlen, "value of '%s' has a bad percent-escape '%.*s'", key, shown, s + i);
            free(out);
            return NULL;
        }
        if (hi == 0 && lo == 0) {
            fail(err, errlen, "value of '%s' contains %%00 (a NUL byte)", key);
            free(out);
            return NULL;
        }
        *o++ = (char)(hi << 4 | lo);
        i += 2;
    }
    *o = '\0';
    return out;
}

static bool is_uuid(const char *s) {
    static const int groups[] = {8, 4, 4, 4, 12};
    for (int g = 0; g < 5; g++) {
        for (int i = 0; i < groups[g]; i++, s++)
            if (!isxdigit((unsigned char)*s)) return false;
        if (g < 4 && *s++ != '-') return false;
    }
    return *s == '\0';
}

/* gRPC header names: lower-case letters, digits, '-', '_', '.'. */
static bool legal_header_name(const char *k) {
    if (!*k) return false;
    for (; *k; k++)
        if (!(islower((unsigned char)*k) || isdigit((unsigned char)*k) || *k == '-' || *k == '_' ||
              *k == '.'))
            return false;
    return true;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int add_header(kl_sc_remote *out, char *key, char *value, char *err, size_t errlen) {
    const char *known = NULL;
    for (size_t i = 0; i < sizeof known_keys / sizeof known_keys[0]; i++)
        if (strcasecmp(key, known_keys[i]) == 0) known = known_keys[i];
    int rc = 0;
    if (!legal_header_name(key)) {
        if (known)
            rc = fail(err, errlen,
                      "unknown parameter '%s' (keys are case-sensitive): did you "
                      "mean '%s'?",
                      key, known);
        else
            rc = fail(err, errlen,
                      "parameter '%s' would be sent as gRPC metadata, but it is not a "
                      "legal header name (lower-case letters, digits, '-', '_', '.')",
                      key);
    } else if (strncmp(key, "grpc-", 5) == 0) {
        rc = fail(err, errlen, "metadata key '%s' is reserved for gRPC itself", key);
    } else if (!ends_with(key, "-bin")) {
        /* Only "-bin" headers may carry arbitrary bytes; others must be printable ASCII. */
        for (const unsigned char *v = (const unsigned char *)value; *v; v++)
            if (*v < 0x20 || *v > 0x7e) {
                rc = fail(err, errlen,
                          "value of metadata '%s' has byte 0x%02x; only printable "
                          "ASCII is allowed unless the key ends in -bin",
                          key, *v);
                break;
            }
    }
    if (rc) {
        free(key);
        free(value);
        return rc;
    }
    kl_sc_header *grown = realloc(out->headers, (out->n_headers + 1) * sizeof *grown);
    if (!grown) abort();
    out->headers = grown;
    out->headers[out->n_headers++] = (kl_sc_header){key, value};
    return 0;
}

static bool seen_before(const kl_sc_remote *out, const char *key, unsigned known_seen) {
    for (size_t i = 0; i < sizeof known_keys / sizeof known_keys[0]; i++)
        if (strcmp(key, known_keys[i]) == 0) return known_seen & (1u << i);
    for (size_t i = 0; i < out->n_headers; i++)
        if (strcmp(out->headers[i].key, key) == 0) return true;
    return false;
}

/* Takes ownership of key and value. */
static int set_param(kl_sc_remote *out, char *key, char *value, unsigned *known_seen, char *err,
                     size_t errlen) {
    if (seen_before(out, key, *known_seen)) {
        fail(err, errlen, "parameter '%s' is given twice", key);
        goto bad;
    }
    size_t idx = 0;
    while (idx < sizeof known_keys / sizeof known_keys[0] && strcmp(key, known_keys[idx]) != 0)
        idx++;
    if (idx == sizeof known_keys / sizeof known_keys[0])
        return add_header(out, key, value, err, errlen);
    *known_seen |= 1u << idx;
    if (!*value) {
        fail(err, errlen, "parameter '%s' has an empty value", key);
        goto bad;
    }
    if (strcmp(key, "token") == 0) {
        /* It travels as "authorization: Bearer <token>", so header rules apply; never echo it. */
        for (const unsigned char *v = (const unsigned char *)value; *v; v++)
            if (*v < 0x20 || *v > 0x7e) {
                fail(err, errlen, "token has byte 0x%02x; it must be printable ASCII", *v);
                goto bad;
            }
        out->token = value;
    } else if (strcmp(key, "use_ssl") == 0) {
        if (strcasecmp(value, "true") == 0)
            out->use_ssl = 1;
        else if (strcasecmp(value, "false") == 0)
            out->use_ssl = 0;
        else {
            fail(err, errlen, "use_ssl must be true or false, not '%s'", value);
            goto bad;
        }
        free(value);
    } else if (strcmp(key, "user_id") == 0) {
        out->user_id = value;
    } else if (strcmp(key, "user_agent") == 0) {
        if (strlen(value) > USER_AGENT_MAX) {
            fail(err, errlen, "user_agent is longer than %d characters", USER_AGENT_MAX);
            goto bad;
        }
        out->user_agent = value;
    } else if (strcmp(key, "session_id") == 0) {
        if (!is_uuid(value)) {
            fail(err, errlen,
                 "session_id '%s' is not a UUID like "
                 "550e8400-e29b-41d4-a716-446655440000",
                 value);
            goto bad;
        }
        out->session_id = value;
    } else { /* grpc_max_message_size */
        errno = 0;
        char *end;
        long long v = strtoll(value, &end, 10);
        if (!isdigit((unsigned char)value[0]) || *end || errno || v < 1 || v > INT_MAX) {
            fail(err, errlen, "grpc_max_message_size '%s' is not a byte count from 1 to %d", value,
                 INT_MAX);
            goto bad;
        }
        out->max_message_size = (int)v;
        free(value);
    }
    free(key);
    return 0;
bad:
    free(key);
    free(value);
    return -1;
}

/* params is the text after "/;": key=value pairs separated by ';'. Empty pairs (";;", a trailing
 * ';') are skipped as the Scala client does. A value may hold '=' (base64 tokens end in it): only
 * the first '=' splits. */
static int parse_params(const char *s, kl_sc_remote *out, char *err, size_t errlen) {
    unsigned known_seen = 0;
    while (*s) {
        const char *end = strchr(s, ';');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        if (n > 0) {
            const char *eq = memchr(s, '=', n);
            if (!eq)
                return fail(err, errlen, "parameter '%.*s' has no '=' (expected key=value)", (int)n,
                            s);
            if (eq == s) return fail(err, errlen, "parameter '%.*s' has an empty key", (int)n, s);
            char *key = dup_n(s, (size_t)(eq - s));
            for (const char *k = key; *k; k++)
                if (*k == '%') {
                    fail(err, errlen, "key '%s' must not be percent-encoded", key);
                    free(key);
                    return -1;
                }
            char *value = decode_value(key, eq + 1, n - (size_t)(eq - s) - 1, err, errlen);
            if (!value) {
                free(key);
                return -1;
            }
            if (set_param(out, key, value, &known_seen, err, errlen)) return -1;
        }
        s += n;
        if (*s == ';') s++;
    }
    for (size_t i = 0; out->token && i < out->n_headers; i++)
        if (strcmp(out->headers[i].key, "authorization") == 0)
            return fail(err, errlen,
                        "both token and authorization are given; the token is sent "
                        "as the authorization header, so pass only one");
    return 0;
}

/* ---- The whole string ----------------------------------------------------------------------- */

/* Quotes at most the part of a URL before its parameters, which may hold a token. */
static int before_params(const char *s) {
    const char *semi = strchr(s, ';');
    size_t n = semi ? (size_t)(semi - s) : strlen(s);
    return n > 200 ? 200 : (int)n;
}

static int parse_url(const char *s, kl_sc_remote *out, char *err, size_t errlen) {
    /* A scheme is letters, digits, '+', '-', '.' before "://" (RFC 3986); "://" found later, say
     * inside a parameter value, does not make one. */
    size_t scheme_n =
        strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");
    const char *sep = strncmp(s + scheme_n, "://", 3) == 0 && scheme_n > 0 ? s + scheme_n : NULL;
    if (!sep) {
        if (strncasecmp(s, "local", 5) == 0 && (s[5] == '\0' || s[5] == '['))
            return parse_local(s, strlen(s), out, err, errlen);
        return fail(err, errlen, "'%.*s' has no scheme; write sc://host[:port]", before_params(s),
                    s);
    }
    /* Any case, as RFC 3986 says; PySpark and the Scala client want exactly "sc". */
    if (sep - s != 2 || strncasecmp(s, "sc", 2) != 0)
        return fail(err, errlen, "scheme '%.*s' is not sc (expected sc://host[:port]/;key=value)",
                    (int)(sep - s > 40 ? 40 : sep - s), s);
    const char *auth = sep + 3;
    size_t auth_n = strcspn(auth, "/;?#");
    if (auth[auth_n] == ';')
        return fail(err, errlen, "parameters must follow '/;' (sc://%.*s/;...)", (int)auth_n, auth);
    if (parse_authority(auth, auth_n, out, err, errlen)) return -1;
    const char *p = auth + auth_n;
    if (*p == '?' || *p == '#')
        return fail(err, errlen,
                    "'%c' (a query or fragment) is not allowed; parameters go "
                    "after '/;'",
                    *p);
    if (*p == '\0') return 0;
    p++; /* '/' */
    if (*p == '\0') return 0;
    if (*p == '?' || *p == '#')
        return fail(err, errlen,
                    "'%c' (a query or fragment) is not allowed; parameters go "
                    "after '/;'",
                    *p);
    if (*p != ';') {
        /* Shown up to a '=' at most: "sc://h/token=..." lacks its ';' and must not leak. */
        size_t path_n = strcspn(p, ";=");
        return fail(err, errlen,
                    "path '/%.*s%s' is not allowed: the path must be empty "
                    "(sc://host:port/;key=value)",
                    (int)(path_n > 100 ? 100 : path_n), p, p[path_n] == '=' ? "=..." : "");
    }
    const char *bad = strpbrk(p, "?#");
    if (bad)
        return fail(err, errlen, "'%c' in the parameters must be percent-encoded (%s)", *bad,
                    *bad == '?' ? "%3F" : "%23");
    return parse_params(p + 1, out, err, errlen);
}

int kl_sc_remote_parse(const char *text, kl_sc_remote *out, char *err, size_t errlen) {
    defaults(out);
    if (err && errlen) err[0] = '\0';
    /* Surrounding whitespace is a copy-paste or `$(cat file)` accident, not part of the URL. */
    while (isspace((unsigned char)*text)) text++;
    size_t n = strlen(text);
    while (n > 0 && isspace((unsigned char)text[n - 1])) n--;
    if (n == 0) return fail(err, errlen, "the connection string is empty");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f) {
            return fail(err, errlen, "control character 0x%02x at offset %zu",
                        (unsigned char)text[i], i);
        }
    char *s = dup_n(text, n);
    int rc = parse_url(s, out, err, errlen);
    free(s);
    if (rc) {
        kl_sc_remote_free(out);
        defaults(out);
    }
    return rc;
}

/* ---- Selection, transport, rendering -------------------------------------------------------- */

int kl_sc_remote_select(const char *option, kl_sc_remote *out, char *err, size_t errlen) {
    const char *env = getenv("SPARK_REMOTE");
    const char *text, *origin;
    kl_sc_source source;
    if (option && *option) {
        text = option, origin = "--spark-remote", source = KL_SC_FROM_OPTION;
    } else if (env && *env) {
        text = env, origin = "SPARK_REMOTE", source = KL_SC_FROM_ENV;
    } else {
        text = KL_SC_DEFAULT_LOCAL_MASTER, origin = "default", source = KL_SC_FROM_DEFAULT;
    }
    char inner[512];
    if (kl_sc_remote_parse(text, out, inner, sizeof inner)) {
        if (err && errlen) snprintf(err, errlen, "%s: %s", origin, inner);
        return -1;
    }
    out->source = source;
    const char *token = getenv("SPARK_CONNECT_AUTHENTICATE_TOKEN");
    if (out->kind == KL_SC_KIND_URL && !out->token && token && *token) {
        out->token = dup_n(token, strlen(token));
        out->token_from_env = true;
    }
    return 0;
}

static bool is_loopback(const kl_sc_remote *r) {
    if (strcasecmp(r->host, "localhost") == 0) return true;
    struct in_addr v4;
    if (!r->host_is_ipv6 && inet_pton(AF_INET, r->host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    struct in6_addr v6;
    return r->host_is_ipv6 && inet_pton(AF_INET6, r->host, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

kl_sc_transport kl_sc_remote_transport(const kl_sc_remote *r) {
    /* PySpark 4.0 (ChannelBuilder): secure = use_ssl=true OR a token is set. A secure channel to
     * "localhost" without use_ssl=true uses gRPC local credentials: no TLS, but the bearer token
     * may travel because gRPC itself refuses non-loopback peers. Any other secure channel is TLS --
     * including a token with an explicit use_ssl=false, which PySpark silently upgrades (the Scala
     * client rejects that combination); we upgrade too, so a token never crosses a network in
     * clear text and URLs that work in PySpark work here. We also count 127.0.0.0/8 and ::1 as
     * localhost, where PySpark compares the name only: the local credentials check the peer
     * address anyway, and a local server is reached by these literals as often as by name. */
    if (r->kind == KL_SC_KIND_LOCAL) return KL_SC_LOCAL_TCP;
    if (r->use_ssl == 1) return KL_SC_TLS;
    if (!r->token) return KL_SC_PLAINTEXT;
    return is_loopback(r) ? KL_SC_LOCAL_TCP : KL_SC_TLS;
}

const char *kl_sc_transport_name(kl_sc_transport t) {
    switch (t) {
    case KL_SC_PLAINTEXT:
        return "plaintext";
    case KL_SC_TLS:
        return "tls";
    case KL_SC_LOCAL_TCP:
        return "local-tcp";
    }
    return "unknown";
}

int kl_sc_remote_target(const kl_sc_remote *r, char *buf, size_t len) {
    if (!r->host) return -1;
    int n = snprintf(buf, len, r->host_is_ipv6 ? "[%s]:%d" : "%s:%d", r->host, r->port);
    return n >= 0 && (size_t)n < len ? 0 : -1;
}

static bool sensitive_key(const char *k) {
    static const char *const words[] = {"auth",   "token", "secret", "password",
                                        "passwd", "key",   "cookie", "credential"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr(k, words[i])) return true;
    return false;
}

typedef struct {
    char *buf;
    size_t len, used;
    bool overflow;
} sbuf;

static void put(sbuf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (b->used + 1 >= b->len) {
            b->overflow = true;
            break;
        }
        b->buf[b->used++] = s[i];
    }
    if (b->len) b->buf[b->used] = '\0';
}

static void puts_(sbuf *b, const char *s) {
    put(b, s, strlen(s));
}

/* Writes value percent-encoded so the rendered string parses back to the same endpoint. */
static void put_encoded(sbuf *b, const char *v) {
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (isalnum(*p) || strchr("-._~:/@,+*!$()'", *p)) {
            put(b, (const char *)p, 1);
        } else {
            char esc[4];
            snprintf(esc, sizeof esc, "%%%02X", *p);
            put(b, esc, 3);
        }
    }
}

static void put_param(sbuf *b, const char *key, const char *value, bool redact) {
    puts_(b, ";");
    puts_(b, key);
    puts_(b, "=");
    if (redact)
        puts_(b, "<redacted>");
    else
        put_encoded(b, value);
}

int kl_sc_remote_redacted(const kl_sc_remote *r, char *buf, size_t len) {
    sbuf b = {buf, len, 0, len == 0};
    if (len) buf[0] = '\0';
    if (r->kind == KL_SC_KIND_LOCAL) {
        puts_(&b, r->master ? r->master : "local");
        return b.overflow ? -1 : 0;
    }
    char port[16];
    snprintf(port, sizeof port, ":%d/", r->port);
    puts_(&b, "sc://");
    if (r->host_is_ipv6) puts_(&b, "[");
    puts_(&b, r->host ? r->host : "");
    if (r->host_is_ipv6) puts_(&b, "]");
    puts_(&b, port);
    if (r->token) put_param(&b, "token", r->token, true);
    if (r->use_ssl >= 0) put_param(&b, "use_ssl", r->use_ssl ? "true" : "false", false);
    if (r->user_id) put_param(&b, "user_id", r->user_id, false);
    if (r->user_agent) put_param(&b, "user_agent", r->user_agent, false);
    if (r->session_id) put_param(&b, "session_id", r->session_id, false);
    if (r->max_message_size != KL_SC_DEFAULT_MAX_MESSAGE_SIZE) {
        char size[16];
        snprintf(size, sizeof size, "%d", r->max_message_size);
        put_param(&b, "grpc_max_message_size", size, false);
    }
    for (size_t i = 0; i < r->n_headers; i++)
        put_param(&b, r->headers[i].key, r->headers[i].value, sensitive_key(r->headers[i].key));
    return b.overflow ? -1 : 0;
}
