/* Jupyter connection files: the five ports, the transport, the key and its signature scheme. */
#ifndef KL_JUPYTER_CONNECTION_H
#define KL_JUPYTER_CONNECTION_H

#include <stddef.h>

typedef enum {
    KL_CH_SHELL = 0,
    KL_CH_IOPUB,
    KL_CH_STDIN,
    KL_CH_CONTROL,
    KL_CH_HB,
    KL_CH_COUNT
} kl_channel;

typedef struct kl_connection_info {
    char transport[8];         /* "tcp" or "ipc" */
    char ip[256];              /* host for tcp, path prefix for ipc */
    int ports[KL_CH_COUNT];    /* 0 = let the kernel pick (tcp) */
    char *key;                 /* owned; "" = no signing */
    char signature_scheme[64]; /* e.g. "hmac-sha256" */
    char kernel_name[128];
    char *curve_publickey; /* owned; NULL when absent (Z85, 40 chars) */
    char *curve_secretkey; /* owned; NULL when absent */
} kl_connection_info;

const char *kl_channel_name(kl_channel ch); /* "shell", "iopub", ... */

/* Fills info with defaults (tcp, 127.0.0.1, ports 0, empty key, hmac-sha256). */
void kl_connection_defaults(kl_connection_info *info);
/* Reads a connection file. On error returns -1 and writes a message naming the file and the field
 * (e.g. "kernel.json: field \"shell_port\" must be an integer 0-65535") into err. */
int kl_connection_load(const char *path, kl_connection_info *info, char *err, size_t errlen);
/* Same, from JSON text already in memory; name is used in error messages. */
int kl_connection_parse(const char *json, size_t len, const char *name, kl_connection_info *info,
                        char *err, size_t errlen);
/* Writes info as a connection file (mode 0600). 0 or -errno. */
int kl_connection_write(const char *path, const kl_connection_info *info);
/* The ZeroMQ endpoint for a channel: tcp://ip:port or ipc://ip-port. */
int kl_connection_endpoint(const kl_connection_info *info, kl_channel ch, char *buf, size_t len);
void kl_connection_free(kl_connection_info *info); /* frees owned strings, keeps the struct */

#endif
