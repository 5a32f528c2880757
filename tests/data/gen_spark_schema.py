#!/usr/bin/env python3
"""Writes the cases tests/unit/render/schema_test.c renders with a Spark schema attached (what
Arrow alone cannot say: interval fields, VARIANT), taken from a real Spark (classic local mode).

Run with the project's Python (pyspark 4.0.1 on Java 17):
    .venv/bin/python tests/data/gen_spark_schema.py

For each case NAME in tests/data/spark_schema/:
    NAME.K.arrows      the result as Spark Connect sends it: one Arrow IPC stream per record batch,
                       straight from the JVM (Dataset.collectAsArrowToPython)
    NAME.schema.pb     the result's schema as the serialized Spark Connect DataType that
                       ExecutePlanResponse.schema carries (pyspark's own conversion)
    NAME.types.txt     each column's DataType.simpleString(), one a line
    NAME.nN_tT.txt     Dataset.showString(N, T, vertical=false), byte for byte
cases.txt lists one line per comparison: NAME STREAMS N T.
"""
import os

import pyarrow as pa
import pyarrow.ipc as ipc
from pyspark.sql import SparkSession
from pyspark.sql.connect.types import pyspark_types_to_proto_types

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "spark_schema")
SHOWS = [(20, 20), (20, 0)]

YM = ["YEAR", "MONTH", "YEAR TO MONTH"]
DT = ["DAY", "DAY TO HOUR", "DAY TO MINUTE", "DAY TO SECOND", "HOUR", "HOUR TO MINUTE",
      "HOUR TO SECOND", "MINUTE", "MINUTE TO SECOND", "SECOND"]
YM_VALUES = ["INTERVAL '1-2' YEAR TO MONTH", "INTERVAL '-0-11' YEAR TO MONTH", "INTERVAL '0-0' YEAR TO MONTH",
             "INTERVAL '178956970-7' YEAR TO MONTH", "INTERVAL '-178956970-8' YEAR TO MONTH",
             "INTERVAL '-10' YEAR", "INTERVAL '25' MONTH"]
DT_VALUES = ["INTERVAL '1 02:03:04.5' DAY TO SECOND", "INTERVAL '-0 00:00:00.000001' DAY TO SECOND",
             "INTERVAL '0 00:00:00' DAY TO SECOND", "INTERVAL '106751991 04:00:54.775807' DAY TO SECOND",
             "INTERVAL '-3 23:59:59.999' DAY TO SECOND", "INTERVAL '100' HOUR", "INTERVAL '-61' MINUTE",
             "INTERVAL '59.9' SECOND", "INTERVAL '10' SECOND", "INTERVAL '-106751991 04:00:54.775808' DAY TO SECOND"]


def interval_query(values, fields):
    cols = ", ".join("CAST(x AS INTERVAL %s) AS `%s`" % (f, f.lower().replace(" ", "_")) for f in fields)
    rows = ", ".join("(%s)" % v for v in values)
    return "SELECT %s FROM VALUES %s, (NULL) AS t(x)" % (cols, rows)


NESTED = """
SELECT named_struct('y', INTERVAL '3' YEAR, 'h', INTERVAL '4' HOUR) AS st,
       array(INTERVAL '1' MONTH, NULL) AS a_m,
       map('k', INTERVAL '1 02' DAY TO HOUR) AS m_dh,
       named_struct('inner', named_struct('f', 1.0f, 'i', INTERVAL '1' DAY)) AS deep,
       array(named_struct('s', INTERVAL '-5.25' SECOND)) AS a_st
"""

VARIANTS = """
SELECT * FROM VALUES
 (parse_json('{"a":1,"b":[true,null]}'), array(parse_json('1'), NULL), map('k', parse_json('"v"')),
  named_struct('value', X'01', 'metadata', X'02'), named_struct('v', parse_json('[1,"two"]'))),
 (parse_json('"a long string value that is cut by show"'), array(parse_json('null')), map('k', CAST(NULL AS VARIANT)),
  named_struct('value', X'', 'metadata', X'FF'), named_struct('v', CAST(DATE'2024-01-01' AS VARIANT))),
 (CAST(NULL AS VARIANT), CAST(NULL AS ARRAY<VARIANT>), NULL, NULL, NULL)
AS t(v, a_v, m_v, looks_like_variant, s_v)
"""


def write_case(spark, name, df, manifest):
    batches = df._collect_as_arrow(empty_list_if_zero_records=False)
    for old in os.listdir(OUT):
        if old.startswith(name + "."):
            os.remove(os.path.join(OUT, old))
    for k, b in enumerate(batches):
        sink = pa.BufferOutputStream()
        with ipc.new_stream(sink, b.schema) as w:
            w.write_batch(b)
        with open(os.path.join(OUT, "%s.%d.arrows" % (name, k)), "wb") as f:
            f.write(sink.getvalue().to_pybytes())
    with open(os.path.join(OUT, name + ".schema.pb"), "wb") as f:
        f.write(pyspark_types_to_proto_types(df.schema).SerializeToString())
    with open(os.path.join(OUT, name + ".types.txt"), "w") as f:
        f.write("".join(fl.dataType.simpleString() + "\n" for fl in df.schema.fields))
    for n, t in SHOWS:
        with open(os.path.join(OUT, "%s.n%d_t%d.txt" % (name, n, t)), "wb") as f:
            f.write(df._jdf.showString(n, t, False).encode("utf-8"))
        manifest.append("%s %d %d %d" % (name, len(batches), n, t))


def main():
    os.makedirs(OUT, exist_ok=True)
    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    manifest = []
    write_case(spark, "intervals_ym", spark.sql(interval_query(YM_VALUES, YM)), manifest)
    write_case(spark, "intervals_dt", spark.sql(interval_query(DT_VALUES, DT)), manifest)
    write_case(spark, "intervals_nested", spark.sql(NESTED), manifest)
    write_case(spark, "variants", spark.sql(VARIANTS), manifest)
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("\n".join(manifest) + "\n")
    print(len(manifest), "comparisons; pyspark", spark.version)
    spark.stop()


if __name__ == "__main__":
    main()
