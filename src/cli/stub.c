/* Placeholder until the client commands land. */
#include <stdio.h>

#include "cli/cli.h"

static int missing(const char *what) {
    fprintf(stderr, "kindling %s: not built yet\n", what);
    return 2;
}
int kl_cli_exec(int argc, char **argv) {
    (void)argc, (void)argv;
    return missing("exec");
}
int kl_cli_console(int argc, char **argv) {
    (void)argc, (void)argv;
    return missing("console");
}
int kl_cli_call(int argc, char **argv) {
    (void)argc, (void)argv;
    return missing("call");
}
