#!/usr/bin/env python3
"""Writes what tests/unit/render/ compares against, taken from a real Spark (classic local mode), so
that no expected rendering is typed by hand.

Run with the project's Python (pyspark 4.0.1, pyarrow 26.0.1, Java 17):
    .venv/bin/python tests/data/gen_render_expected.py

For each case NAME in tests/data/render/:
    NAME.K.arrows      the result as Spark Connect would send it: one complete Arrow IPC stream per
                       record batch (schema + batch + end marker), K = 0, 1, ...; the batches come
                       straight from the JVM (Dataset.collectAsArrowToPython), so their schema is
                       Spark's own (timestamp time zone, month_interval, duration[us], ...)
    NAME.nN_tT.txt     Dataset.showString(N, T, vertical=false), byte for byte
cases.txt lists one line per comparison: NAME STREAMS N T.

Besides the cases:
    java_numbers.txt   d|f HEXBITS JAVA_TEXT [legacy]: java.lang.Double/Float.toString of special and
                       random values; "legacy" marks values this JDK (17) prints other than the
                       JDK 19+ specification selects (more digits than needed, or not the closest)
    tz_offsets.txt     ZONE EPOCH_SECOND OFFSET_SECONDS: the UTC offset Spark's zone resolution
                       (DateTimeUtils.getZoneId) gives at that instant, around historical and
                       future transitions, for region names, fixed offsets and short ids
"""
import math
from decimal import Decimal
import os
import random
import struct

import pyarrow as pa
import pyarrow.ipc as ipc
from pyspark.sql import SparkSession

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "render")

SHOWS = [(20, 20), (20, 0)]  # (numRows, truncate) written for every case


def session(tz):
    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    spark.conf.set("spark.sql.session.timeZone", tz)
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def write_case(spark, name, df, shows=SHOWS, batch_rows=None, manifest=None):
    if batch_rows:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))
    else:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    batches = df._collect_as_arrow(empty_list_if_zero_records=False)
    for old in os.listdir(OUT):
        if old.startswith(name + ".") and old.endswith(".arrows"):
            os.remove(os.path.join(OUT, old))
    for k, b in enumerate(batches):
        sink = pa.BufferOutputStream()
        with ipc.new_stream(sink, b.schema) as w:
            w.write_batch(b)
        with open(os.path.join(OUT, "%s.%d.arrows" % (name, k)), "wb") as f:
            f.write(sink.getvalue().to_pybytes())
    for n, t in shows:
        text = df._jdf.showString(n, t, False)
        with open(os.path.join(OUT, "%s.n%d_t%d.txt" % (name, n, t)), "wb") as f:
            f.write(text.encode("utf-8"))
        manifest.append("%s %d %d %d" % (name, len(batches), n, t))


# ------------------------------------------------------------------------------------------------
# Cases: every Spark type that reaches Arrow, nulls at every level, Unicode, long values.

PRIMITIVES = """
SELECT * FROM VALUES
 (true, 1Y, 2S, 3, 4L, CAST(1.5 AS FLOAT), 0.1D, 123.45BD, 1.5BD, 'hello', X'0102FF', DATE'2024-02-29'),
 (false, -128Y, -32768S, -2147483648, -9223372036854775808L, CAST(3.4028235E38 AS FLOAT),
  1.7976931348623157E308D, -99999999.99BD, -1234567890123456789012345678.0123456789BD, '', X'',
  DATE'0001-01-01'),
 (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (true, 127Y, 32767S, 2147483647, 9223372036854775807L, CAST(1.4E-45 AS FLOAT), 4.9E-324D,
  -0.01BD, 0.0000000001BD, 'a', X'00', DATE'9999-12-31'),
 (false, 0Y, 0S, 0, 0L, CAST('NaN' AS FLOAT), CAST('-Infinity' AS DOUBLE), 0.00BD, -0.5BD, ' x ',
  X'DEADBEEF00', DATE'1970-01-01')
AS t(b, i8, i16, i32, i64, f32, f64, dec, dec38, s, bin, d)
"""

FLOATS = """
SELECT d, CAST(d AS FLOAT) AS f FROM VALUES
 (0.0D), (-0.0D), (1.0D), (0.001D), (9.999E-4D), (9999999.0D), (1.0E7D), (1.0E-5D),
 (123456.789D), (1D/3D), (2D/3D), (100.0D), (1.0E21D), (1.0E22D), (-1.25E-8D),
 (3.141592653589793D), (CAST('Infinity' AS DOUBLE)), (CAST('NaN' AS DOUBLE)), (12345678.9D),
 (0.1D + 0.2D), (1.0E-3D), (-9999999.999D), (5.0E-324D), (2.2250738585072014E-308D)
AS t(d)
"""

TEMPORAL = """
SELECT * FROM VALUES
 (TIMESTAMP'2024-03-10 01:59:59.5', TIMESTAMP_NTZ'2024-03-10 01:59:59.5', DATE'2024-03-10'),
 (TIMESTAMP'2024-03-10 03:00:00', TIMESTAMP_NTZ'2024-03-10 03:00:00', DATE'2024-03-11'),
 (TIMESTAMP'2024-11-03 01:30:00.000001', TIMESTAMP_NTZ'2024-11-03 01:30:00.000001', DATE'1999-12-31'),
 (TIMESTAMP'1800-01-01 00:00:00', TIMESTAMP_NTZ'1800-01-01 00:00:00', DATE'1800-01-01'),
 (TIMESTAMP'2100-07-01 12:00:00.123456', TIMESTAMP_NTZ'2100-07-01 12:00:00.123456', DATE'2100-07-01'),
 (TIMESTAMP'1969-12-31 23:59:59.999999', TIMESTAMP_NTZ'1969-12-31 23:59:59.999999', DATE'1969-12-31'),
 (TIMESTAMP'0001-01-01 00:00:00', TIMESTAMP_NTZ'0001-01-01 00:00:00', DATE'0001-01-01'),
 (TIMESTAMP'9999-12-31 23:59:59.999999', TIMESTAMP_NTZ'9999-12-31 23:59:59.999999', DATE'9999-12-31'),
 (NULL, NULL, NULL)
AS t(ts, ntz, d)
"""

TEMPORAL_FAR = """
SELECT ts, CAST(ts AS TIMESTAMP_NTZ) AS ntz FROM VALUES
 (TIMESTAMP'1900-01-01 00:00:00'), (TIMESTAMP'1942-06-01 12:00:00'), (TIMESTAMP'2024-04-07 01:45:00'),
 (TIMESTAMP'2024-10-06 02:15:00.25'), (TIMESTAMP'2060-01-01 00:00:00'), (TIMESTAMP'2261-12-31 23:59:59')
AS t(ts)
"""

# Years before 1 and after 9999 (java.time's ISO years: "0000", "-0001", "+10000"), local mean
# time before 1883 in Los Angeles (-07:52:58), the ends of the Date32 and microsecond ranges that
# Spark can still format.
TEMPORAL_EXTREME = """
SELECT date_from_unix_date(d) AS d, timestamp_micros(us) AS ts,
       CAST(timestamp_micros(us) AS TIMESTAMP_NTZ) AS ntz
FROM VALUES (-719528, -62167219200000001L), (-719529, -62135596800000000L),
 (-719893, 253402300800000000L), (2932897, 9223372036854775L), (2932896, -9223372036854775L),
 (-100000000, 0L), (100000000, 1L)
AS t(d, us)
"""

INTERVALS = """
SELECT * FROM VALUES
 (INTERVAL '1-2' YEAR TO MONTH, INTERVAL '1 02:03:04.5' DAY TO SECOND, make_interval(1, 2, 3, 4, 5, 6, 7.5)),
 (INTERVAL '-0-11' YEAR TO MONTH, INTERVAL '-0 00:00:00.000001' DAY TO SECOND, make_interval(0, 0, 0, 0, 0, 0, 0)),
 (INTERVAL '178956970-7' YEAR TO MONTH, INTERVAL '106751991 04:00:54.775807' DAY TO SECOND,
  make_interval(-1, -2, 0, -3, -4, -5, -0.000001)),
 (INTERVAL '-178956970-8' YEAR TO MONTH, INTERVAL '0 00:00:10' DAY TO SECOND, make_interval(0, 13, 0, 0, 0, 0, 30)),
 (INTERVAL '0-0' YEAR TO MONTH, INTERVAL '-3 23:59:59.999' DAY TO SECOND, make_interval(0, 0, 0, 1, 25, 0, 0)),
 (NULL, NULL, NULL)
AS t(ym, dt, cal)
"""

NESTED = """
SELECT * FROM VALUES
 (array(1, 2, 3), map('a', 1, 'b', 2), named_struct('x', 1, 'y', 'x'), array(named_struct('k', 1, 'v', array('p', 'q'))),
  map(1, array(1.5D, NULL)), array(X'01', X'02FF'), named_struct('in', named_struct('a', CAST(NULL AS INT), 'b', DATE'2020-01-02'))),
 (array(1, NULL, 3), map('a', NULL), named_struct('x', CAST(NULL AS INT), 'y', CAST(NULL AS STRING)), array(),
  map(), array(CAST(NULL AS BINARY)), named_struct('in', CAST(NULL AS STRUCT<a: INT, b: DATE>))),
 (CAST(array() AS ARRAY<INT>), CAST(map() AS MAP<STRING, INT>), NULL, CAST(NULL AS ARRAY<STRUCT<k: INT, v: ARRAY<STRING>>>),
  NULL, NULL, NULL),
 (NULL, NULL, named_struct('x', -7, 'y', 'a long nested string value, with commas'), array(named_struct('k', NULL, 'v', NULL)),
  map(-1, array(CAST('NaN' AS DOUBLE), 1.0E10D)), array(X''), named_struct('in', named_struct('a', 5, 'b', NULL)))
AS t(arr, m, st, arr_st, m_arr, arr_bin, deep)
"""

NESTED_MORE = """
SELECT array(array(1, 2), array(), NULL) AS aa,
       map('k', named_struct('t', TIMESTAMP'2024-07-04 12:00:00.5', 'd', -12.340BD)) AS m_st,
       array(map('x', array(true, NULL, false))) AS a_m,
       CAST(NULL AS VOID) AS nothing,
       array(NULL, NULL) AS a_null,
       array(INTERVAL '1-1' YEAR TO MONTH) AS a_ym,
       array(CAST(1.0E-7 AS FLOAT), 1.0E7F) AS a_f
"""

UNICODE = """
SELECT * FROM VALUES
 ('中文字', 'e\\u0301t\\u00e9', '한국어 텍스트', '！ＡＢＣ', 'line1\\nline2\\ttab'),
 ('这是一个非常长的中文字符串用于测试截断功能是否正确', 'cafe\\u0301 cre\\u0300me bru\\u0302le\\u0301e',
  'ｶﾀｶﾅ半角', 'emoji \\uD83D\\uDE00 ok', concat('cr\\rff', chr(12), 'bs\\bvt\\u000Bbell\\u0007')),
 ('exactly twenty chars', 'twenty-one characters', '<b>&amp;"quotes"\\'</b>', 'ab', 'abcd'),
 (NULL, '', '   ', 'x', '\\u3000fullwidth space')
AS t(`中文列`, `comb`, `hangul_etc`, `emoji_misc`, `escapes`)
"""

MANY = "SELECT id, id * id AS sq, concat('row-', id) AS label FROM range(25)"

EMPTY = "SELECT 1 AS a, 'x' AS b, DATE'2020-01-01' AS c WHERE false"

WIDE_NAMES = "SELECT 1, 2, 'v', 'w', 'dup'"
WIDE_NAMES_AS = ["a", "a very long column name that is not truncated", "tab\tname", "x", "a"]


def cases():
    manifest = []
    spark = session("America/Los_Angeles")
    write_case(spark, "primitives", spark.sql(PRIMITIVES), manifest=manifest)
    # JDK 17 prints some doubles with more digits than the shortest (1.0E23 as 9.999999999999999E22);
    # the renderer follows JDK 19+, so such values stay out of the byte-for-byte cases.
    write_case(spark, "floats", spark.sql(FLOATS), shows=SHOWS + [(30, 0)], manifest=manifest)
    write_case(spark, "temporal", spark.sql(TEMPORAL), manifest=manifest)
    write_case(spark, "temporal_extreme", spark.sql(TEMPORAL_EXTREME), manifest=manifest)
    write_case(spark, "intervals", spark.sql(INTERVALS), manifest=manifest)
    write_case(spark, "nested", spark.sql(NESTED), manifest=manifest)
    write_case(spark, "nested_more", spark.sql(NESTED_MORE), manifest=manifest)
    write_case(spark, "unicode", spark.sql(UNICODE),
               shows=SHOWS + [(20, 3), (20, 5), (2, 30)], manifest=manifest)
    write_case(spark, "many", spark.sql(MANY), batch_rows=10,
               shows=SHOWS + [(1, 20), (0, 20), (25, 20), (24, 20), (5, 2)], manifest=manifest)
    write_case(spark, "empty", spark.sql(EMPTY), manifest=manifest)
    write_case(spark, "no_columns", spark.range(3).select(), shows=SHOWS + [(2, 20)],
               manifest=manifest)
    write_case(spark, "wide_names", spark.sql(WIDE_NAMES).toDF(*WIDE_NAMES_AS), manifest=manifest)
    for tz, name in [("Australia/Lord_Howe", "temporal_lord_howe"), ("Asia/Kolkata", "temporal_kolkata"),
                     ("+05:45", "temporal_offset"), ("Europe/Dublin", "temporal_dublin")]:
        spark.conf.set("spark.sql.session.timeZone", tz)
        write_case(spark, name, spark.sql(TEMPORAL_FAR), manifest=manifest)
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("\n".join(manifest) + "\n")
    return spark


# ------------------------------------------------------------------------------------------------
# java.lang.Double/Float.toString


def digits_of(text):
    mant = text.lstrip("-").split("e")[0].split("E")[0].replace(".", "")
    return len(mant.strip("0")) or 1


def violates_jdk19(java_text, x, shortest_len):
    """True when java_text is not what the JDK 19+ specification of toString selects: among the
    decimals that round to x, those of minimal length m (of length 1 or 2 when m is 1), the one
    closest to x. JDK 17 breaks it for some values (JDK-4511638)."""
    allowed = max(2, shortest_len)
    if digits_of(java_text) > allowed:
        return True
    closest = Decimal("%.*e" % (allowed - 1, x))  # printf rounds correctly: the closest
    return abs(Decimal(java_text) - Decimal(x)) > abs(closest - Decimal(x))


def java_numbers(spark):
    jD = spark._jvm.java.lang.Double
    jF = spark._jvm.java.lang.Float
    rnd = random.Random(20240607)
    doubles = [0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 1e-3, 9.999e-4, 1e7, 9999999.0, 9999999.999999998,
               1e-5, 123456.789, 1 / 3, 2 / 3, 1e21, 1e22, 1e23, 2e23, 5e-324, 1e-323,
               2.2250738585072014e-308, 2.225073858507201e-308, 1.7976931348623157e308, 4.35,
               0.3, 0.1 + 0.2, 100.0, 1e16, 1e17, 123e18, 2.0 ** 63, 2.0 ** 53, 2.0 ** 53 + 2,
               float("inf"), float("-inf"), float("nan"), 1.0e-300, 8.41e21, 5.0e-10]
    for _ in range(400):
        b = rnd.getrandbits(64)
        d = struct.unpack("<d", struct.pack("<Q", b))[0]
        doubles.append(d)
    for _ in range(300):
        doubles.append(round(rnd.uniform(-1e7, 1e7), rnd.randint(0, 9)))
    for _ in range(100):
        doubles.append(rnd.uniform(0, 1) * 10.0 ** rnd.randint(-30, 30))
    floats = [0.0, -0.0, 1.0, 0.1, 1e-3, 1e7, 9999999.0, 1.4e-45, 1.17549435e-38, 3.4028235e38,
              1e10, 3.14159265, 16777216.0, 1e-10, float("inf"), float("nan"), 0.3, 2.5e-5]
    for _ in range(300):
        b = rnd.getrandbits(32)
        floats.append(struct.unpack("<f", struct.pack("<I", b))[0])
    for _ in range(100):
        floats.append(struct.unpack("<f", struct.pack("<f", rnd.uniform(-1e5, 1e5)))[0])
    lines = []
    for d in doubles:
        bits = struct.unpack("<Q", struct.pack("<d", d))[0]
        js = jD.toString(d)
        legacy = ""
        if not (math.isnan(d) or math.isinf(d) or d == 0) and violates_jdk19(js, d, digits_of(repr(d))):
            legacy = " legacy"
        lines.append("d %016x %s%s" % (bits, js, legacy))
    for x in floats:
        x = struct.unpack("<f", struct.pack("<f", x))[0]  # the float32 value itself
        bits = struct.unpack("<I", struct.pack("<f", x))[0]
        if math.isnan(x):
            bits = 0x7FC00000
        js = jF.toString(jF.intBitsToFloat(bits - (1 << 32) if bits >= 1 << 31 else bits))
        legacy = ""
        if not (math.isnan(x) or math.isinf(x) or x == 0):
            # Python has no float32 repr: find the shortest digits that round-trip through float32.
            for p in range(1, 10):
                s = "%.*e" % (p - 1, x)
                try:
                    if struct.unpack("<f", struct.pack("<f", float(s)))[0] == x:
                        break
                except OverflowError:  # rounded past the float32 range
                    pass
            if violates_jdk19(js, x, p):
                legacy = " legacy"
        lines.append("f %08x %s%s" % (bits, js, legacy))
    with open(os.path.join(OUT, "java_numbers.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------------------
# Time zone offsets as Spark resolves them


ZONES = ["America/Los_Angeles", "America/New_York", "Europe/London", "Europe/Dublin", "Europe/Berlin",
         "Australia/Sydney", "Australia/Lord_Howe", "Asia/Kolkata", "Asia/Tokyo", "America/Sao_Paulo",
         "Africa/Casablanca", "Pacific/Chatham", "America/St_Johns", "Pacific/Apia", "Antarctica/Troll",
         "America/Godthab", "UTC", "Etc/GMT+8", "+05:30", "-08:00", "+5:30", "GMT+8",
         "UTC-03:00", "PST", "IST", "EST", "Z"]


# Zones whose history changed between the JVM's tzdb and the system's (Asia/Tehran in 2025b)
# would compare data versions, not code: the list avoids them.
def tz_offsets(spark):
    jvm = spark._jvm
    Instant = jvm.java.time.Instant
    get_zone = jvm.org.apache.spark.sql.catalyst.util.DateTimeUtils.getZoneId
    rnd = random.Random(7)
    lines = []
    lo, hi = -5364662400, 13569465600  # 1800-01-01 .. 2400-01-01
    for name in ZONES:
        rules = get_zone(name).getRules()
        instants = {-62135596800, 0, 253402300799, lo, hi, 2147483647, 2147483648}
        for _ in range(25):
            instants.add(rnd.randint(lo, hi))
        t = Instant.ofEpochSecond(lo)
        future = 0
        while future < 6:  # transitions from 1800 on, then a few past 2037 (POSIX footer rules)
            tr = rules.nextTransition(t)
            if tr is None:
                break
            s = tr.toEpochSecond()
            if s > 2200000000:
                future += 1
            if future or rnd.random() < 0.15:
                instants.update((s - 1, s))
            t = tr.getInstant()
        for s in sorted(instants):
            off = rules.getOffset(Instant.ofEpochSecond(s)).getTotalSeconds()
            lines.append("%s %d %d" % (name, s, off))
    with open(os.path.join(OUT, "tz_offsets.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    spark = cases()
    java_numbers(spark)
    tz_offsets(spark)
    print("pyspark", spark.version, "pyarrow", pa.__version__,
          "java", spark._jvm.java.lang.System.getProperty("java.version"),
          "tzdb", spark._jvm.java.time.zone.ZoneRulesProvider.getVersions("UTC").lastEntry().getKey())
    spark.stop()


if __name__ == "__main__":
    main()
