#include "render/datetime.h"

#include <stdio.h>
#include <string.h>

#define SECONDS_PER_DAY 86400
#define MICROS_PER_SEC  1000000LL
#define MICROS_PER_MIN  (60 * MICROS_PER_SEC)
#define MICROS_PER_HOUR (60 * MICROS_PER_MIN)
#define MICROS_PER_DAY  (24 * MICROS_PER_HOUR)

/* Floor division and modulo: calendar arithmetic on negative counts must round toward the past. */
static int64_t floordiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

/* The era-based conversion (400-year cycles of 146097 days) keeps every intermediate value
 * small and exact for negative years too. */
int64_t kl_datetime_days_from_civil(int64_t year, int month, int day) {
    int64_t y = year - (month <= 2);
    int64_t era = floordiv(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void kl_datetime_civil_from_days(int64_t days, int64_t *year, int *month, int *day) {
    int64_t z = days + 719468;
    int64_t era = floordiv(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = yoe + era * 400 + (*month <= 2);
}

void kl_datetime_split(int64_t ticks, int64_t unit_per_second, int64_t *seconds, int32_t *nanos) {
    int64_t frac = ticks % unit_per_second; /* not ticks - s * unit: that overflows at the ends */
    if (frac < 0) frac += unit_per_second;
    *seconds = floordiv(ticks, unit_per_second);
    *nanos = (int32_t)(frac * (1000000000LL / unit_per_second));
}

/* java.time's ISO year: at least four digits, a '+' once it needs more, '-' for years before 1. */
static size_t put_year(int64_t year, char *buf) {
    if (year > 9999) return (size_t)sprintf(buf, "+%lld", (long long)year);
    if (year < 0) return (size_t)sprintf(buf, "-%04lld", -(long long)year);
    return (size_t)sprintf(buf, "%04lld", (long long)year);
}

size_t kl_datetime_date(int64_t days, char *buf) {
    int64_t y;
    int m, d;
    kl_datetime_civil_from_days(days, &y, &m, &d);
    size_t n = put_year(y, buf);
    return n + (size_t)sprintf(buf + n, "-%02d-%02d", m, d);
}

/* ".fff" with trailing zeros dropped, nothing for 0 (DateTimeFormatter.appendFraction(0, 9)). */
static size_t put_fraction(int64_t value, int digits, char *buf) {
    if (value == 0) {
        buf[0] = '\0';
        return 0;
    }
    while (value % 10 == 0) {
        value /= 10;
        digits--;
    }
    return (size_t)sprintf(buf, ".%0*lld", digits, (long long)value);
}

size_t kl_datetime_time_of_day(int64_t nanos_of_day, char *buf) {
    int64_t s = floordiv(nanos_of_day, 1000000000LL);
    int64_t ns = nanos_of_day % 1000000000LL;
    if (ns < 0) ns += 1000000000LL;
    s %= SECONDS_PER_DAY;
    if (s < 0) s += SECONDS_PER_DAY;
    size_t n =
        (size_t)sprintf(buf, "%02d:%02d:%02d", (int)(s / 3600), (int)(s / 60 % 60), (int)(s % 60));
    return n + put_fraction(ns, 9, buf + n);
}

size_t kl_datetime_local(int64_t local_seconds, int32_t nanos, int iso, char *buf) {
    int64_t days = floordiv(local_seconds, SECONDS_PER_DAY);
    int64_t sod = local_seconds % SECONDS_PER_DAY;
    if (sod < 0) sod += SECONDS_PER_DAY;
    size_t n = kl_datetime_date(days, buf);
    buf[n++] = iso ? 'T' : ' ';
    n += (size_t)sprintf(buf + n, "%02d:%02d:%02d", (int)(sod / 3600), (int)(sod / 60 % 60),
                         (int)(sod % 60));
    return n + put_fraction(nanos, 9, buf + n);
}

size_t kl_datetime_offset(int32_t offset_seconds, char *buf) {
    if (offset_seconds == 0) return (size_t)sprintf(buf, "Z");
    char sign = offset_seconds < 0 ? '-' : '+';
    int64_t a = offset_seconds < 0 ? -(int64_t)offset_seconds : offset_seconds;
    if (a % 60)
        return (size_t)sprintf(buf, "%c%02d:%02d:%02d", sign, (int)(a / 3600), (int)(a / 60 % 60),
                               (int)(a % 60));
    return (size_t)sprintf(buf, "%c%02d:%02d", sign, (int)(a / 3600), (int)(a / 60 % 60));
}

size_t kl_datetime_year_month(int32_t months, char *buf) {
    int64_t a = months < 0 ? -(int64_t)months : months;
    return (size_t)sprintf(buf, "INTERVAL '%s%lld-%lld' YEAR TO MONTH", months < 0 ? "-" : "",
                           (long long)(a / 12), (long long)(a % 12));
}

/* BigDecimal.valueOf(micros, 6).stripTrailingZeros().toPlainString() for 0 <= micros. */
static size_t put_seconds(int64_t micros, char *buf) {
    size_t n = (size_t)sprintf(buf, "%lld", (long long)(micros / MICROS_PER_SEC));
    return n + put_fraction(micros % MICROS_PER_SEC, 6, buf + n);
}

size_t kl_datetime_day_time(int64_t micros, char *buf) {
    if (micros == INT64_MIN) /* its negation overflows; Spark spells it out the same way */
        return (size_t)sprintf(buf, "INTERVAL '-106751991 04:00:54.775808' DAY TO SECOND");
    const char *sign = micros < 0 ? "-" : "";
    int64_t rest = micros < 0 ? -micros : micros;
    size_t n = (size_t)sprintf(buf, "INTERVAL '%s%lld %02d:%02d:", sign,
                               (long long)(rest / MICROS_PER_DAY),
                               (int)(rest % MICROS_PER_DAY / MICROS_PER_HOUR),
                               (int)(rest % MICROS_PER_HOUR / MICROS_PER_MIN));
    rest %= MICROS_PER_MIN;
    if (rest < 10 * MICROS_PER_SEC) buf[n++] = '0';
    n += put_seconds(rest, buf + n);
    return n + (size_t)sprintf(buf + n, "' DAY TO SECOND");
}

static size_t put_unit(char *buf, int64_t value, const char *unit) {
    if (value == 0) return 0;
    return (size_t)sprintf(buf, "%lld %s ", (long long)value, unit);
}

size_t kl_datetime_calendar(int32_t months, int32_t days, int64_t micros, char *buf) {
    if (months == 0 && days == 0 && micros == 0) return (size_t)sprintf(buf, "0 seconds");
    size_t n = 0;
    if (months != 0) {
        n += put_unit(buf + n, months / 12, "years");
        n += put_unit(buf + n, months % 12, "months");
    }
    n += put_unit(buf + n, days, "days");
    if (micros != 0) {
        int64_t rest = micros;
        n += put_unit(buf + n, rest / MICROS_PER_HOUR, "hours");
        rest %= MICROS_PER_HOUR;
        n += put_unit(buf + n, rest / MICROS_PER_MIN, "minutes");
        rest %= MICROS_PER_MIN;
        if (rest != 0) {
            if (rest < 0) buf[n++] = '-';
            n += put_seconds(rest < 0 ? -rest : rest, buf + n);
            n += (size_t)sprintf(buf + n, " seconds ");
        }
    }
    buf[--n] = '\0'; /* the trailing space */
    return n;
}
