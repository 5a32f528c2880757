/* Fuzzes kl_zip_check, the "is this a jar" test that runs on whatever a URL served. It must
 * never read outside the input, and must say why when it refuses. An input it accepts must begin
 * with a local file header and end with an end-of-central-directory record. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "kernel/download.h"

typedef struct mem {
    const uint8_t *p;
    size_t n;
} mem;

static ssize_t mem_read(void *arg, void *buf, size_t len, uint64_t off) {
    mem *m = arg;
    if (off >= m->n) return 0;
    if (len > m->n - off) len = m->n - (size_t)off;
    memcpy(buf, m->p + off, len);
    return (ssize_t)len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mem m = {data, size};
    char err[256] = "";
    int rc = kl_zip_check(mem_read, &m, size, err, sizeof err);
    if (rc != 0 && rc != -1) abort();
    if (rc == -1 && !err[0]) abort();
    if (rc == 0) {
        if (size < 26 || memcmp(data, "PK\3\4", 4) != 0) abort();
        int found = 0;
        for (size_t i = 0; i + 22 <= size && !found; i++)
            found = memcmp(data + size - 22 - i, "PK\5\6", 4) == 0;
        if (!found) abort();
    }
    return 0;
}
