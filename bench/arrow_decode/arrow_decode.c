/* arrow_decode: times kl_arrow_decode on one Arrow IPC stream file, for bench/spark_bench.py.
 *
 * Lives in its own folder because every C file directly in bench/ is linked into kl_loadgen;
 * spark_bench.py compiles this file on the fly together with src/spark/arrow.c:
 *
 *   cc -O2 -I src bench/arrow_decode/arrow_decode.c src/spark/arrow.c -llz4 -lzstd
 *   ./a.out STREAM_FILE [REPEATS]
 *
 * After one untimed decode (to fault in the input and warm the allocator), each repeat times
 * (a) decode + free, and (b) decode + reading every value through the public accessors + free.
 * (b) reads values the way src/render/ does, one accessor call per cell, so it is the cost a
 * display pays, not a hand-vectorised loop. Prints one JSON object with every timing and a
 * checksum of the values, which the caller compares with pyarrow's so the figure is known to
 * have decoded the right data. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spark/arrow.h"

static double ad_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Returns a malloc'ed copy of the file (free it) with its size in *len, or NULL. */
static uint8_t *ad_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size > 0 && fseek(f, 0, SEEK_SET) == 0) buf = malloc((size_t)size);
    if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) *len = (size_t)size;
    return buf;
}

typedef struct ad_sums {
    uint64_t ints; /* wraps modulo 2^64, as the caller's check expects */
    double floats;
    int64_t values;
} ad_sums;

/* Reads every value of every column; a type it does not expect is an error because the figure
 * would then not cover the whole stream. */
static int ad_read_all(const kl_arrow_stream *s, ad_sums *out) {
    ad_sums sum = {0};
    for (size_t b = 0; b < s->n_batches; b++) {
        const kl_arrow_batch *batch = &s->batches[b];
        for (size_t c = 0; c < batch->n_columns; c++) {
            const kl_arrow_array *a = &batch->columns[c];
            if (a->field->type == KL_ARROW_INT) {
                for (int64_t i = 0; i < a->length; i++)
                    if (!kl_arrow_is_null(a, i)) sum.ints += (uint64_t)kl_arrow_get_int(a, i);
            } else if (a->field->type == KL_ARROW_FLOAT) {
                for (int64_t i = 0; i < a->length; i++)
                    if (!kl_arrow_is_null(a, i)) sum.floats += kl_arrow_get_float(a, i);
            } else {
                fprintf(stderr, "arrow_decode: column %zu is %s, expected int or float\n", c,
                        kl_arrow_type_name(a->field->type));
                return -1;
            }
            sum.values += a->length;
        }
    }
    *out = sum;
    return 0;
}

static int ad_decode(const uint8_t *data, size_t len, kl_arrow_stream **out) {
    char err[KL_ARROW_ERRLEN];
    int rc = kl_arrow_decode(data, len, NULL, out, err);
    if (rc < 0) fprintf(stderr, "arrow_decode: kl_arrow_decode: %s (%d)\n", err, rc);
    return rc;
}

static void ad_print_list(const char *name, const double *v, int n) {
    printf("\"%s\":[", name);
    for (int i = 0; i < n; i++) printf("%s%.9f", i ? "," : "", v[i]);
    printf("],");
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fputs("usage: arrow_decode STREAM_FILE [REPEATS]\n", stderr);
        return 2;
    }
    int repeats = argc == 3 ? atoi(argv[2]) : 5;
    if (repeats < 1 || repeats > 1000) {
        fputs("arrow_decode: REPEATS must be 1-1000\n", stderr);
        return 2;
    }
    size_t len = 0;
    uint8_t *data = ad_read_file(argv[1], &len);
    if (!data) {
        fprintf(stderr, "arrow_decode: cannot read %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    double *decode_s = calloc((size_t)repeats, sizeof *decode_s);
    double *read_s = calloc((size_t)repeats, sizeof *read_s);
    int status = 1;
    kl_arrow_stream *s = NULL;
    ad_sums sums = {0};
    if (!decode_s || !read_s) goto done;

    if (ad_decode(data, len, &s) < 0 || ad_read_all(s, &sums) < 0) goto done;
    size_t n_batches = s->n_batches, n_columns = s->schema.n_fields;
    kl_arrow_stream_free(s);
    s = NULL;

    for (int r = 0; r < repeats; r++) {
        double t0 = ad_now();
        if (ad_decode(data, len, &s) < 0) goto done;
        kl_arrow_stream_free(s);
        s = NULL;
        double t1 = ad_now();
        if (ad_decode(data, len, &s) < 0) goto done;
        ad_sums check;
        if (ad_read_all(s, &check) < 0) goto done;
        kl_arrow_stream_free(s);
        s = NULL;
        double t2 = ad_now();
        /* Also keeps the compiler from dropping the reads. */
        if (check.ints != sums.ints || check.values != sums.values) {
            fputs("arrow_decode: values differ between decodes\n", stderr);
            goto done;
        }
        decode_s[r] = t1 - t0;
        read_s[r] = t2 - t1;
    }

    printf("{\"bytes\":%zu,\"batches\":%zu,\"columns\":%zu,", len, n_batches, n_columns);
    ad_print_list("decode_s", decode_s, repeats);
    ad_print_list("decode_read_s", read_s, repeats);
    printf("\"values\":%" PRId64 ",\"int_sum_u64\":%" PRIu64 ",\"float_sum\":%.17g}\n", sums.values,
           sums.ints, sums.floats);
    status = 0;
done:
    kl_arrow_stream_free(s);
    free(decode_s);
    free(read_s);
    free(data);
    return status;
}
