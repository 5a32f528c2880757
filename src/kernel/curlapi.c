#include "kernel/curlapi.h"

#include <pthread.h>
#include <stdio.h>

#include "runtime/dynlib.h"

void *kl_curlapi_slots[KL_CURL_FN_COUNT];

static const char *const names[KL_CURL_FN_COUNT] = {
#define X(n) #n,
    KL_CURL_FUNCS(X)
#undef X
};

static kl_dynlib lib = {
    .soname = KL_CURL_SONAME,
    .package_hint = "libcurl: Debian package libcurl4",
    .names = names,
    .slots = kl_curlapi_slots,
    .count = KL_CURL_FN_COUNT,
    .mu = PTHREAD_MUTEX_INITIALIZER,
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;
static void global_init(void) {
    global_rc = KL_CURL(curl_global_init)(CURL_GLOBAL_DEFAULT);
}

int kl_curlapi_load(char *err, size_t errlen) {
    if (kl_dynlib_load(&lib, err, errlen) != 0) return -1;
    /* curl_global_init is not thread-safe in older libcurl: exactly once, whoever comes first. */
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        snprintf(err, errlen, "libcurl could not initialise: %s",
                 KL_CURL(curl_easy_strerror)(global_rc));
        return -1;
    }
    return 0;
}
