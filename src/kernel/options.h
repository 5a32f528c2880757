/* The command-line options of a kernel, shared by every command that runs one (`kernel`, `serve`,
 * `launch`), so the three accept the same options with the same checks and cannot drift apart. */
#ifndef KL_KERNEL_OPTIONS_H
#define KL_KERNEL_OPTIONS_H

#include <getopt.h>

#include "kernel/kernel.h"

/* getopt_long values of the shared options; a command's own options use values below this. */
enum {
    KL_OPT_LOG_LEVEL = 1000,
    KL_OPT_LOG_FORMAT,
    KL_OPT_HISTORY_FILE,
    KL_OPT_NO_HISTORY,
    KL_OPT_SPARK_REMOTE,
    KL_OPT_DISPLAY_LIMIT,
    KL_OPT_MAGIC_PLUGIN,
    KL_OPT_PLUGIN_DIR,
    KL_OPT_ALLOW_SHELL,
    KL_OPT_SHELL_TIMEOUT,
    KL_OPT_MAX_CONNECTIONS,
    KL_OPT_CULL_IDLE,
    KL_OPT_SHARED_SESSION,
    KL_OPT_MAX_SPARK_OPS,
    KL_OPT_MAX_RESULT_BYTES,
};

/* Entries for a command's `struct option` array, placed before its terminating {0}. */
#define KL_KERNEL_LONGOPTS                                                                         \
    {"log-level", required_argument, NULL, KL_OPT_LOG_LEVEL},                                      \
        {"log-format", required_argument, NULL, KL_OPT_LOG_FORMAT},                                \
        {"history-file", required_argument, NULL, KL_OPT_HISTORY_FILE},                            \
        {"no-history", no_argument, NULL, KL_OPT_NO_HISTORY},                                      \
        {"spark-remote", required_argument, NULL, KL_OPT_SPARK_REMOTE},                            \
        {"display-limit", required_argument, NULL, KL_OPT_DISPLAY_LIMIT},                          \
        {"magic-plugin", required_argument, NULL, KL_OPT_MAGIC_PLUGIN},                            \
        {"plugin-dir", required_argument, NULL, KL_OPT_PLUGIN_DIR},                                \
        {"allow-shell", no_argument, NULL, KL_OPT_ALLOW_SHELL},                                    \
        {"shell-timeout", required_argument, NULL, KL_OPT_SHELL_TIMEOUT},                          \
        {"max-connections", required_argument, NULL, KL_OPT_MAX_CONNECTIONS},                      \
        {"cull-idle", required_argument, NULL, KL_OPT_CULL_IDLE},                                  \
        {"shared-session", no_argument, NULL, KL_OPT_SHARED_SESSION},                              \
        {"max-spark-ops", required_argument, NULL, KL_OPT_MAX_SPARK_OPS}, {                        \
        "max-result-bytes", required_argument, NULL, KL_OPT_MAX_RESULT_BYTES                       \
    }

/* Applies one parsed option to o (arg is getopt's optarg; strings are borrowed from argv).
 * 1 when c is a shared option, 0 when it is not, -1 for a bad value, with a message naming cmd
 * printed on stderr. */
int kl_kernel_option(const char *cmd, int c, const char *arg, kl_kernel_options *o);

#endif
