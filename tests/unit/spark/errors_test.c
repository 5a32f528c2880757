#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "hexfile.h"
#include "spark/errors.h"

#define VECTOR(name) KL_TEST_DATA "/proto/" name

/* The vectors were serialised by pyspark's own protobuf classes (tests/data/gen_proto_vectors.py),
 * so these tests pin our reading of the real wire format. */

Test(errors, status_trailer_gives_class_state_id_and_retry) {
    size_t len;
    uint8_t *bin = read_hex(VECTOR("rpc_status_error_info.hex"), &len);
    kl_spark_error e;
    kl_spark_error_init(&e);
    kl_spark_error_from_status(&e, 13, "short", bin, len);
    cr_assert_eq(e.code, 13);
    cr_assert_str_eq(e.message, "[TABLE_OR_VIEW_NOT_FOUND] nope");
    cr_assert_str_eq(e.error_class, "TABLE_OR_VIEW_NOT_FOUND");
    cr_assert_str_eq(e.sql_state, "42P01");
    cr_assert_str_eq(e.exception, "org.apache.spark.sql.AnalysisException");
    cr_assert_str_eq(e.error_id, "d9f1b5a0-3c2e-4f6a-8b7d-9e0f1a2b3c4d");
    cr_assert_str_eq(e.message_parameters, "{\"relationName\":\"`nope`\"}");
    cr_assert_eq(e.retry_delay_ms, 2500);
    cr_assert(kl_spark_error_retryable(&e), "RetryInfo makes an error retryable");
    kl_spark_error_free(&e);
    free(bin);
}

Test(errors, fetch_error_details_adds_context) {
    size_t len;
    uint8_t *bin = read_hex(VECTOR("fetch_error_details_resp.hex"), &len);
    kl_spark_error e;
    kl_spark_error_init(&e);
    kl_spark_error_from_status(&e, 13, "[TABLE_OR_VIEW_NOT_FOUND] nope", NULL, 0);
    cr_assert_eq(kl_spark_error_add_details(&e, bin, len), 0);
    cr_assert_str_eq(e.message,
                     "[TABLE_OR_VIEW_NOT_FOUND] The table or view `nope` cannot be found.");
    cr_assert_str_eq(e.error_class, "TABLE_OR_VIEW_NOT_FOUND");
    cr_assert_str_eq(e.sql_state, "42P01");
    cr_assert_eq(e.context_start, 14);
    cr_assert_eq(e.context_stop, 17);
    char *text = kl_spark_error_format(&e, "SELECT * FROM nope");
    cr_assert_str_eq(text, "TABLE_OR_VIEW_NOT_FOUND (SQLSTATE 42P01)\n"
                           "[TABLE_OR_VIEW_NOT_FOUND] The table or view `nope` cannot be found.\n\n"
                           "== SQL (line 1, position 15) ==\n"
                           "SELECT * FROM nope\n"
                           "              ^^^^");
    free(text);
    kl_spark_error_free(&e);
    free(bin);
}

Test(errors, fragment_on_a_later_line_with_unicode_before_it) {
    kl_spark_error e;
    kl_spark_error_init(&e);
    kl_spark_error_from_status(&e, 13, "boom", NULL, 0);
    /* "SELECT 'é',\n  nope": characters 14..17 are "nope", on line 2. */
    e.context_start = 14;
    e.context_stop = 17;
    char *text = kl_spark_error_format(&e, "SELECT '\xc3\xa9',\n  nope");
    cr_assert_str_eq(text, "boom\n\n== SQL (line 2, position 3) ==\n  nope\n  ^^^^");
    free(text);
    kl_spark_error_free(&e);
}

Test(errors, garbage_details_keep_code_and_message) {
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0x01};
    kl_spark_error e;
    kl_spark_error_init(&e);
    kl_spark_error_from_status(&e, 14, "failed to connect to all addresses", junk, sizeof junk);
    cr_assert_eq(e.code, 14);
    cr_assert_str_eq(e.message, "failed to connect to all addresses");
    cr_assert_null(e.error_class);
    cr_assert(kl_spark_error_retryable(&e), "UNAVAILABLE is retried");
    cr_assert_eq(kl_spark_error_add_details(&e, junk, sizeof junk), -1);
    kl_spark_error_free(&e);
}

Test(errors, retry_policy) {
    kl_spark_error e;
    kl_spark_error_init(&e);
    kl_spark_error_from_status(&e, 13, "[INVALID_CURSOR.DISCONNECTED] reattach", NULL, 0);
    cr_assert(kl_spark_error_retryable(&e));
    kl_spark_error_free(&e);
    kl_spark_error_init(&e);
    kl_spark_error_from_status(&e, 13, "[DIVIDE_BY_ZERO] x", NULL, 0);
    cr_assert_not(kl_spark_error_retryable(&e));
    kl_spark_error_free(&e);
    kl_spark_error_init(&e);
    kl_spark_error_from_status(&e, 16, "unauthenticated", NULL, 0);
    cr_assert_not(kl_spark_error_retryable(&e));
    kl_spark_error_free(&e);
}
