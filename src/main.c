/* kindling: the command line. `kernel` runs a kernel for a Jupyter client; `install` writes the
 * kernelspec that lets Jupyter start it. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "cli/cli.h"
#include "jupyter/kernelspec.h"
#include "kernel/kernel.h"
#include "kernel/launch.h"
#include "kernel/options.h"
#include "kernel/service.h"
#include "kl_version.h"
#include "runtime/freelist.h"
#include "runtime/log.h"

static const char *USAGE =
    "kindling " KL_VERSION " - a Jupyter kernel for Spark SQL over Spark Connect\n"
    "\n"
    "Usage:\n"
    "  kindling kernel -f CONNECTION_FILE [options]   run a kernel (Jupyter starts this)\n"
    "  kindling install [options]                     install the kernelspec\n"
    "  kindling serve [options]                       a long-running kernel service (serve "
    "--help)\n"
    "  kindling health [--port N] [--path P]          probe a service's health endpoint\n"
    "  kindling launch --RemoteProcessProxy.kernel-id ID ...  run a kernel for Jupyter\n"
    "                                                 Enterprise Gateway (launch --help)\n"
    "  kindling exec --existing FILE (-c TEXT | --file F)  run cells on a running kernel\n"
    "  kindling console --existing FILE               an interactive session on a kernel\n"
    "  kindling call --existing FILE --target T ...   a comm RPC call (e.g. kindling.sql)\n"
    "  kindling --version                             print the version\n"
    "  kindling help [COMMAND]                        this text, or a command's options\n";

static const char *KERNEL_USAGE =
    "Usage: kindling kernel -f CONNECTION_FILE [options]\n"
    "\n"
    "Runs a kernel bound to the ports of a Jupyter connection file. Jupyter clients start it\n"
    "through the kernelspec that `kindling install` writes.\n"
    "\n"
    "  -f, --connection-file FILE  the connection file (ports, ip, transport, key, scheme)\n"
    "      --log-level LEVEL       debug, info, warn (default) or error; env KINDLING_LOG_LEVEL\n"
    "      --log-format FORMAT     plain (default) or json (one object per line);\n"
    "                              env KINDLING_LOG_FORMAT\n"
    "      --history-file PATH     SQLite file for execution history; default\n"
    "                              $KINDLING_HISTORY_FILE, else $JUPYTER_DATA_DIR/kindling/\n"
    "                              history.sqlite, else ~/.local/share/jupyter/kindling/...\n"
    "      --no-history            keep no history on disk\n"
    "      --spark-remote URL      Spark Connect endpoint (sc://host:port/;params), or local;\n"
    "                              overrides SPARK_REMOTE. With neither, the kernel starts a\n"
    "                              local Spark Connect server itself (SPARK_HOME, or the pyspark\n"
    "                              package of $VIRTUAL_ENV or python3; needs Java 17+)\n"
    "      --display-limit N       rows shown per result (default 1000); %%sql --limit N per cell\n"
    "      --magic-plugin PATH     load a magic plugin (a shared object); repeatable\n"
    "      --plugin-dir DIR        load every *.so in DIR as a magic plugin; default\n"
    "                              $KINDLING_PLUGIN_DIR\n"
    "      --allow-shell           enable %sh, %%sh and %load_magic (they run as the\n"
    "                              kernel's user)\n"
    "      --shell-timeout SECS    longest a %sh command may run (default 600)\n"
    "      --max-connections N     client sessions served at once (default 4096); more are\n"
    "                              refused with a TooManyConnections error\n"
    "      --cull-idle SECS        close a connection idle this long, releasing its Spark\n"
    "                              session (default: never)\n"
    "      --shared-session        one Spark session and one history for every connection\n"
    "                              (Toree's shared state: temp views visible to all);\n"
    "                              default: one Spark session per connection, history per user\n"
    "      --max-spark-ops N       Spark statements running at once across all connections\n"
    "                              (default 64); more wait, shown to their cells as queued\n"
    "      --max-result-bytes N    result bytes one statement may buffer (default 268435456);\n"
    "                              beyond it the result is cut short with a notice\n"
    "  -h, --help                  this text\n"
    "\n"
    "Logs go to stderr. SIGINT interrupts the running cells; SIGTERM shuts down cleanly.\n";

static const char *INSTALL_USAGE =
    "Usage: kindling install [--user | --sys-prefix | --prefix DIR] [options]\n"
    "\n"
    "Writes a kernelspec (kernel.json and logos) so Jupyter can start Kindling.\n"
    "\n"
    "      --user                  into the user's Jupyter data dir (the default):\n"
    "                              $JUPYTER_DATA_DIR or ~/.local/share/jupyter/kernels\n"
    "      --sys-prefix            into the active virtualenv "
    "($VIRTUAL_ENV)/share/jupyter/kernels\n"
    "      --prefix DIR            into DIR/share/jupyter/kernels\n"
    "      --name NAME             kernelspec name (default kindling)\n"
    "      --display-name TEXT     name shown in front ends (default \"Spark SQL (Kindling)\")\n"
    "      --env KEY=VALUE         environment for the kernel; repeatable\n"
    "      --spark-remote URL      Spark Connect endpoint the kernel uses\n"
    "  -h, --help                  this text\n";

static int cmd_kernel(int argc, char **argv) {
    static const struct option longopts[] = {
        {"connection-file", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        KL_KERNEL_LONGOPTS,
        {0, 0, 0, 0},
    };
    kl_kernel_options o = {0};
    int c;
    while ((c = getopt_long(argc, argv, "f:h", longopts, NULL)) != -1) {
        int k = kl_kernel_option("kernel", c, optarg, &o);
        if (k < 0) return 2;
        if (k > 0) continue;
        switch (c) {
        case 'f':
            o.connection_file = optarg;
            break;
        case 'h':
            fputs(KERNEL_USAGE, stdout);
            return 0;
        default:
            fputs(KERNEL_USAGE, stderr);
            return 2;
        }
    }
    if (!o.connection_file && optind < argc) o.connection_file = argv[optind++];
    if (!o.connection_file) {
        fprintf(stderr, "kindling kernel: a connection file is required (-f FILE)\n\n%s",
                KERNEL_USAGE);
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "kindling kernel: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    return kl_kernel_main(&o);
}

/* The logos ship beside the binary's share directory: <prefix>/share/kindling when installed,
 * <repo>/share when run from the build tree. */
static void find_logo_dir(const char *exe, char *out, size_t len) {
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", exe);
    const char *dir = dirname(copy);
    const char *candidates[] = {"%s/../share/kindling", "%s/../share"};
    for (size_t i = 0; i < 2; i++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, candidates[i], dir);
        char probe[PATH_MAX + 96];
        snprintf(probe, sizeof probe, "%s/logo-64x64.png", path);
        if (access(probe, R_OK) == 0 && strlen(path) < len) {
            memcpy(out, path, strlen(path) + 1);
            return;
        }
    }
    out[0] = 0;
}

static int cmd_install(int argc, char **argv) {
    static const struct option longopts[] = {
        {"user", no_argument, NULL, 'u'},
        {"sys-prefix", no_argument, NULL, 's'},
        {"prefix", required_argument, NULL, 'p'},
        {"name", required_argument, NULL, 'n'},
        {"display-name", required_argument, NULL, 'd'},
        {"env", required_argument, NULL, 'e'},
        {"spark-remote", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    const char *where = "user", *prefix = NULL, *name = "kindling";
    const char *display = "Spark SQL (Kindling)", *remote = NULL;
    json_t *env = json_object();
    int c, rc = 2;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            where = "user";
            break;
        case 's':
            where = "sys-prefix";
            break;
        case 'p':
            where = "prefix", prefix = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'd':
            display = optarg;
            break;
        case 'e': {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                fprintf(stderr, "kindling install: --env takes KEY=VALUE, not \"%s\"\n", optarg);
                goto out;
            }
            char *key = strndup(optarg, (size_t)(eq - optarg));
            json_object_set_new(env, key, json_string(eq + 1));
            free(key);
            break;
        }
        case 'r':
            remote = optarg;
            break;
        case 'h':
            fputs(INSTALL_USAGE, stdout);
            rc = 0;
            goto out;
        default:
            fputs(INSTALL_USAGE, stderr);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kindling install: unexpected argument \"%s\"\n", argv[optind]);
        goto out;
    }
    if (!*name || strchr(name, '/')) {
        fprintf(stderr, "kindling install: --name must be a non-empty name without '/'\n");
        goto out;
    }
    char dir[PATH_MAX], err[512];
    if (strcmp(where, "user") == 0) {
        if (kl_kernelspec_user_dir(dir, sizeof dir, err, sizeof err) != 0) {
            fprintf(stderr, "kindling install: %s\n", err);
            goto out;
        }
    } else {
        if (strcmp(where, "sys-prefix") == 0) {
            prefix = getenv("VIRTUAL_ENV");
            if (!prefix || !*prefix) {
                fprintf(stderr, "kindling install: --sys-prefix needs an active virtualenv "
                                "(VIRTUAL_ENV is not set); use --prefix DIR instead\n");
                goto out;
            }
        }
        kl_kernelspec_prefix_dir(prefix, dir, sizeof dir);
        /* A kernel started from this environment's Jupyter without activating it (for example
         * .venv/bin/jupyter lab) would not see VIRTUAL_ENV, and the embedded local server looks
         * for pyspark there. */
        if (strcmp(where, "sys-prefix") == 0 && !json_object_get(env, "VIRTUAL_ENV"))
            json_object_set_new(env, "VIRTUAL_ENV", json_string(prefix));
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf(stderr, "kindling install: cannot find this program's path: %s\n", strerror(errno));
        goto out;
    }
    exe[n] = 0;
    json_t *args = json_pack("[s, s, s, s]", exe, "kernel", "-f", "{connection_file}");
    if (remote) {
        json_array_append_new(args, json_string("--spark-remote"));
        json_array_append_new(args, json_string(remote));
    }
    json_t *spec = json_pack(
        "{s:o, s:s, s:s, s:s, s:s, s:O, s:o}", "argv", args, "display_name", display, "language",
        "sql", "interrupt_mode", "message", "kernel_protocol_version", KL_PROTOCOL_VERSION, "env",
        env, "metadata",
        /* JEP 145: launchers may then hand the kernel CurveZMQ keys. */
        zmq_has("curve") ? json_pack("{s:[s]}", "supported_encryption", "curve") : json_object());
    char logo_dir[PATH_MAX];
    find_logo_dir(exe, logo_dir, sizeof logo_dir);
    kl_kernelspec ks = {.name = name, .kernel_json = spec, .logo_dir = *logo_dir ? logo_dir : NULL};
    if (kl_kernelspec_write(dir, &ks, err, sizeof err) != 0) {
        fprintf(stderr, "kindling install: %s\n", err);
    } else {
        printf("Installed kernelspec %s in %s/%s\n", name, dir, name);
        rc = 0;
    }
    json_decref(spec);
out:
    json_decref(env);
    return rc;
}

int main(int argc, char **argv) {
    /* Before any JSON exists: every request and reply is a jansson tree built and freed on the
     * loop thread. */
    json_set_alloc_funcs(kl_freelist_alloc, kl_freelist_free);
    kl_log_init_from_env();
    if (argc < 2) {
        fputs(USAGE, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0 || strcmp(cmd, "version") == 0) {
        printf("kindling %s\n", KL_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (strcmp(cmd, "help") == 0) {
        const char *topic = argc > 2 ? argv[2] : "";
        fputs(strcmp(topic, "kernel") == 0    ? KERNEL_USAGE
              : strcmp(topic, "install") == 0 ? INSTALL_USAGE
                                              : USAGE,
              stdout);
        return 0;
    }
    /* getopt_long sees the command's own arguments, with the command as argv[0]. */
    if (strcmp(cmd, "kernel") == 0) return cmd_kernel(argc - 1, argv + 1);
    if (strcmp(cmd, "install") == 0) return cmd_install(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0) return kl_service_main(argc - 1, argv + 1);
    if (strcmp(cmd, "launch") == 0) return kl_launch_main(argc - 1, argv + 1);
    if (strcmp(cmd, "health") == 0) return kl_health_cli_main(argc - 1, argv + 1);
    if (strcmp(cmd, "exec") == 0) return kl_cli_exec(argc - 1, argv + 1);
    if (strcmp(cmd, "console") == 0) return kl_cli_console(argc - 1, argv + 1);
    if (strcmp(cmd, "call") == 0) return kl_cli_call(argc - 1, argv + 1);
    fprintf(stderr, "kindling: unknown command \"%s\"\n\n%s", cmd, USAGE);
    return 2;
}
