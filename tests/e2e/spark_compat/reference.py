"""The reference client of the version-compatibility tests: pyspark's own Spark Connect client of the
version under test, run by that version's virtualenv (its pyspark cannot be imported next to the
project's), answering one JSON request per line on stdin with one JSON line on stdout.

Requests: {"op": "show", "query", "limit", "truncate"} -> {"text", "columns", "count"} (the text is
Dataset.showString as the server prints it); {"op": "sql", "query"} runs a statement to the end;
{"op": "version"} -> {"version"}; {"op": "error", "query"} -> the error pyspark reports for a
failing query: {"type", "message", "condition", "sql_state"} (None where this pyspark has no such
accessor). Every answer has "ok"; a failure is {"ok": false, "error": text}.

Usage: python reference.py sc://host:port"""

from __future__ import annotations

import json
import sys
import traceback


def _attr(exc: BaseException, *names: str):
    for name in names:
        fn = getattr(exc, name, None)
        if callable(fn):
            try:
                return fn()
            except Exception:  # an accessor a version has but cannot answer
                return None
    return None


def handle(spark, req: dict) -> dict:
    op = req["op"]
    if op == "version":
        return {"version": spark.version}
    if op == "sql":
        spark.sql(req["query"]).collect()
        return {}
    if op == "show":
        df = spark.sql(req["query"])
        text = df._show_string(req.get("limit", 1000), req.get("truncate", 20), False)
        # int(): pyspark 3.5 counts in numpy's int64.
        return {"text": text, "columns": df.columns, "count": int(df.count()) if req.get("count") else None}
    if op == "error":
        try:
            spark.sql(req["query"]).collect()
        except Exception as exc:  # the error is the answer
            return {
                "type": type(exc).__name__,
                "message": str(exc),
                # getCondition is 4.0's name, getErrorClass 3.5's.
                "condition": _attr(exc, "getCondition", "getErrorClass"),
                "sql_state": _attr(exc, "getSqlState"),
            }
        raise RuntimeError(f"the query did not fail: {req['query']}")
    raise ValueError(f"unknown op {op!r}")


def main() -> None:
    from pyspark.sql import SparkSession

    # Only answers go to the real stdout: anything pyspark prints goes to stderr.
    out, sys.stdout = sys.stdout, sys.stderr
    spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
    print(json.dumps({"ok": True, "ready": True}), file=out, flush=True)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                answer = json.dumps({"ok": True, **handle(spark, json.loads(line))})
            except Exception:
                answer = json.dumps({"ok": False, "error": traceback.format_exc(limit=3)})
            print(answer, file=out, flush=True)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
