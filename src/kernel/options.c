#include "kernel/options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"

#define MAX_PLUGINS 64

static int bad(const char *cmd, const char *what) {
    fprintf(stderr, "kindling %s: %s\n", cmd, what);
    return -1;
}

/* A whole number in [min, max] into *out; false (and *out untouched) otherwise. */
static bool number(const char *text, long min, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) return false;
    *out = v;
    return true;
}

int kl_kernel_option(const char *cmd, int c, const char *arg, kl_kernel_options *o) {
    /* One kernel per process, so one list; static, so no exit path has anything to free. */
    static const char *plugins[MAX_PLUGINS];
    long v;
    switch (c) {
    case KL_OPT_LOG_LEVEL: {
        int level = kl_log_parse_level(arg);
        if (level < 0) return bad(cmd, "--log-level takes debug, info, warn or error");
        kl_log_set_level((kl_log_level)level);
        return 1;
    }
    case KL_OPT_LOG_FORMAT:
        if (strcmp(arg, "json") != 0 && strcmp(arg, "plain") != 0)
            return bad(cmd, "--log-format takes plain or json");
        kl_log_set_json(strcmp(arg, "json") == 0);
        return 1;
    case KL_OPT_HISTORY_FILE:
        o->history_file = arg;
        return 1;
    case KL_OPT_NO_HISTORY:
        o->history_file = "";
        return 1;
    case KL_OPT_SPARK_REMOTE:
        o->spark_remote = arg;
        return 1;
    case KL_OPT_DISPLAY_LIMIT:
        if (!number(arg, 1, 10000000, &v))
            return bad(cmd, "--display-limit takes a row count from 1 to 10000000");
        o->display_limit = v;
        return 1;
    case KL_OPT_MAGIC_PLUGIN:
        if (o->n_magic_plugins == MAX_PLUGINS)
            return bad(cmd, "at most 64 --magic-plugin options; use --plugin-dir for more");
        plugins[o->n_magic_plugins++] = arg;
        o->magic_plugins = plugins;
        return 1;
    case KL_OPT_PLUGIN_DIR:
        o->plugin_dir = arg;
        return 1;
    case KL_OPT_ALLOW_SHELL:
        o->allow_shell = true;
        return 1;
    case KL_OPT_SHELL_TIMEOUT:
        if (!number(arg, 1, 86400L * 7, &v))
            return bad(cmd, "--shell-timeout takes seconds from 1 to 604800");
        o->shell_timeout = v;
        return 1;
    case KL_OPT_MAX_CONNECTIONS:
        if (!number(arg, 1, 1000000, &v))
            return bad(cmd, "--max-connections takes a number from 1 to 1000000");
        o->max_connections = v;
        return 1;
    case KL_OPT_CULL_IDLE:
        if (!number(arg, 1, 86400L * 365, &v))
            return bad(cmd, "--cull-idle takes seconds from 1 to 31536000");
        o->cull_idle = v;
        return 1;
    case KL_OPT_SHARED_SESSION:
        o->shared_session = true;
        return 1;
    case KL_OPT_MAX_SPARK_OPS:
        if (!number(arg, 1, 100000, &v))
            return bad(cmd, "--max-spark-ops takes a number from 1 to 100000");
        o->max_spark_ops = v;
        return 1;
    case KL_OPT_MAX_RESULT_BYTES:
        if (!number(arg, 4096, 1L << 40, &v))
            return bad(cmd, "--max-result-bytes takes a number from 4096 to 1099511627776");
        o->max_result_bytes = v;
        return 1;
    default:
        return 0;
    }
}
