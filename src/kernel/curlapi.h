/* libcurl, bound at first use (runtime/dynlib.h): only %AddJar, %AddFile, %AddDeps and
 * `kindling health` fetch anything over HTTP, and linking libcurl would load its ~30 libraries
 * (GnuTLS, Kerberos, LDAP, nghttp2, ...) into every kernel at start-up. */
#ifndef KL_KERNEL_CURLAPI_H
#define KL_KERNEL_CURLAPI_H

#include <stddef.h>

#include <curl/curl.h>

#define KL_CURL_FUNCS(X)                                                                           \
    X(curl_easy_cleanup)                                                                           \
    X(curl_easy_getinfo)                                                                           \
    X(curl_easy_init)                                                                              \
    X(curl_easy_perform)                                                                           \
    X(curl_easy_setopt)                                                                            \
    X(curl_easy_strerror)                                                                          \
    X(curl_free)                                                                                   \
    X(curl_global_init)                                                                            \
    X(curl_url)                                                                                    \
    X(curl_url_cleanup)                                                                            \
    X(curl_url_get)                                                                                \
    X(curl_url_set)                                                                                \
    X(curl_url_strerror)

enum {
#define X(n) KL_CURL_FN_##n,
    KL_CURL_FUNCS(X)
#undef X
        KL_CURL_FN_COUNT
};
extern void *kl_curlapi_slots[KL_CURL_FN_COUNT];

/* Binds libcurl and runs curl_global_init, once per process. Returns 0, or -1 with the reason in
 * err. Blocks on file I/O the first time: from the pool or a command-line tool, not the loop. */
int kl_curlapi_load(char *err, size_t errlen);

/* libcurl's function n, typed as curl.h declares it; only after kl_curlapi_load succeeded. */
#define KL_CURL(n) ((__typeof__(&n))kl_curlapi_slots[KL_CURL_FN_##n])

#endif
