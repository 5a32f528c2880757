/* Dates, times, timestamps and intervals as Spark 4 prints them (ToPrettyString / Cast to string):
 * proleptic Gregorian calendar, ISO years ("0000", "-0001", "+10000"), fractions of a second
 * without trailing zeros, ANSI interval literals. Every function writes a NUL-terminated string
 * into buf (KL_DATETIME_LEN bytes always suffice) and returns its length. */
#ifndef KL_RENDER_DATETIME_H
#define KL_RENDER_DATETIME_H

#include <stddef.h>
#include <stdint.h>

#define KL_DATETIME_LEN 128

/* Days since 1970-01-01 for a proleptic Gregorian date (month 1-12, day 1-31), and back. Exact
 * for any date whose day count fits in an int64. */
int64_t kl_datetime_days_from_civil(int64_t year, int month, int day);
void kl_datetime_civil_from_days(int64_t days, int64_t *year, int *month, int *day);

/* yyyy-MM-dd */
size_t kl_datetime_date(int64_t days, char *buf);
/* yyyy-MM-dd HH:mm:ss[.fffffffff] of a local time given as seconds since the local epoch plus
 * nanoseconds (0-999999999); iso puts 'T' between date and time. */
size_t kl_datetime_local(int64_t local_seconds, int32_t nanos, int iso, char *buf);
/* HH:mm:ss[.fffffffff] */
size_t kl_datetime_time_of_day(int64_t nanos_of_day, char *buf);
/* "+hh:mm", "+hh:mm:ss" when seconds are not 0, or "Z" for 0 (ISO 8601). */
size_t kl_datetime_offset(int32_t offset_seconds, char *buf);

/* INTERVAL 'y-m' YEAR TO MONTH (Arrow carries no start/end fields, so always the full form). */
size_t kl_datetime_year_month(int32_t months, char *buf);
/* INTERVAL 'd hh:mm:ss[.ffffff]' DAY TO SECOND */
size_t kl_datetime_day_time(int64_t micros, char *buf);
/* CalendarInterval.toString: "1 years 2 months 3 days 4 hours 5 minutes 6.5 seconds". */
size_t kl_datetime_calendar(int32_t months, int32_t days, int64_t micros, char *buf);

/* Splits a count of unit ticks (unit_per_second 1, 1e3, 1e6 or 1e9) into seconds and
 * nanoseconds, flooring toward negative infinity. */
void kl_datetime_split(int64_t ticks, int64_t unit_per_second, int64_t *seconds, int32_t *nanos);

#endif
