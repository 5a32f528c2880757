#!/usr/bin/env python3
"""Writes tests/data/render/java17_numbers.txt: how the server's JVM (Java 17) prints doubles and
floats, for values chosen where JDK 17's FloatingDecimal is easy to get wrong. Spark shows DOUBLE
and FLOAT values with java.lang.Double/Float.toString, and before JDK 19 those do not always print
the shortest decimal (JDK-4511638), so the expected text can only come from a real JVM.

Run with the project's Python (pyspark 4.0.1 on Java 17):
    .venv/bin/python tests/data/gen_javanum.py

Format, one value a line:  d|f HEXBITS JAVA_TEXT [long]
"long" marks values whose Java 17 text is not the shortest-then-closest decimal JDK 19+ prints
(about 3 in 1000 random doubles, far more among large integers and subnormals); the file holds a
sample of such values and a sample of the others. Candidates: powers of two and their neighbours, powers of ten times small
integers and their neighbours, integers around 2^53 and 1e16..1e19, subnormals, the largest
values, short decimals, and random bit patterns (fixed seeds, so reruns give the same file).
"""
import math
import os
import random
import struct
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import SparkSession

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "render", "java17_numbers.txt")
SAMPLE_LONG = 1500  # values kept of each kind whose Java 17 text is not the shortest
SAMPLE_PLAIN = 1000  # and of those whose text is


def next_up(x):
    return float(np.nextafter(x, np.inf))


def next_down(x):
    return float(np.nextafter(x, -np.inf))


def double_candidates(rnd):
    out = set()
    for e in range(-1074, 1024):
        x = math.ldexp(1.0, e)
        for y in (x, next_up(x), next_down(x), 3 * x, 5 * x, 1.5 * x):
            out.add(y)
    for k in range(-324, 309):
        x = float("1e%d" % k)
        for m in (1, 2, 3, 5, 7, 9):
            y = m * x
            out.update((y, next_up(y), next_down(y)))
    for i in range(1, 2000):
        out.update((float(2**53 + i), float(i) * 1e16 + i, i / 1000, i * 1e-5))
    for _ in range(20000):
        out.add(float(rnd.randrange(10**15, 10**19)))
    for b in range(1, 2000):
        out.add(struct.unpack("<d", struct.pack("<Q", b))[0])
    for _ in range(100000):
        out.add(struct.unpack("<d", struct.pack("<Q", rnd.getrandbits(63)))[0])
    for _ in range(20000):
        out.add(rnd.uniform(0, 1) * 10.0 ** rnd.randint(-320, 308))
    return sorted(x for x in out if math.isfinite(x) and x > 0)


def f32(x):
    return float(np.float32(x))


def float_candidates(rnd):
    out = set()
    for e in range(-149, 128):
        x = np.float32(math.ldexp(1.0, e))
        for y in (x, np.nextafter(x, np.float32(np.inf)), np.nextafter(x, np.float32(-np.inf)), 3 * x):
            out.add(float(y))
    for k in range(-45, 39):
        for m in (1, 2, 3, 5, 7, 9):
            y = np.float32(m * float("1e%d" % k))
            out.update(float(v) for v in (y, np.nextafter(y, np.float32(np.inf)),
                                          np.nextafter(y, np.float32(-np.inf))))
    for i in range(1, 5000):
        out.update((f32(i * 1e5), f32(2**24 + 3 * i), f32(i / 1000)))
    for _ in range(100000):
        out.add(struct.unpack("<f", struct.pack("<I", rnd.getrandbits(31)))[0])
    return sorted(x for x in out if math.isfinite(x) and 0 < x < 3.5e38)


def significant(text):
    mant = text.split("E")[0].replace(".", "").lstrip("0").rstrip("0")
    return len(mant) or 1


def shortest_len(x, single):
    for p in range(1, 18):
        s = "%.*e" % (p - 1, x)
        if (f32(float(s)) if single else float(s)) == x:
            return p
    return 17


def is_long(text, x, single):
    """Not what JDK 19+ prints: more digits than the shortest (two at least), or not the closest."""
    allowed = max(2, shortest_len(x, single))
    if significant(text) > allowed:
        return True
    closest = Decimal("%.*e" % (allowed - 1, x))
    return abs(Decimal(text) - Decimal(x)) > abs(closest - Decimal(x))


def java_text(spark, values, single):
    """CAST(x AS STRING), which is Double/Float.toString; checked against toString itself."""
    arr = pa.array(values, pa.float32() if single else pa.float64())
    df = spark.createDataFrame(pa.table({"x": arr}).to_pandas())
    rows = df.selectExpr("x", "CAST(x AS STRING) AS s").toPandas()
    jD, jF = spark._jvm.java.lang.Double, spark._jvm.java.lang.Float
    for v, s in list(zip(rows["x"], rows["s"]))[::997]:
        direct = jF.toString(jF.parseFloat(repr(float(v)))) if single else jD.toString(float(v))
        assert direct == s, (v, s, direct)
    return list(zip(rows["x"].to_numpy(dtype=np.float32 if single else np.float64), rows["s"]))


def main():
    np.seterr(over="ignore")  # float candidates past the float range become inf and are dropped
    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    rnd = random.Random(17)
    lines = []
    for kind, single, cands in (("d", False, double_candidates(rnd)), ("f", True, float_candidates(rnd))):
        long_lines, plain = [], []
        for v, text in java_text(spark, cands, single):
            bits = int(v.view(np.uint32 if single else np.uint64))
            line = "%s %0*x %s" % (kind, 8 if single else 16, bits, text)
            if is_long(text, float(v), single):
                long_lines.append(line + " long")
            else:
                plain.append(line)
        for group, n in ((long_lines, SAMPLE_LONG), (plain, SAMPLE_PLAIN)):
            keep = sorted(rnd.sample(range(len(group)), min(n, len(group))))
            lines += [group[i] for i in keep]
        print(kind, len(cands), "candidates,", len(long_lines), "long")
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("java", spark._jvm.java.lang.System.getProperty("java.version"))
    spark.stop()


if __name__ == "__main__":
    main()
