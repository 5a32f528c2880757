/* Jupyter connection files: reading, validating, writing, and turning them into endpoints. */
#include "jupyter/connection.h"
#include "jupyter/message.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "jupyter/wire.h"

/* A connection file is a few hundred bytes; anything this big is not one. */
#define CONNECTION_FILE_MAX (1 << 20)

/* The key of an info that owns no key string. Static so defaults never allocate (and so cannot
 * leak when a caller then overwrites the key); kl_connection_free knows not to free it. */
static char empty_key[1];

static const char *const channel_names[KL_CH_COUNT] = {"shell", "iopub", "stdin", "control", "hb"};
static const char *const port_fields[KL_CH_COUNT] = {"shell_port", "iopub_port", "stdin_port",
                                                     "control_port", "hb_port"};

const char *kl_channel_name(kl_channel ch) {
    if ((unsigned)ch >= KL_CH_COUNT) return "unknown";
    return channel_names[ch];
}

void kl_connection_defaults(kl_connection_info *info) {
    memset(info, 0, sizeof *info);
    strcpy(info->transport, "tcp");
    strcpy(info->ip, "127.0.0.1");
    info->key = empty_key;
    strcpy(info->signature_scheme, "hmac-sha256");
}

void kl_connection_free(kl_connection_info *info) {
    if (info->key && info->key != empty_key) {
        memset(info->key, 0, strlen(info->key));
        free(info->key);
    }
    info->key = empty_key;
    if (info->curve_secretkey) {
        memset(info->curve_secretkey, 0, strlen(info->curve_secretkey));
        free(info->curve_secretkey);
    }
    free(info->curve_publickey);
    info->curve_publickey = NULL;
    info->curve_secretkey = NULL;
}

static bool is_z85(const char *s, size_t len) {
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   ".-:+=^!/*?&<>()[]{}@%$#";
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0' || !strchr(alphabet, s[i])) return false;
    }
    return true;
}

/* Copies an optional string field into buf (cap bytes). 1 copied, 0 absent or null, -1 error. */
static int get_string(json_t *root, const char *name, const char *field, char *buf, size_t cap,
                      bool nonempty, char *err, size_t errlen) {
    json_t *v = json_object_get(root, field);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) {
        snprintf(err, errlen, "%s: field \"%s\" must be a string, not %s", name, field,
                 kl_json_kind(v));
        return -1;
    }
    size_t len = json_string_length(v);
    if (nonempty && len == 0) {
        snprintf(err, errlen, "%s: field \"%s\" must not be empty", name, field);
        return -1;
    }
    if (len >= cap) {
        snprintf(err, errlen, "%s: field \"%s\" is too long (%zu bytes, at most %zu)", name, field,
                 len, cap - 1);
        return -1;
    }
    memcpy(buf, json_string_value(v), len + 1);
    return 1;
}

static int get_curve_key(json_t *root, const char *name, const char *field, char **out, char *err,
                         size_t errlen) {
    json_t *v = json_object_get(root, field);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) {
        snprintf(err, errlen, "%s: field \"%s\" must be a string, not %s", name, field,
                 kl_json_kind(v));
        return -1;
    }
    size_t len = json_string_length(v);
    if (len != 40 || !is_z85(json_string_value(v), len)) {
        snprintf(err, errlen, "%s: field \"%s\" must be a 40-character Z85 CurveZMQ key", name,
                 field);
        return -1;
    }
    *out = strdup(json_string_value(v));
    if (!*out) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    return 1;
}

static int parse_object(json_t *root, const char *name, kl_connection_info *info, char *err,
                        size_t errlen) {
    for (int ch = 0; ch < KL_CH_COUNT; ch++) {
        json_t *v = json_object_get(root, port_fields[ch]);
        if (!v) continue;
        if (!json_is_integer(v)) {
            snprintf(err, errlen, "%s: field \"%s\" must be an integer 0-65535, not %s%s", name,
                     port_fields[ch], kl_json_kind(v),
                     json_is_string(v) ? " (write the number without quotes)" : "");
            return -1;
        }
        json_int_t port = json_integer_value(v);
        if (port < 0 || port > 65535) {
            snprintf(err, errlen, "%s: field \"%s\" must be an integer 0-65535, not %lld", name,
                     port_fields[ch], (long long)port);
            return -1;
        }
        info->ports[ch] = (int)port;
    }

    int r = get_string(root, name, "transport", info->transport, sizeof info->transport, true, err,
                       errlen);
    if (r < 0) {
        /* "too long" would be a confusing way to say "not tcp or ipc". */
        json_t *v = json_object_get(root, "transport");
        if (json_is_string(v))
            snprintf(err, errlen,
                     "%s: field \"transport\" must be \"tcp\" or \"ipc\", not \"%.32s\"", name,
                     json_string_value(v));
        return -1;
    }
    if (strcmp(info->transport, "tcp") != 0 && strcmp(info->transport, "ipc") != 0) {
        snprintf(err, errlen, "%s: field \"transport\" must be \"tcp\" or \"ipc\", not \"%s\"",
                 name, info->transport);
        return -1;
    }

    r = get_string(root, name, "ip", info->ip, sizeof info->ip, true, err, errlen);
    if (r < 0) return -1;
    /* jupyter_client's own default for ipc when no path prefix is given. */
    if (r == 0 && strcmp(info->transport, "ipc") == 0) strcpy(info->ip, "kernel-ipc");

    json_t *key = json_object_get(root, "key");
    if (key && !json_is_null(key)) {
        if (!json_is_string(key)) {
            snprintf(err, errlen, "%s: field \"key\" must be a string, not %s", name,
                     kl_json_kind(key));
            return -1;
        }
        if (json_string_length(key) > 0) {
            info->key = strdup(json_string_value(key));
            if (!info->key) {
                info->key = empty_key;
                snprintf(err, errlen, "%s: out of memory", name);
                return -1;
            }
        }
    }

    r = get_string(root, name, "signature_scheme", info->signature_scheme,
                   sizeof info->signature_scheme, true, err, errlen);
    if (r < 0) return -1;
    if (strncmp(info->signature_scheme, "hmac-", 5) != 0) {
        snprintf(err, errlen,
                 "%s: field \"signature_scheme\" must start with \"hmac-\" (e.g. hmac-sha256), "
                 "not \"%s\"",
                 name, info->signature_scheme);
        return -1;
    }
    /* Validating the digest here means a typo is reported against the file, not later as
     * "every message has a bad signature". */
    kl_signer probe;
    char why[192];
    if (kl_signer_init(&probe, info->signature_scheme, "", 0, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: field \"signature_scheme\": %s", name, why);
        return -1;
    }
    kl_signer_free(&probe);

    if (get_string(root, name, "kernel_name", info->kernel_name, sizeof info->kernel_name, false,
                   err, errlen) < 0)
        return -1;

    if (get_curve_key(root, name, "curve_publickey", &info->curve_publickey, err, errlen) < 0 ||
        get_curve_key(root, name, "curve_secretkey", &info->curve_secretkey, err, errlen) < 0)
        return -1;
    if (!info->curve_publickey != !info->curve_secretkey) {
        snprintf(err, errlen, "%s: field \"%s\" is set but \"%s\" is missing: CurveZMQ needs both",
                 name, info->curve_publickey ? "curve_publickey" : "curve_secretkey",
                 info->curve_publickey ? "curve_secretkey" : "curve_publickey");
        return -1;
    }
    return 0;
}

int kl_connection_parse(const char *json, size_t len, const char *name, kl_connection_info *info,
                        char *err, size_t errlen) {
    kl_connection_defaults(info);
    if (!name) name = "connection file";
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_DECODE_ANY, &jerr);
    if (!root) {
        snprintf(err, errlen, "%s: not valid JSON at line %d, column %d: %s", name, jerr.line,
                 jerr.column, jerr.text);
        return -1;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: the top-level JSON value must be an object, not %s", name,
                 kl_json_kind(root));
        json_decref(root);
        return -1;
    }
    int r = parse_object(root, name, info, err, errlen);
    json_decref(root);
    if (r < 0) {
        kl_connection_free(info);
        return -1;
    }
    return 0;
}

int kl_connection_load(const char *path, kl_connection_info *info, char *err, size_t errlen) {
    kl_connection_defaults(info);
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        if (e == ENOENT)
            snprintf(err, errlen, "%s: connection file not found", path);
        else
            snprintf(err, errlen, "%s: cannot open connection file: %s", path, strerror(e));
        return -1;
    }
    char *buf = malloc(CONNECTION_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    size_t n = fread(buf, 1, CONNECTION_FILE_MAX + 1, f);
    int e = ferror(f) ? errno : 0;
    fclose(f);
    if (e) {
        snprintf(err, errlen, "%s: cannot read connection file: %s", path, strerror(e));
        free(buf);
        return -1;
    }
    if (n > CONNECTION_FILE_MAX) {
        snprintf(err, errlen, "%s: too large for a connection file (over %d bytes)", path,
                 CONNECTION_FILE_MAX);
        free(buf);
        return -1;
    }
    if (n == 0) {
        snprintf(err, errlen, "%s: connection file is empty", path);
        free(buf);
        return -1;
    }
    int r = kl_connection_parse(buf, n, path, info, err, errlen);
    free(buf);
    return r;
}

int kl_connection_write(const char *path, const kl_connection_info *info) {
    json_t *root = json_object();
    if (!root) return -ENOMEM;
    int bad = 0;
    for (int ch = 0; ch < KL_CH_COUNT; ch++)
        bad |= json_object_set_new(root, port_fields[ch], json_integer(info->ports[ch]));
    bad |= json_object_set_new(root, "ip", json_string(info->ip));
    bad |= json_object_set_new(root, "key", json_string(info->key ? info->key : ""));
    bad |= json_object_set_new(root, "transport", json_string(info->transport));
    bad |= json_object_set_new(root, "signature_scheme", json_string(info->signature_scheme));
    bad |= json_object_set_new(root, "kernel_name", json_string(info->kernel_name));
    if (info->curve_publickey)
        bad |= json_object_set_new(root, "curve_publickey", json_string(info->curve_publickey));
    if (info->curve_secretkey)
        bad |= json_object_set_new(root, "curve_secretkey", json_string(info->curve_secretkey));
    char *text = bad ? NULL : json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    if (!text) return bad ? -EINVAL : -ENOMEM;

    /* Write beside the target and rename, so a kernel never reads half a file; mkstemp creates
     * the file 0600, so the key is never readable by others even for a moment. */
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 8);
    if (!tmp) {
        free(text);
        return -ENOMEM;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".XXXXXX", 8);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        free(text);
        return -e;
    }
    size_t len = strlen(text), off = 0;
    int rc = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            rc = -errno;
            break;
        }
        off += (size_t)w;
    }
    if (rc == 0 && write(fd, "\n", 1) != 1) rc = -errno;
    if (rc == 0 && fchmod(fd, 0600) < 0) rc = -errno;
    if (close(fd) < 0 && rc == 0) rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0) rc = -errno;
    if (rc != 0) unlink(tmp);
    free(tmp);
    free(text);
    return rc;
}

int kl_connection_endpoint(const kl_connection_info *info, kl_channel ch, char *buf, size_t len) {
    if ((unsigned)ch >= KL_CH_COUNT) return -EINVAL;
    int port = info->ports[ch];
    int n;
    if (strcmp(info->transport, "ipc") == 0) {
        n = snprintf(buf, len, "ipc://%s-%d", info->ip, port);
    } else {
        /* ZeroMQ wants IPv6 literals in brackets and spells "any port" as '*'. */
        bool v6 = strchr(info->ip, ':') != NULL && info->ip[0] != '[';
        char portbuf[16];
        if (port == 0)
            strcpy(portbuf, "*");
        else
            snprintf(portbuf, sizeof portbuf, "%d", port);
        n = snprintf(buf, len, v6 ? "tcp://[%s]:%s" : "tcp://%s:%s", info->ip, portbuf);
    }
    if (n < 0) return -EINVAL;
    if ((size_t)n >= len) return -ENOSPC;
    return 0;
}
