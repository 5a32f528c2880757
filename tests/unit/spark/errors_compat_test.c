#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "spark/errors.h"
#include "spark/proto/kindling_rpc_status.pb-c.h"

/* A status trailer as a Spark 3.5 server sends it: ErrorInfo with the exception class and its
 * "classes" only; no errorClass, sqlState or errorId metadata. Packed by us, so its bytes follow
 * what the 3.5 server was seen to send (checked against spark-connect_2.12 3.5.7). Caller frees. */
static uint8_t *spark35_trailer(const char *message, size_t *len) {
    Google__Rpc__ErrorInfo__MetadataEntry classes = GOOGLE__RPC__ERROR_INFO__METADATA_ENTRY__INIT;
    classes.key = "classes";
    classes.value = "[\"org.apache.spark.sql.catalyst.ExtendedAnalysisException\","
                    "\"org.apache.spark.sql.AnalysisException\"]";
    Google__Rpc__ErrorInfo__MetadataEntry *entries[] = {&classes};
    Google__Rpc__ErrorInfo info = GOOGLE__RPC__ERROR_INFO__INIT;
    info.reason = "org.apache.spark.sql.catalyst.ExtendedAnalysisException";
    info.domain = "org.apache.spark";
    info.n_metadata = 1;
    info.metadata = entries;
    uint8_t info_bin[512];
    size_t info_len = google__rpc__error_info__pack(&info, info_bin);

    Google__Rpc__Any any = GOOGLE__RPC__ANY__INIT;
    any.type_url = "type.googleapis.com/google.rpc.ErrorInfo";
    any.has_value = true;
    any.value.data = info_bin;
    any.value.len = info_len;
    Google__Rpc__Any *details[] = {&any};
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    st.has_code = true;
    st.code = 13;
    st.message = (char *)message;
    st.n_details = 1;
    st.details = details;
    *len = google__rpc__status__get_packed_size(&st);
    uint8_t *bin = malloc(*len);
    cr_assert_not_null(bin);
    google__rpc__status__pack(&st, bin);
    return bin;
}

Test(errors_compat, spark35_class_comes_from_the_message) {
    const char *msg = "[TABLE_OR_VIEW_NOT_FOUND] The table or view `nope` cannot be found.; line 1 "
                      "pos 14;\n'Project [*]";
    size_t len;
    uint8_t *bin = spark35_trailer(msg, &len);
    kl_spark_error e;
    kl_spark_error_init(&e);
    kl_spark_error_from_status(&e, 13, "short", bin, len);
    cr_assert_str_eq(e.error_class, "TABLE_OR_VIEW_NOT_FOUND");
    cr_assert_str_eq(e.message, msg);
    cr_assert_null(e.sql_state, "3.5 sends no SQLSTATE");
    cr_assert_null(e.error_id, "3.5 has no FetchErrorDetails to ask");
    cr_assert_str_eq(e.exception, "org.apache.spark.sql.catalyst.ExtendedAnalysisException");
    char *text = kl_spark_error_format(&e, "SELECT * FROM nope");
    const char *head = "TABLE_OR_VIEW_NOT_FOUND\n[TABLE_OR_VIEW_NOT_FOUND] The table";
    cr_assert(strncmp(text, head, strlen(head)) == 0, "%s", text);
    free(text);
    kl_spark_error_free(&e);
    free(bin);
}

Test(errors_compat, spark35_subclass_after_a_newline) {
    size_t len;
    uint8_t *bin = spark35_trailer("\n[INVALID_HANDLE.OPERATION_NOT_FOUND] gone", &len);
    kl_spark_error e;
    kl_spark_error_init(&e);
    kl_spark_error_from_status(&e, 13, NULL, bin, len);
    cr_assert_str_eq(e.error_class, "INVALID_HANDLE.OPERATION_NOT_FOUND");
    kl_spark_error_free(&e);
    free(bin);
}

Test(errors_compat, spark35_failed_job_reports_the_task_error_without_stack_frames) {
    const char *msg =
        "Job aborted due to stage failure: Task 1 in stage 91.0 failed 1 times, most recent "
        "failure: Lost task 1.0 in stage 91.0 (TID 111) (localhost executor driver): "
        "org.apache.spark.SparkArithmeticException: [DIVIDE_BY_ZERO] Division by zero.\n"
        "== SQL(line 1, position 12) ==\n"
        "SELECT id, 10 / (id - 2) AS q FROM range(5)\n"
        "           ^^^^^^^^^^^^^\n"
        "\n"
        "\tat org.apache.spark.sql.errors.QueryExecutionErrors$.divideByZeroError(x.scala:206)\n"
        "\tat scala.collection.Iterator.foreach(Iterator.scala:943)";
    size_t len;
    uint8_t *bin = spark35_trailer(msg, &len);
    kl_spark_error e;
    kl_spark_error_init(&e);
    kl_spark_error_from_status(&e, 13, "short", bin, len);
    cr_assert_str_eq(e.error_class, "DIVIDE_BY_ZERO");
    cr_assert_str_eq(e.message, "[DIVIDE_BY_ZERO] Division by zero.\n"
                                "== SQL(line 1, position 12) ==\n"
                                "SELECT id, 10 / (id - 2) AS q FROM range(5)\n"
                                "           ^^^^^^^^^^^^^");
    kl_spark_error_free(&e);
    free(bin);
}

Test(errors_compat, spark35_stack_frames_are_cut_from_a_leading_class_message) {
    size_t len;
    uint8_t *bin = spark35_trailer("[INTERNAL_ERROR] boom\n\tat a.b(c.java:1)", &len);
    kl_spark_error e;
    kl_spark_error_init(&e);
    kl_spark_error_from_status(&e, 13, NULL, bin, len);
    cr_assert_str_eq(e.error_class, "INTERNAL_ERROR");
    cr_assert_str_eq(e.message, "[INTERNAL_ERROR] boom");
    kl_spark_error_free(&e);
    free(bin);
}

Test(errors_compat, a_class_given_as_metadata_is_never_overridden) {
    /* 4.0+ sends errorClass: the message is then left exactly as the server wrote it. */
    Google__Rpc__ErrorInfo__MetadataEntry cls = GOOGLE__RPC__ERROR_INFO__METADATA_ENTRY__INIT;
    cls.key = "errorClass";
    cls.value = "DIVIDE_BY_ZERO";
    Google__Rpc__ErrorInfo__MetadataEntry *entries[] = {&cls};
    Google__Rpc__ErrorInfo info = GOOGLE__RPC__ERROR_INFO__INIT;
    info.reason = "org.apache.spark.SparkArithmeticException";
    info.n_metadata = 1;
    info.metadata = entries;
    uint8_t info_bin[256];
    size_t info_len = google__rpc__error_info__pack(&info, info_bin);
    Google__Rpc__Any any = GOOGLE__RPC__ANY__INIT;
    any.type_url = "type.googleapis.com/google.rpc.ErrorInfo";
    any.has_value = true;
    any.value.data = info_bin;
    any.value.len = info_len;
    Google__Rpc__Any *details[] = {&any};
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    st.message = "x: org.apache.spark.SparkException: [OTHER_CLASS] y\n\tat a.b(c.java:1)";
    st.n_details = 1;
    st.details = details;
    uint8_t bin[512];
    size_t len = google__rpc__status__pack(&st, bin);
    kl_spark_error e;
    kl_spark_error_init(&e);
    kl_spark_error_from_status(&e, 13, NULL, bin, len);
    cr_assert_str_eq(e.error_class, "DIVIDE_BY_ZERO");
    cr_assert_str_eq(e.message, st.message);
    kl_spark_error_free(&e);
}

Test(errors_compat, bracketed_text_that_is_no_class_is_left_alone) {
    const char *messages[] = {"[not a class] boom",
                              "[] boom",
                              "[A.] boom",
                              "no bracket",
                              "[ABC boom",
                              "",
                              "RuntimeException: [lower] x",
                              "Exception: [",
                              "Exception: [A"};
    for (size_t i = 0; i < sizeof messages / sizeof *messages; i++) {
        size_t len;
        uint8_t *bin = spark35_trailer(messages[i], &len);
        kl_spark_error e;
        kl_spark_error_init(&e);
        kl_spark_error_from_status(&e, 13, "x", bin, len);
        cr_assert_null(e.error_class, "'%s' gave class %s", messages[i], e.error_class);
        kl_spark_error_free(&e);
        free(bin);
    }
}

Test(errors_compat, a_transport_message_is_never_read_as_a_class) {
    kl_spark_error e;
    kl_spark_error_init(&e);
    /* No ErrorInfo: not Spark's error, whatever the text says. */
    kl_spark_error_from_status(&e, 14, "[UNAVAILABLE] proxy says no", NULL, 0);
    cr_assert_null(e.error_class);
    kl_spark_error_free(&e);
}
