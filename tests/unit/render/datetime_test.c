/* Calendar arithmetic and the interval texts at their edges (the common cases are compared with
 * Spark in text_test.c). */
#include <criterion/criterion.h>
#include <stdint.h>

#include "render/datetime.h"

Test(datetime, civil_round_trip_over_a_wide_range) {
    for (int64_t d = -1000000000; d <= 1000000000; d += 7919) {
        int64_t y;
        int m, day;
        kl_datetime_civil_from_days(d, &y, &m, &day);
        cr_assert(m >= 1 && m <= 12 && day >= 1 && day <= 31);
        cr_assert_eq(kl_datetime_days_from_civil(y, m, day), d, "day %lld", (long long)d);
    }
    cr_expect_eq(kl_datetime_days_from_civil(1970, 1, 1), 0);
    cr_expect_eq(kl_datetime_days_from_civil(2000, 3, 1), 11017);
    cr_expect_eq(kl_datetime_days_from_civil(0, 1, 1), -719528);
}

Test(datetime, iso_years) {
    char b[KL_DATETIME_LEN];
    kl_datetime_date(-719528, b);
    cr_expect_str_eq(b, "0000-01-01");
    kl_datetime_date(-719529, b);
    cr_expect_str_eq(b, "-0001-12-31");
    kl_datetime_date(2932897, b);
    cr_expect_str_eq(b, "+10000-01-01");
    kl_datetime_local(-1, 999999999, 0, b);
    cr_expect_str_eq(b, "1969-12-31 23:59:59.999999999");
    kl_datetime_local(86400 + 3661, 500000000, 1, b);
    cr_expect_str_eq(b, "1970-01-02T01:01:01.5");
}

Test(datetime, intervals) {
    char b[KL_DATETIME_LEN];
    kl_datetime_year_month(INT32_MIN, b);
    cr_expect_str_eq(b, "INTERVAL '-178956970-8' YEAR TO MONTH");
    kl_datetime_day_time(INT64_MIN, b);
    cr_expect_str_eq(b, "INTERVAL '-106751991 04:00:54.775808' DAY TO SECOND");
    kl_datetime_day_time(0, b);
    cr_expect_str_eq(b, "INTERVAL '0 00:00:00' DAY TO SECOND");
    kl_datetime_day_time(-(10 * 1000000LL + 250000), b);
    cr_expect_str_eq(b, "INTERVAL '-0 00:00:10.25' DAY TO SECOND");
    kl_datetime_calendar(INT32_MIN, INT32_MIN, INT64_MIN, b);
    /* Java's remainders truncate toward zero, and a zero unit is left out. */
    cr_expect_str_eq(b, "-178956970 years -8 months -2147483648 days -2562047788 hours "
                        "-54.775808 seconds");
    kl_datetime_calendar(12, 0, 0, b);
    cr_expect_str_eq(b, "1 years");
    kl_datetime_calendar(0, 0, 60000000, b);
    cr_expect_str_eq(b, "1 minutes");
}

Test(datetime, offsets) {
    char b[KL_DATETIME_LEN];
    kl_datetime_offset(0, b);
    cr_expect_str_eq(b, "Z");
    kl_datetime_offset(-(7 * 3600 + 52 * 60 + 58), b);
    cr_expect_str_eq(b, "-07:52:58");
    kl_datetime_offset(5 * 3600 + 45 * 60, b);
    cr_expect_str_eq(b, "+05:45");
}
