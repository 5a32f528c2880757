/* Pieces of the shell and session magics (magics/shell.c) that are pure functions, declared for
 * the unit tests. */
#ifndef KL_KERNEL_MAGICS_SHELL_H
#define KL_KERNEL_MAGICS_SHELL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* How many leading bytes of s can be sent now: all of them, except a trailing multi-byte UTF-8
 * sequence that is still incomplete (its remaining bytes may arrive in the next read). */
size_t kl_shell_utf8_ready(const char *s, size_t n);
/* True for environment variable names whose values %env hides: those containing TOKEN, SECRET,
 * PASSWORD, PASSWD or KEY, in any case. */
bool kl_shell_env_is_secret(const char *name);
/* A wall time as IPython prints it: three significant digits in s, ms or µs ("1.23 s"). */
void kl_shell_format_duration(double seconds, char *buf, size_t len);

/* %history's options: -n N (entries, default 100), -g (every session of the user), then a glob
 * pattern. */
typedef struct kl_history_args {
    int n;
    bool global;
    char *pattern; /* malloc'd "*words*", or NULL for every input */
} kl_history_args;
/* 0, or -1 with a message in err. Free a->pattern afterwards. */
int kl_shell_history_parse(const char *args, kl_history_args *a, char *err, size_t errlen);
/* The listing of history entries ([session, line, input] triples, oldest first): "  12: input"
 * for lines of the current session, "3/12: input" for others (all of them when global), with
 * continuation lines of an input indented under its first. malloc'd (caller frees). */
char *kl_shell_history_format(json_t *entries, long long current_session, bool global);

#endif
