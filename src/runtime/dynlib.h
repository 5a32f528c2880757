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

/* Loads lib once per process and fills every slot. Returns 0, or -1 with the reason (which
 * library, which symbol, what to install) copied into err. A failure is remembered: the library
 * is not looked for again. Blocks on file I/O and relocation the first time: never call it first
 * from the loop thread. Thread-safe. The library stays loaded until the process exits. */
int kl_dynlib_load(kl_dynlib *lib, char *err, size_t errlen);

/* 1 once kl_dynlib_load succeeded: a cheap check before calling through the slots. */
int kl_dynlib_loaded(kl_dynlib *lib);

#endif
