/* Time zones for rendering timestamps in a Spark session's zone, without touching the process's
 * TZ. Switching TZ (setenv + tzset + localtime_r) under a mutex would still race with every other
 * thread that reads the environment or calls localtime without that mutex, and would serialize
 * all rendering. Instead the zoneinfo files (TZif, RFC 8536, including the POSIX TZ footer that
 * covers instants after the last listed transition) are parsed here with every count and offset
 * bounds-checked; a parsed zone is immutable, so lookups need no lock once it is loaded.
 *
 * Zone ids are resolved the way Spark resolves spark.sql.session.timeZone (java.time.ZoneId with
 * ZoneId.SHORT_IDS): region names ("America/Los_Angeles") from the zoneinfo directory ($TZDIR or
 * /usr/share/zoneinfo), "Z", "UTC", "GMT", "UT", fixed offsets ("+05:30", "-8", "+0530",
 * "+5:30"), prefixed offsets ("GMT+8", "UTC-03:00") and Java's short ids ("PST", "IST"). */
#ifndef KL_RENDER_TZ_H
#define KL_RENDER_TZ_H

#include <stddef.h>
#include <stdint.h>

typedef struct kl_tz kl_tz;

/* Looks up (and on first use loads) a zone. Zones are cached for the life of the process and
 * shared between threads: the caller must not free *out. Returns 0, -ENOENT (no such zone),
 * -EINVAL (malformed id or zone file), -E2BIG (too many distinct zones) or -ENOMEM. */
int kl_tz_get(const char *id, const kl_tz **out);

/* The zone's id as it was looked up ("" for a zone from kl_tz_parse). */
const char *kl_tz_name(const kl_tz *tz);

/* Seconds east of UTC that the zone's local time has at the UTC instant t (seconds since
 * 1970-01-01T00:00:00Z). */
int32_t kl_tz_offset(const kl_tz *tz, int64_t t);

/* Parses TZif bytes into a zone owned by the caller (free it with kl_tz_free). Returns 0,
 * -EINVAL or -ENOMEM. For tests and fuzzing; kl_tz_get is what renderers use. */
int kl_tz_parse(const void *data, size_t len, kl_tz **out);
void kl_tz_free(kl_tz *tz);

#endif
