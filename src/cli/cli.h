/* The client-side commands of the kindling binary, on the client library. Each takes the
 * command's own arguments (argv[0] is the command name) and returns the process exit code. */
#ifndef KL_CLI_CLI_H
#define KL_CLI_CLI_H

int kl_cli_exec(int argc, char **argv);    /* kindling exec --existing FILE ... */
int kl_cli_console(int argc, char **argv); /* kindling console --existing FILE */
int kl_cli_call(int argc, char **argv);    /* kindling call --existing FILE --target T ... */

#endif
