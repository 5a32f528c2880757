/* Shared libraries bound at first use instead of at start-up.
 *
 * A dependency that only some kernels need (the gRPC core with its ~60 libraries, libcurl,
 * libmicrohttpd, libedit) costs every kernel start-up time and resident memory if it is linked:
 * the dynamic loader maps and relocates it and runs its constructors before main. Such a library is
 * instead named by its SONAME and resolved here the first time a caller needs it. */
#ifndef KL_RUNTIME_DYNLIB_H
#define KL_RUNTIME_DYNLIB_H

#include <pthread.h>
#include <stddef.h>

/* Describes a library and where its symbols go; define one statically per library. slots[i]
 * receives the address of names[i]. The struct itself keeps the outcome of the first load. */
typedef struct kl_dynlib {
    const char *soname;       /* e.g. "libgrpc.so.29": what the loader searches for */
    const char *package_hint; /* what to install when it is missing, for the error; may be NULL */
    const char *const *names;
    void **slots;
    size_t count;
    pthread_mutex_t mu; /* PTHREAD_MUTEX_INITIALIZER */
    int state;          /* 0 not tried, 1 loaded, -1 failed */
    char error[512];
} kl_dynlib;

/* The boilerplate of one library, from an X-macro LIST(X) naming the functions used:
 * KL_DYNLIB_DEFINE(var, LIST, soname, hint) defines `static kl_dynlib var` with its names and
 * slots, and KL_DYNLIB_FN(var, n) is function n's slot, typed as the library's header declares n.
 * Slots are indexed by function name (KL_DYNLIB_I_<name>), unique in a program. */
#define KL_DYNLIB_INDEX(n) KL_DYNLIB_I_##n,
#define KL_DYNLIB_NAME(n)  #n,
#define KL_DYNLIB_DEFINE(var, LIST, soname_, hint_)                                                \
    enum { LIST(KL_DYNLIB_INDEX) var##_count_ };                                                   \
    static const char *const var##_names[var##_count_] = {LIST(KL_DYNLIB_NAME)};                   \
    static void *var##_slots[var##_count_];                                                        \
    static kl_dynlib var = {.soname = soname_,                                                     \
                            .package_hint = hint_,                                                 \
                            .names = var##_names,                                                  \
                            .slots = var##_slots,                                                  \
                            .count = var##_count_,                                                 \
                            .mu = PTHREAD_MUTEX_INITIALIZER}
#define KL_DYNLIB_FN(var, n) ((__typeof__(&n))var##_slots[KL_DYNLIB_I_##n])

/* Loads lib once per process and fills every slot. Returns 0, or -1 with the reason (which
 * library, which symbol, what to install) copied into err. A failure is remembered: the library
 * is not looked for again. Blocks on file I/O and relocation the first time: never call it first
 * from the loop thread. Thread-safe. The library stays loaded until the process exits. */
int kl_dynlib_load(kl_dynlib *lib, char *err, size_t errlen);

/* 1 once kl_dynlib_load succeeded: a cheap check before calling through the slots. */
int kl_dynlib_loaded(kl_dynlib *lib);

#endif
