#!/usr/bin/env python3
"""Writes the VARIANT test vectors of tests/unit/render/variant_test.c, taken from a real Spark
(classic local mode), so that no expected JSON text is typed by hand.

Run with the project's Python (pyspark 4.0.1 on Java 17):
    .venv/bin/python tests/data/gen_variant.py

tests/data/variant/vectors.txt, one value a line:
    VALUE_HEX METADATA_HEX<TAB>JSON
VALUE/METADATA are the two binaries of the variant exactly as Spark's Arrow results carry them
(Dataset.collectAsArrowToPython), JSON is org.apache.spark.types.variant.Variant.toJson(UTC), the
text Dataset.show() prints for the value (checked here against showString for the values whose
text show() does not escape). Values come from parse_json over many JSON documents (nesting,
escapes, Unicode, numbers of every size, objects and arrays large enough for 2-4 byte offsets and
4-byte counts) and from casts of every Spark type a variant can hold (dates, timestamps around
odd years, binary, float, decimals of each width, UUID).
"""
import json
import os
import random

from pyspark.sql import SparkSession

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "variant")

JSON_DOCS = [
    "null", "true", "false", "0", "-0", "1", "-1", "127", "128", "-129", "32767", "32768",
    "2147483647", "2147483648", "-2147483649", "9223372036854775807", "-9223372036854775808",
    "9223372036854775808", "12345678901234567890123456789012345678",
    "123456789012345678901234567890123456789", "0.0", "-0.0", "0.1", "-12.3400", "100.000",
    "1.5e3", "1E2", "-2.5E-10", "1e400", "-1e400", "4.9e-324", "1e-400", "3.141592653589793",
    "0.30000000000000004", "1.00000000000000000000000000000000000001", "99999999.99",
    "0.000000001", "123456789.123456789", "1e23", "2.82879384806159E17",
    '""', '"plain"', '"a\\"quote\\\\back/slash"', '"\\u0000\\u0001\\u001f\\u007f"',
    '"\\b\\f\\n\\r\\t"', '"\\u00e9\\u6f22\\ud83d\\ude00"', '"\\u2028\\u2029"',
    '"' + "x" * 63 + '"', '"' + "y" * 64 + '"', '"' + "\u00e9" * 40 + '"',
    "{}", "[]", "[[]]", "[{}]", '{"a":{}}', '{"b":1,"a":2}', '{"a":[true,null,"x"],"b":{"c":1.5}}',
    '{"k\\"":{"":[{}]}}', '{"\\u00e9":1,"e":2,"\\u6f22":3,"Z":4}', '{"a\\nb":"c\\td"}',
    "[1,\"two\",{\"x\":null}]", "[1, [2, [3, [4, [5, [6]]]]]]",
    '{"nested":{"deeper":{"deepest":[1,2,{"x":[null,false]}]}}}',
]


def big_docs(rnd):
    docs = []
    docs.append(json.dumps(list(range(300))))  # more than 255 elements: 4-byte count
    docs.append(json.dumps({"k%03d" % i: i for i in range(300)}))  # 4-byte count, 2-byte ids
    docs.append(json.dumps(["s" * 200 for _ in range(330)]))  # offsets past 65535: 3 bytes
    docs.append(json.dumps({("key-" + "q" * 100 + str(i)): i for i in range(30)}))  # 2-byte keys
    # 4-byte offsets need more than 16 MiB, past Spark's size limit: variant_test.c builds those.
    for _ in range(40):
        docs.append(json.dumps(random_value(rnd, 4)))
    return docs


def random_value(rnd, depth):
    r = rnd.random()
    if depth == 0 or r < 0.4:
        return rnd.choice([
            None, True, False, rnd.randint(-2**63, 2**63 - 1), rnd.randint(-300, 300),
            rnd.uniform(-1e6, 1e6), "".join(rnd.choice("ab\u00e9\u6f22\"\\\n ") for _ in range(rnd.randint(0, 12))),
        ])
    if r < 0.7:
        return [random_value(rnd, depth - 1) for _ in range(rnd.randint(0, 5))]
    return {"".join(rnd.choice("abcxyz") for _ in range(rnd.randint(0, 4))): random_value(rnd, depth - 1)
            for _ in range(rnd.randint(0, 5))}


CASTS = [
    "CAST(DATE'2024-02-29' AS VARIANT)", "CAST(DATE'0001-01-01' AS VARIANT)",
    "CAST(DATE'-0044-03-15' AS VARIANT)", "CAST(DATE'+12345-01-01' AS VARIANT)",
    "CAST(DATE'1970-01-01' AS VARIANT)",
    "CAST(TIMESTAMP'2024-01-01 00:00:00.5Z' AS VARIANT)", "CAST(TIMESTAMP'1800-01-01 00:00:00Z' AS VARIANT)",
    "CAST(TIMESTAMP'1969-12-31 23:59:59.999999Z' AS VARIANT)", "CAST(TIMESTAMP'0001-01-01 00:00:00Z' AS VARIANT)",
    "CAST(TIMESTAMP'9999-12-31 23:59:59.123Z' AS VARIANT)",
    "CAST(TIMESTAMP_NTZ'2024-01-01 12:34:56.789' AS VARIANT)", "CAST(TIMESTAMP_NTZ'0001-01-01 00:00:00.000001' AS VARIANT)",
    "CAST(X'' AS VARIANT)", "CAST(X'0102FF' AS VARIANT)", "CAST(X'00' AS VARIANT)", "CAST(X'0000' AS VARIANT)",
    "CAST(CAST(repeat('xy', 50) AS BINARY) AS VARIANT)",
    "CAST(1.5f AS VARIANT)", "CAST(CAST(0.1 AS FLOAT) AS VARIANT)", "CAST(CAST(1.17549435E-38 AS FLOAT) AS VARIANT)",
    "CAST(CAST('NaN' AS FLOAT) AS VARIANT)", "CAST(CAST('-Infinity' AS FLOAT) AS VARIANT)", "CAST(CAST(-0.0 AS FLOAT) AS VARIANT)",
    "CAST(CAST('NaN' AS DOUBLE) AS VARIANT)", "CAST(-0.0D AS VARIANT)", "CAST(1e23D AS VARIANT)",
    "CAST(CAST(1.50 AS DECIMAL(10,2)) AS VARIANT)", "CAST(CAST(0 AS DECIMAL(38,38)) AS VARIANT)",
    "CAST(CAST('-0.00000000000000000000000000000000000001' AS DECIMAL(38,38)) AS VARIANT)",
    "CAST(CAST('99999999999999999999999999999999999999' AS DECIMAL(38,0)) AS VARIANT)",
    "CAST(CAST('-999999999' AS DECIMAL(9,0)) AS VARIANT)", "CAST(CAST('999999999999999999' AS DECIMAL(18,0)) AS VARIANT)",
    "CAST(CAST('12.345000' AS DECIMAL(18,6)) AS VARIANT)",
    "CAST(CAST(5 AS TINYINT) AS VARIANT)", "CAST(CAST(-300 AS SMALLINT) AS VARIANT)", "CAST(true AS VARIANT)",
    "CAST('x' AS VARIANT)", "CAST(repeat('long string ', 10) AS VARIANT)",
    "CAST(uuid() AS VARIANT)",
    "to_variant_object(named_struct('z', 1, 'a', DATE'2020-01-01', 'm', X'FF'))",
    "to_variant_object(named_struct('t', TIMESTAMP'2024-06-01 12:00:00Z', 'f', 2.5f, 'arr', array(1, NULL)))",
    "to_variant_object(map('b', 1, 'a', 2))",
    "CAST(array(1.5D, NULL, -0.0D) AS VARIANT)",
]


def main():
    os.makedirs(OUT, exist_ok=True)
    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    jvm = spark._jvm
    Variant = jvm.org.apache.spark.types.variant.Variant
    utc = jvm.java.time.ZoneOffset.UTC
    rnd = random.Random(4)
    docs = JSON_DOCS + big_docs(rnd)
    rows = spark.createDataFrame([(d,) for d in docs], "j string").selectExpr("parse_json(j) AS v")
    cast_rows = spark.sql("SELECT " + ", ".join("%s AS c%d" % (e, i) for i, e in enumerate(CASTS)))
    values = [r["v"] for b in rows._collect_as_arrow() for r in b.to_pylist()]
    values += list(cast_rows._collect_as_arrow()[0].to_pylist()[0].values())
    shown = cast_rows._jdf.showString(1, 0, False).split("\n")[3].strip("|").split("|")
    lines = []
    for k, v in enumerate(values):
        value, metadata = bytes(v["value"]), bytes(v["metadata"])
        text = Variant(bytearray(value), bytearray(metadata)).toJson(utc)
        if k >= len(docs):  # show() prints the same text (padded; no value here needs escaping)
            cell = shown[k - len(docs)]
            assert cell.strip() == text or "\\" in text, (cell, text)
        assert "\t" not in text and "\n" not in text
        lines.append("%s %s\t%s" % (value.hex(), metadata.hex(), text))
    with open(os.path.join(OUT, "vectors.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(len(lines), "variants;", "pyspark", spark.version, "java",
          jvm.java.lang.System.getProperty("java.version"))
    spark.stop()


if __name__ == "__main__":
    main()
