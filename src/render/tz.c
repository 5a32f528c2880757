#include "render/tz.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "render/datetime.h"

#define MAX_ZONE_FILE   (1 << 20)
#define MAX_CACHED      1024
#define MAX_UTOFF       (26 * 3600) /* beyond any real zone; Java itself stops at 18 hours */
#define SECONDS_PER_DAY 86400

/* A transition date of a POSIX TZ rule ("Jn", "n" or "Mm.w.d") plus the local time of day. */
typedef struct rule_date {
    char kind; /* 'J' (1-365, Feb 29 never counted), 'N' (0-365), 'M' (month, week, weekday) */
    int a, b, c;
    int32_t time; /* seconds after local midnight; may be negative or past 24h (RFC 8536) */
} rule_date;

/* The footer rule that extends a zone past its last listed transition. */
typedef struct posix_rule {
    int32_t std_off, dst_off; /* seconds east of UTC */
    bool has_dst;
    rule_date start, end; /* start is in local standard time, end in local daylight time */
} posix_rule;

struct kl_tz {
    char *name;
    size_t n_trans;
    int64_t *trans; /* UTC seconds, ascending */
    uint8_t *type;  /* per transition: index into offs */
    size_t n_types; /* >= 1 */
    int32_t *offs;  /* per local time type: seconds east of UTC */
    bool has_rule;
    posix_rule rule;
    struct kl_tz *next; /* cache list */
};

/* ---- POSIX TZ strings (the TZif footer) ---- */

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static const char *parse_abbr(const char *s) {
    if (*s == '<') {
        const char *e = strchr(s, '>');
        return e && e > s + 1 ? e + 1 : NULL;
    }
    const char *p = s;
    while (is_alpha(*p)) p++;
    return p - s >= 3 ? p : NULL;
}

static const char *parse_num(const char *s, int max_digits, int *out) {
    int v = 0, n = 0;
    while (is_digit(*s) && n < max_digits) {
        v = v * 10 + (*s++ - '0');
        n++;
    }
    if (n == 0) return NULL;
    *out = v;
    return s;
}

/* [+-]h[hh][:mm[:ss]] as seconds; hours at most max_hours. */
static const char *parse_hms(const char *s, int max_hours, int32_t *out) {
    int sign = 1, h, m = 0, sec = 0;
    if (*s == '+' || *s == '-') sign = *s++ == '-' ? -1 : 1;
    if (!(s = parse_num(s, 3, &h)) || h > max_hours) return NULL;
    if (*s == ':') {
        if (!(s = parse_num(s + 1, 2, &m)) || m > 59) return NULL;
        if (*s == ':' && (!(s = parse_num(s + 1, 2, &sec)) || sec > 59)) return NULL;
    }
    *out = sign * (h * 3600 + m * 60 + sec);
    return s;
}

static const char *parse_rule_date(const char *s, rule_date *d) {
    memset(d, 0, sizeof *d);
    if (*s == 'J') {
        d->kind = 'J';
        if (!(s = parse_num(s + 1, 3, &d->a)) || d->a < 1 || d->a > 365) return NULL;
    } else if (*s == 'M') {
        d->kind = 'M';
        if (!(s = parse_num(s + 1, 2, &d->a)) || d->a < 1 || d->a > 12 || *s != '.') return NULL;
        if (!(s = parse_num(s + 1, 1, &d->b)) || d->b < 1 || d->b > 5 || *s != '.') return NULL;
        if (!(s = parse_num(s + 1, 1, &d->c)) || d->c > 6) return NULL;
    } else {
        d->kind = 'N';
        if (!(s = parse_num(s, 3, &d->a)) || d->a > 365) return NULL;
    }
    d->time = 2 * 3600;
    if (*s == '/' && !(s = parse_hms(s + 1, 167, &d->time))) return NULL;
    return s;
}

/* Returns false for a malformed string; an empty one means "no rule". */
static bool parse_posix(const char *s, posix_rule *r, bool *present) {
    memset(r, 0, sizeof *r);
    *present = false;
    if (!*s) return true;
    int32_t off;
    if (!(s = parse_abbr(s)) || !(s = parse_hms(s, 24, &off))) return false;
    r->std_off = -off; /* POSIX counts west of UTC as positive */
    r->dst_off = r->std_off + 3600;
    if (*s) {
        if (!(s = parse_abbr(s))) return false;
        r->has_dst = true;
        if (*s && *s != ',') {
            if (!(s = parse_hms(s, 24, &off))) return false;
            r->dst_off = -off;
        }
        if (*s == ',') {
            if (!(s = parse_rule_date(s + 1, &r->start)) || *s != ',') return false;
            if (!(s = parse_rule_date(s + 1, &r->end))) return false;
        } else { /* POSIX leaves this to the implementation; this is the US rule glibc assumes */
            r->start = (rule_date){'M', 3, 2, 0, 2 * 3600};
            r->end = (rule_date){'M', 11, 1, 0, 2 * 3600};
        }
    }
    if (*s) return false;
    *present = true;
    return true;
}

static bool is_leap(int64_t y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Local seconds since the epoch at which a rule date takes effect in the given year. */
static int64_t rule_local(const rule_date *d, int64_t year) {
    int64_t days;
    if (d->kind == 'J') {
        days = kl_datetime_days_from_civil(year, 1, 1) + d->a - 1;
        if (is_leap(year) && d->a >= 60) days++;
    } else if (d->kind == 'N') {
        days = kl_datetime_days_from_civil(year, 1, 1) + d->a;
    } else {
        static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int dim = mdays[d->a - 1] + (d->a == 2 && is_leap(year));
        int64_t first = kl_datetime_days_from_civil(year, d->a, 1);
        int64_t dow = ((first + 4) % 7 + 7) % 7; /* 1970-01-01 was a Thursday */
        int day = 1 + (int)((d->c - dow + 7) % 7) + (d->b - 1) * 7;
        while (day > dim) day -= 7;
        days = first + day - 1;
    }
    return days * SECONDS_PER_DAY + d->time;
}

#define RULE_RANGE ((int64_t)1 << 52) /* +-142 million years: keeps the arithmetic exact */

static int32_t rule_offset(const posix_rule *r, int64_t t) {
    if (!r->has_dst) return r->std_off;
    if (t > RULE_RANGE) t = RULE_RANGE;
    if (t < -RULE_RANGE) t = -RULE_RANGE;
    int64_t y;
    int m, d;
    int64_t local = t + r->std_off;
    int64_t days = local / SECONDS_PER_DAY - (local % SECONDS_PER_DAY < 0);
    kl_datetime_civil_from_days(days, &y, &m, &d);
    int64_t start = rule_local(&r->start, y) - r->std_off;
    int64_t end = rule_local(&r->end, y) - r->dst_off;
    bool dst = start < end ? (t >= start && t < end) : !(t >= end && t < start);
    return dst ? r->dst_off : r->std_off;
}

/* ---- TZif ---- */

typedef struct tzif_header {
    char version;
    uint32_t isut, isstd, leap, time, type, chars;
} tzif_header;

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p) {
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static bool read_header(const uint8_t *p, size_t len, tzif_header *h) {
    if (len < 44 || memcmp(p, "TZif", 4) != 0) return false;
    h->version = (char)p[4];
    h->isut = be32(p + 20);
    h->isstd = be32(p + 24);
    h->leap = be32(p + 28);
    h->time = be32(p + 32);
    h->type = be32(p + 36);
    h->chars = be32(p + 40);
    /* Counts this large cannot fit in a zone file, and keep the size sums below exact. */
    if (h->isut > MAX_ZONE_FILE || h->isstd > MAX_ZONE_FILE || h->leap > MAX_ZONE_FILE ||
        h->time > MAX_ZONE_FILE || h->chars > MAX_ZONE_FILE)
        return false;
    return h->type >= 1 && h->type <= 256;
}

static uint64_t block_size(const tzif_header *h, unsigned tsz) {
    return (uint64_t)h->time * tsz + h->time + (uint64_t)h->type * 6 + h->chars +
           (uint64_t)h->leap * (tsz + 4) + h->isstd + h->isut;
}

static kl_tz *tz_alloc(size_t n_trans, size_t n_types) {
    kl_tz *z = calloc(1, sizeof *z);
    if (!z) return NULL;
    z->trans = malloc((n_trans ? n_trans : 1) * sizeof *z->trans);
    z->type = malloc(n_trans ? n_trans : 1);
    z->offs = malloc(n_types * sizeof *z->offs);
    if (!z->trans || !z->type || !z->offs) {
        kl_tz_free(z);
        return NULL;
    }
    z->n_trans = n_trans;
    z->n_types = n_types;
    return z;
}

int kl_tz_parse(const void *data, size_t len, kl_tz **out) {
    const uint8_t *p = data;
    *out = NULL;
    tzif_header h;
    if (!read_header(p, len, &h)) return -EINVAL;
    size_t pos = 44;
    unsigned tsz = 4;
    if (h.version >= '2') { /* skip the 32-bit block: the 64-bit one that follows is complete */
        uint64_t skip = block_size(&h, 4);
        if (skip > len - pos) return -EINVAL;
        pos += (size_t)skip;
        if (!read_header(p + pos, len - pos, &h)) return -EINVAL;
        pos += 44;
        tsz = 8;
    }
    uint64_t need = block_size(&h, tsz);
    if (need > len - pos) return -EINVAL;

    kl_tz *z = tz_alloc(h.time, h.type);
    if (!z) return -ENOMEM;
    const uint8_t *tp = p + pos;
    const uint8_t *ip = tp + (size_t)h.time * tsz;
    const uint8_t *yp = ip + h.time;
    for (size_t i = 0; i < h.time; i++) {
        z->trans[i] = tsz == 8 ? be64(tp + i * 8) : (int32_t)be32(tp + i * 4);
        z->type[i] = ip[i];
        if (ip[i] >= h.type || (i > 0 && z->trans[i] <= z->trans[i - 1])) goto bad;
    }
    for (size_t i = 0; i < h.type; i++) {
        int32_t off = (int32_t)be32(yp + i * 6);
        if (off < -MAX_UTOFF || off > MAX_UTOFF) goto bad;
        z->offs[i] = off;
    }
    pos += (size_t)need;

    if (tsz == 8 && pos < len) { /* footer: "\n" POSIX-TZ "\n" */
        if (p[pos] != '\n') goto bad;
        const uint8_t *e = memchr(p + pos + 1, '\n', len - pos - 1);
        if (!e) goto bad;
        size_t n = (size_t)(e - (p + pos + 1));
        char tzs[256];
        if (n >= sizeof tzs || memchr(p + pos + 1, '\0', n)) goto bad;
        memcpy(tzs, p + pos + 1, n);
        tzs[n] = '\0';
        if (!parse_posix(tzs, &z->rule, &z->has_rule)) goto bad;
    }
    *out = z;
    return 0;
bad:
    kl_tz_free(z);
    return -EINVAL;
}

void kl_tz_free(kl_tz *tz) {
    if (!tz) return;
    free(tz->name);
    free(tz->trans);
    free(tz->type);
    free(tz->offs);
    free(tz);
}

const char *kl_tz_name(const kl_tz *tz) {
    return tz->name ? tz->name : "";
}

int32_t kl_tz_offset(const kl_tz *tz, int64_t t) {
    size_t n = tz->n_trans;
    if (n == 0 || t >= tz->trans[n - 1]) {
        if (tz->has_rule) return rule_offset(&tz->rule, t);
        return n == 0 ? tz->offs[0] : tz->offs[tz->type[n - 1]];
    }
    if (t < tz->trans[0]) return tz->offs[0]; /* RFC 8536: time type 0 before the first */
    size_t lo = 0, hi = n - 1;                /* trans[lo] <= t < trans[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return tz->offs[tz->type[lo]];
}

/* ---- resolving ids the way java.time.ZoneId.of(id, SHORT_IDS) does ---- */

static kl_tz *tz_fixed(int32_t off) {
    kl_tz *z = tz_alloc(0, 1);
    if (z) z->offs[0] = off;
    return z;
}

/* ZoneOffset.of without the sign: "h", "hh", "hhmm", "hh:mm", "hhmmss", "hh:mm:ss". */
static bool parse_offset(const char *s, int32_t *out) {
    int sign = s[0] == '-' ? -1 : 1;
    if (s[0] != '+' && s[0] != '-') return false;
    s++;
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i]) && s[i] != ':') return false;
    int h, m = 0, sec = 0;
#define D2(i) ((s[i] - '0') * 10 + (s[(i) + 1] - '0'))
    if (n == 1 && is_digit(s[0])) {
        h = s[0] - '0';
    } else if (n == 2 && is_digit(s[1])) {
        h = D2(0);
    } else if (n == 4 && is_digit(s[2])) {
        h = D2(0), m = D2(2);
    } else if (n == 5 && s[2] == ':' && is_digit(s[3])) {
        h = D2(0), m = D2(3);
    } else if (n == 6 && is_digit(s[2]) && is_digit(s[4])) {
        h = D2(0), m = D2(2), sec = D2(4);
    } else if (n == 8 && s[2] == ':' && s[5] == ':' && is_digit(s[3]) && is_digit(s[6])) {
        h = D2(0), m = D2(3), sec = D2(6);
    } else {
        return false;
    }
#undef D2
    for (size_t i = 0; i < n; i++)
        if (s[i] == ':' && i != 2 && i != 5) return false;
    if (h > 18 || m > 59 || sec > 59) return false;
    int32_t total = h * 3600 + m * 60 + sec;
    if (total > 18 * 3600) return false;
    *out = sign * total;
    return true;
}

/* java.time.ZoneId.SHORT_IDS. */
static const char *const short_ids[][2] = {
    {"ACT", "Australia/Darwin"},
    {"AET", "Australia/Sydney"},
    {"AGT", "America/Argentina/Buenos_Aires"},
    {"ART", "Africa/Cairo"},
    {"AST", "America/Anchorage"},
    {"BET", "America/Sao_Paulo"},
    {"BST", "Asia/Dhaka"},
    {"CAT", "Africa/Harare"},
    {"CNT", "America/St_Johns"},
    {"CST", "America/Chicago"},
    {"CTT", "Asia/Shanghai"},
    {"EAT", "Africa/Addis_Ababa"},
    {"ECT", "Europe/Paris"},
    {"IET", "America/Indiana/Indianapolis"},
    {"IST", "Asia/Kolkata"},
    {"JST", "Asia/Tokyo"},
    {"MIT", "Pacific/Apia"},
    {"NET", "Asia/Yerevan"},
    {"NST", "Pacific/Auckland"},
    {"PLT", "Asia/Karachi"},
    {"PNT", "America/Phoenix"},
    {"PRT", "America/Puerto_Rico"},
    {"PST", "America/Los_Angeles"},
    {"SST", "Pacific/Guadalcanal"},
    {"VST", "Asia/Ho_Chi_Minh"},
    {"EST", "-05:00"},
    {"MST", "-07:00"},
    {"HST", "-10:00"},
};

/* Region ids are looked up as file names, so nothing may climb out of the zoneinfo directory. */
static bool valid_region(const char *id) {
    size_t n = strlen(id);
    if (n < 2 || n > 200 || !is_alpha(id[0])) return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!is_alpha(c) && !is_digit(c) && !strchr("~/._+-", c)) return false;
        if (c == '/' && (id[i + 1] == '/' || id[i + 1] == '.' || id[i + 1] == '\0')) return false;
    }
    return true;
}

static int load_region(const char *id, kl_tz **out) {
    const char *dir = getenv("TZDIR");
    char path[512];
    if (!dir || !*dir) dir = "/usr/share/zoneinfo";
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, id) >= sizeof path) return -EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT || errno == ENOTDIR ? -ENOENT : -errno;
    struct stat st;
    int rc = -ENOENT; /* a directory such as "America" is no zone */
    uint8_t *data = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) goto out;
    rc = -EINVAL;
    if (st.st_size > MAX_ZONE_FILE) goto out;
    size_t len = (size_t)st.st_size, got = 0;
    data = malloc(len ? len : 1);
    rc = -ENOMEM;
    if (!data) goto out;
    while (got < len) {
        ssize_t r = read(fd, data + got, len - got);
        if (r < 0 && errno == EINTR) continue;
        rc = -EINVAL;
        if (r <= 0) goto out;
        got += (size_t)r;
    }
    rc = kl_tz_parse(data, len, out);
out:
    free(data);
    close(fd);
    return rc;
}

static int resolve(const char *id, kl_tz **out) {
    char norm[256];
    if (strlen(id) >= sizeof norm) return -EINVAL;
    strcpy(norm, id);
    /* Spark first pads a one-digit hour: the first "+d:" or "-d:" becomes "+0d:". */
    for (char *p = norm; *p; p++) {
        if ((*p == '+' || *p == '-') && is_digit(p[1]) && p[2] == ':') {
            if (strlen(norm) + 1 >= sizeof norm) return -EINVAL;
            memmove(p + 2, p + 1, strlen(p + 1) + 1);
            p[1] = '0';
            break;
        }
    }
    const char *name = norm;
    for (size_t i = 0; i < sizeof short_ids / sizeof short_ids[0]; i++)
        if (strcmp(name, short_ids[i][0]) == 0) name = short_ids[i][1];

    int32_t off = 0;
    if (strcmp(name, "Z") == 0 || strcmp(name, "UTC") == 0 || strcmp(name, "GMT") == 0 ||
        strcmp(name, "UT") == 0) {
        *out = tz_fixed(0);
        return *out ? 0 : -ENOMEM;
    }
    if (name[0] == '+' || name[0] == '-') {
        if (!parse_offset(name, &off)) return -EINVAL;
        *out = tz_fixed(off);
        return *out ? 0 : -ENOMEM;
    }
    static const char *const prefixes[] = {"UTC", "GMT", "UT"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(name, prefixes[i], n) == 0 && (name[n] == '+' || name[n] == '-')) {
            if (!parse_offset(name + n, &off)) return -EINVAL;
            *out = tz_fixed(off);
            return *out ? 0 : -ENOMEM;
        }
    }
    if (!valid_region(name)) return -EINVAL;
    return load_region(name, out);
}

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static kl_tz *cache;
static size_t cache_len;

int kl_tz_get(const char *id, const kl_tz **out) {
    *out = NULL;
    if (!id) return -EINVAL;
    pthread_mutex_lock(&cache_lock);
    int rc = 0;
    kl_tz *z;
    for (z = cache; z; z = z->next)
        if (strcmp(z->name, id) == 0) goto done;
    rc = -E2BIG;
    if (cache_len >= MAX_CACHED) goto done;
    /* Loading under the lock keeps one copy per zone; it happens once per zone per process. */
    rc = resolve(id, &z);
    if (rc != 0) goto done;
    if (!(z->name = strdup(id))) {
        kl_tz_free(z);
        z = NULL;
        rc = -ENOMEM;
        goto done;
    }
    z->next = cache;
    cache = z;
    cache_len++;
done:
    pthread_mutex_unlock(&cache_lock);
    if (rc == 0) *out = z;
    return rc;
}
