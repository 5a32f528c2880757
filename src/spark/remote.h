/* Spark Connect endpoints: `sc://host[:port]/;key=value;...` connection strings, the "local"
 * marker, which configured endpoint wins, and how to show one in a log without its secrets. */
#ifndef KL_SPARK_REMOTE_H
#define KL_SPARK_REMOTE_H

#include <stdbool.h>
#include <stddef.h>

#define KL_SC_DEFAULT_PORT             15002
#define KL_SC_DEFAULT_MAX_MESSAGE_SIZE (128 * 1024 * 1024)
#define KL_SC_DEFAULT_LOCAL_MASTER     "local[*]"

typedef enum {
    KL_SC_KIND_URL,   /* an sc:// URL */
    KL_SC_KIND_LOCAL, /* "local", "local[N]", "local[*]": Kindling runs a Spark Connect server */
} kl_sc_kind;

/* How the gRPC channel must be secured; see kl_sc_remote_transport. */
typedef enum {
    KL_SC_PLAINTEXT, /* insecure channel */
    KL_SC_TLS,       /* TLS, server verified against the system CAs */
    KL_SC_LOCAL_TCP, /* no TLS, loopback peers only (gRPC local credentials), token allowed */
} kl_sc_transport;

typedef enum {
    KL_SC_FROM_OPTION,  /* --spark-remote */
    KL_SC_FROM_ENV,     /* $SPARK_REMOTE (the kernelspec's env block or the user's shell) */
    KL_SC_FROM_DEFAULT, /* nothing configured: the embedded local server */
} kl_sc_source;

typedef struct {
    char *key; /* a legal gRPC header name */
    char *value;
} kl_sc_header;

/* A parsed endpoint. Every string is owned and NULL when absent; free with kl_sc_remote_free. */
typedef struct kl_sc_remote {
    kl_sc_kind kind;
    kl_sc_source source; /* set by kl_sc_remote_select; KL_SC_FROM_OPTION after a plain parse */
    char *master;        /* KL_SC_KIND_LOCAL only: the Spark master, e.g. "local[*]" */
    char *host;          /* without the brackets of an IPv6 literal */
    bool host_is_ipv6;
    int port;            /* KL_SC_DEFAULT_PORT unless given */
    char *token;         /* bearer token */
    bool token_from_env; /* taken from $SPARK_CONNECT_AUTHENTICATE_TOKEN */
    int use_ssl;         /* -1 not given, 0 false, 1 true */
    char *user_id;
    char *user_agent;
    char *session_id;      /* a UUID, kept as written (the server compares it verbatim) */
    int max_message_size;  /* grpc_max_message_size, bytes */
    kl_sc_header *headers; /* every other parameter, in URL order: extra gRPC metadata */
    size_t n_headers;
} kl_sc_remote;

/* Parses a connection string: an sc:// URL or a "local" master (any case). Keys are
 * case-sensitive; values are percent-decoded; known keys are token, use_ssl (true/false, any
 * case), user_id, user_agent, session_id (a UUID), grpc_max_message_size (bytes, > 0); any other
 * key becomes gRPC metadata and must be a legal lower-case header name. On error returns -1, leaves
 * *out empty (safe to free) and writes a message naming the offending part -- never a token -- into
 * err. */
int kl_sc_remote_parse(const char *text, kl_sc_remote *out, char *err, size_t errlen);

/* Picks the endpoint by precedence: option (--spark-remote) if non-empty, else $SPARK_REMOTE if
 * non-empty (Jupyter sets it from the kernelspec's env block, or it comes from the user's shell),
 * else the embedded local server (KL_SC_DEFAULT_LOCAL_MASTER). Like PySpark, a URL without a token
 * takes $SPARK_CONNECT_AUTHENTICATE_TOKEN when that is set. Errors are prefixed with where the bad
 * value came from ("--spark-remote: ..." or "SPARK_REMOTE: ..."). */
int kl_sc_remote_select(const char *option, kl_sc_remote *out, char *err, size_t errlen);

/* The channel security the official PySpark client (4.0) would use for this endpoint. */
kl_sc_transport kl_sc_remote_transport(const kl_sc_remote *r);
const char *kl_sc_transport_name(kl_sc_transport t); /* "plaintext", "tls", "local-tcp" */

/* The gRPC target, "host:port" or "[v6]:port". Returns 0, or -1 if buf is too small. */
int kl_sc_remote_target(const kl_sc_remote *r, char *buf, size_t len);

/* The endpoint as a connection string fit for logs: the token, and metadata whose key looks like
 * a credential (authorization, *token*, *secret*, *password*, *key*, cookie), read "<redacted>".
 * Returns 0, or -1 if buf is too small (buf then holds a truncated string). */
int kl_sc_remote_redacted(const kl_sc_remote *r, char *buf, size_t len);

void kl_sc_remote_free(kl_sc_remote *r); /* frees owned strings, keeps the struct */

#endif
