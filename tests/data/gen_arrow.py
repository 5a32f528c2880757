#!/usr/bin/env python3
"""Writes the Arrow IPC streams that tests/unit/spark/arrow_test.c decodes, and next to each
NAME.arrows a NAME.expected that says, in a canonical text form, what pyarrow wrote. The C test
renders its own decoding in the same form and compares, so no expected value is typed by hand.

Run with a Python that has pyarrow (written with pyarrow 26.0.1):
    .venv/bin/python tests/data/gen_arrow.py
It also refreshes the libFuzzer seed corpus tests/fuzz/corpus/fuzz_arrow/.

Canonical form, one item per line:
    field DEPTH NAME TYPE nullable|not_null     schema, pre-order, DEPTH 0 for a column
    batch ROWS
    row V | V | ...                             one value per column
    error TEXT                                  decoding must fail with TEXT in the message
Values: null; true/false; integers (dates, times, timestamps, durations and year-month intervals
as their raw integer); floats as printf("%.17g"); decimals in plain notation; dt(DAYS,MS);
mdn(MONTHS,DAYS,NS); [a, b] for lists; {a, b} for structs (child values in order);
map{k: v, ...} for maps. Byte strings (and names): "text" when at most 64 bytes of printable
ASCII other than '"' and '\\'; len=N,fnv=HEX (FNV-1a 64) when longer than 64 bytes; else x"HEX".
Types: null bool int8..int64 uint8..uint64 float16/32/64 decimalBITS(P,S) utf8 large_utf8 binary
large_binary fixed_size_binary(W) date32 date64 time32(s|ms) time64(us|ns) timestamp(UNIT[,TZ])
duration(UNIT) interval(year_month|day_time|month_day_nano) list large_list fixed_size_list(N)
struct map map(sorted).
"""
import ctypes
import datetime as dt
import gc
import os
import struct
import sys
from decimal import Decimal

import pyarrow as pa
import pyarrow.ipc as ipc

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "arrow")
CORPUS = os.path.join(HERE, "..", "fuzz", "corpus", "fuzz_arrow")


# ------------------------------------------------------------------------------------------------
# Canonical rendering


def fnv1a64(b):
    h = 0xCBF29CE484222325
    for c in b:
        h = ((h ^ c) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def show_bytes(b):
    if isinstance(b, str):
        b = b.encode("utf-8")
    if len(b) > 64:
        return "len=%d,fnv=%016x" % (len(b), fnv1a64(b))
    if all(0x20 <= c < 0x7F and c not in b'"\\' for c in b):
        return '"' + b.decode("ascii") + '"'
    return 'x"' + b.hex() + '"'


UNITS = {"s": "s", "ms": "ms", "us": "us", "ns": "ns"}


def type_name(t):
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return ("int%d" if pa.types.is_signed_integer(t) else "uint%d") % t.bit_width
    if pa.types.is_floating(t):
        return "float%d" % t.bit_width
    if pa.types.is_decimal(t):
        return "decimal%d(%d,%d)" % (t.bit_width, t.precision, t.scale)
    if pa.types.is_large_string(t):
        return "large_utf8"
    if pa.types.is_string(t):
        return "utf8"
    if pa.types.is_large_binary(t):
        return "large_binary"
    if pa.types.is_fixed_size_binary(t):
        return "fixed_size_binary(%d)" % t.byte_width
    if pa.types.is_binary(t):
        return "binary"
    if pa.types.is_date32(t):
        return "date32"
    if pa.types.is_date64(t):
        return "date64"
    if pa.types.is_time32(t) or pa.types.is_time64(t):
        return "time%d(%s)" % (t.bit_width, t.unit)
    if pa.types.is_timestamp(t):
        return "timestamp(%s,%s)" % (t.unit, t.tz) if t.tz else "timestamp(%s)" % t.unit
    if pa.types.is_duration(t):
        return "duration(%s)" % t.unit
    if t == pa.month_day_nano_interval():
        return "interval(month_day_nano)"
    if pa.types.is_large_list(t):
        return "large_list"
    if pa.types.is_fixed_size_list(t):
        return "fixed_size_list(%d)" % t.list_size
    if pa.types.is_map(t):
        return "map(sorted)" if t.keys_sorted else "map"
    if pa.types.is_list(t):
        return "list"
    if pa.types.is_struct(t):
        return "struct"
    raise ValueError("no canonical name for %s" % t)


def children_of(f):
    t = f.type
    if pa.types.is_map(t):
        # The IPC schema of a map is map<entries: struct<key, value>>.
        entries = pa.struct([t.key_field, t.item_field])
        return [pa.field("entries", entries, nullable=False)]
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return [t.value_field]
    if pa.types.is_struct(t):
        return [t.field(i) for i in range(t.num_fields)]
    return []


def schema_lines(fields, depth=0):
    out = []
    for f in fields:
        out.append(
            "field %d %s %s %s"
            % (depth, show_bytes(f.name), type_name(f.type), "nullable" if f.nullable else "not_null")
        )
        out += schema_lines(children_of(f), depth + 1)
    return out


def fmt_float(v):
    return "%.17g" % v


def render(arr):
    """Canonical strings for every row of arr (pyarrow applies arr's own offset)."""
    t = arr.type
    n = len(arr)
    if pa.types.is_null(t):
        return ["null"] * n
    valid = arr.is_valid().to_pylist()

    def per_row(values):
        return [v if ok else "null" for v, ok in zip(values, valid)]

    if pa.types.is_boolean(t):
        return per_row(["true" if v else "false" for v in arr.to_pylist()])
    if pa.types.is_integer(t):
        return per_row([str(v) for v in arr.to_pylist()])
    if pa.types.is_floating(t):
        if t.bit_width == 16:
            bits = arr.view(pa.uint16()).to_pylist()
            vals = [struct.unpack("<e", struct.pack("<H", b))[0] if b is not None else 0 for b in bits]
        else:
            vals = [v if v is not None else 0 for v in arr.to_pylist()]
        return per_row([fmt_float(v) for v in vals])
    if pa.types.is_decimal(t):
        return per_row([format(v, "f") if v is not None else "" for v in arr.to_pylist()])
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or \
            pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return per_row([show_bytes(v) if v is not None else "" for v in arr.to_pylist()])
    if pa.types.is_temporal(t) and not t == pa.month_day_nano_interval():
        raw = pa.int32() if t.bit_width == 32 else pa.int64()
        return per_row([str(v) for v in arr.view(raw).to_pylist()])
    if t == pa.month_day_nano_interval():
        return per_row(
            ["mdn(%d,%d,%d)" % (v.months, v.days, v.nanoseconds) if v is not None else ""
             for v in arr.to_pylist()]
        )
    if pa.types.is_map(t):
        offs = arr.offsets.to_pylist()
        keys, items = render(arr.keys), render(arr.items)
        return per_row(
            ["map{" + ", ".join("%s: %s" % (keys[j], items[j]) for j in range(offs[i], offs[i + 1]))
             + "}" for i in range(n)]
        )
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        offs = arr.offsets.to_pylist()
        child = render(arr.values)
        return per_row(["[" + ", ".join(child[offs[i]:offs[i + 1]]) + "]" for i in range(n)])
    if pa.types.is_fixed_size_list(t):
        k = t.list_size
        child = render(arr.values)  # not sliced: add arr.offset ourselves
        base = arr.offset
        return per_row(
            ["[" + ", ".join(child[(base + i) * k:(base + i + 1) * k]) + "]" for i in range(n)]
        )
    if pa.types.is_struct(t):
        kids = [render(arr.field(j)) for j in range(t.num_fields)]
        return per_row(["{" + ", ".join(c[i] for c in kids) + "}" for i in range(n)])
    raise ValueError("cannot render %s" % t)


def expected_for(data):
    """Reads the stream back with pyarrow and renders what it holds."""
    reader = ipc.open_stream(data)
    lines = schema_lines(list(reader.schema))
    for batch in reader:
        lines.append("batch %d" % batch.num_rows)
        cols = [render(c) for c in batch.columns]
        for i in range(batch.num_rows):
            lines.append("row " + " | ".join(c[i] for c in cols))
    return lines


# ------------------------------------------------------------------------------------------------
# Writing


def stream_bytes(schema, batches, **opts):
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, schema, options=ipc.IpcWriteOptions(**opts)) as w:
        for b in batches:
            w.write_batch(b)
    return sink.getvalue().to_pybytes()


written = []


def save(name, data, lines):
    with open(os.path.join(OUT, name + ".arrows"), "wb") as f:
        f.write(data)
    with open(os.path.join(OUT, name + ".expected"), "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")
    written.append((name, len(data)))


def save_batches(name, batches, schema=None, **opts):
    schema = schema or batches[0].schema
    data = stream_bytes(schema, batches, **opts)
    save(name, data, expected_for(data))
    return data


# ------------------------------------------------------------------------------------------------
# Data


def primitives():
    i64 = [0, -1, 2**63 - 1, -(2**63), None, 42, 7]
    cols = {
        "n": pa.nulls(7),
        "b": pa.array([True, False, None, True, True, False, None]),
        "i8": pa.array([0, -1, 127, -128, None, 5, 6], pa.int8()),
        "i16": pa.array([0, -1, 32767, -32768, None, 5, 6], pa.int16()),
        "i32": pa.array([0, -1, 2**31 - 1, -(2**31), None, 5, 6], pa.int32()),
        "i64": pa.array(i64, pa.int64()),
        "u8": pa.array([0, 1, 255, 128, None, 5, 6], pa.uint8()),
        "u16": pa.array([0, 1, 65535, 32768, None, 5, 6], pa.uint16()),
        "u32": pa.array([0, 1, 2**32 - 1, 2**31, None, 5, 6], pa.uint32()),
        "u64": pa.array([0, 1, 2**64 - 1, 2**63, None, 5, 6], pa.uint64()),
        "f16": pa.array(
            [struct.unpack("<e", struct.pack("<H", h))[0] for h in (0x3C00, 0x8000, 0x7BFF, 0x0001)]
            + [None, float("inf"), float("nan")], pa.float16()),
        "f32": pa.array([1.5, -0.0, 3.4028234663852886e38, 1e-45, None, float("-inf"), 0.1],
                        pa.float32()),
        "f64": pa.array([0.1, -0.0, 1.7976931348623157e308, 5e-324, None, float("inf"),
                         float("nan")], pa.float64()),
    }
    save_batches("primitives", [pa.record_batch(list(cols.values()), names=list(cols))])


def strings():
    uni = ["plain", "", None, "caf\u00e9 na\u00efve", "\u4e2d\u6587\u5b57\u7b26",
           "fire \U0001F525 and \U0001F9D1\u200D\U0001F680", "\u0645\u0631\u062d\u0628\u0627",
           "quote \" back \\ tab\t nl\n", "e\u0301 combining"]
    n = len(uni)
    batch = pa.record_batch(
        [
            pa.array(uni, pa.utf8()),
            pa.array(uni, pa.large_utf8()),
            pa.array([b"\x00\xff", b"", None, b"bin", b"\x80", b"a" * 65, b"z", b"\n", b"q"],
                     pa.binary()),
            pa.array([b"L" * 70, None, b"", b"x", b"\x01\x02", b"y", b"", b"w", None],
                     pa.large_binary()),
            pa.array([b"abc", b"\x00\x01\x02", None, b"xyz", b"   ", b"abc", b"def", b"ghi", None],
                     pa.binary(3)),
        ],
        schema=pa.schema([
            pa.field("s", pa.utf8()),
            pa.field("na\u00efve \u2713", pa.large_utf8()),
            pa.field("bin", pa.binary()),
            pa.field("lbin", pa.large_binary(), nullable=True),
            pa.field("fsb", pa.binary(3), nullable=True),
        ]),
    )
    assert batch.num_rows == n
    save_batches("strings", [batch])


def decimals():
    D = Decimal
    cols = [
        ("d38_0", pa.decimal128(38, 0),
         [D("9" * 38), D("-" + "9" * 38), D(0), None, D(1), D(-1)]),
        ("d38_38", pa.decimal128(38, 38),
         [D("0." + "9" * 38), D("-0." + "0" * 37 + "1"), D(0), None, D("0.5"), D("-0.5")]),
        ("d10_2", pa.decimal128(10, 2),
         [D("12.30"), D("-0.05"), D("99999999.99"), None, D("-12345678.90"), D("0.00")]),
        ("d5_neg2", pa.decimal128(5, -2),
         [D("12300"), D("-9999900"), D(0), None, D("100"), D("-100")]),
        ("d76_10", pa.decimal256(76, 10),
         [D("9" * 66 + "." + "9" * 10), D("-" + "9" * 66 + "." + "9" * 10), D("1.5"), None,
          D("-0.0000000001"), D(0)]),
        ("d9_3", pa.decimal32(9, 3), [D("123456.789"), D("-0.001"), D(0), None, D("1"), D("-1")]),
        ("d18_5", pa.decimal64(18, 5),
         [D("1234567890123.45678"), D("-0.00001"), D(0), None, D("7"), D("-7")]),
    ]
    batch = pa.record_batch([pa.array(v, t) for _, t, v in cols], names=[c[0] for c in cols])
    save_batches("decimals", [batch])


def temporal():
    ts = [0, -1, 1_700_000_000_123, None, 253402300799999, -62135596800000]
    cols = {
        "d32": pa.array([0, -1, 19000, None, 2932896, -719162], pa.date32()),
        "d64": pa.array([0, -86400000, 1641600000000, None, 86400000 * 3, -86400000 * 400],
                        pa.date64()),
        "t32s": pa.array([0, 1, 86399, None, 3600, 60], pa.time32("s")),
        "t32ms": pa.array([0, 1, 86399999, None, 3600000, 60000], pa.time32("ms")),
        "t64us": pa.array([0, 1, 86399999999, None, 3600000000, 60000000], pa.time64("us")),
        "t64ns": pa.array([0, 1, 86399999999999, None, 3600000000000, 60000000000],
                          pa.time64("ns")),
        "ts_s": pa.array([v // 1000 if v is not None else None for v in ts], pa.timestamp("s")),
        "ts_ms": pa.array(ts, pa.timestamp("ms")),
        "ts_us": pa.array([v * 1000 if v is not None else None for v in ts], pa.timestamp("us")),
        "ts_ns": pa.array([1, -1, 1_700_000_000_123_456_789, None, 2**63 - 1, -(2**63) + 1],
                          pa.timestamp("ns")),
        "ts_utc": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "ts_ny": pa.array(ts, pa.timestamp("us", tz="America/New_York")),
        "ts_off": pa.array(ts, pa.timestamp("ms", tz="+05:30")),
        "dur_s": pa.array([0, -1, 86400, None, 2**62, -(2**62)], pa.duration("s")),
        "dur_ms": pa.array([0, -1, 86400000, None, 5, 6], pa.duration("ms")),
        "dur_us": pa.array([0, -1, 86400000000, None, 5, 6], pa.duration("us")),
        "dur_ns": pa.array([0, -1, 86400000000000, None, 5, 6], pa.duration("ns")),
        "mdn": pa.array([(1, 2, 3), (-1, -2, -3), (0, 0, 0), None, (14, 30, 10**15),
                         (2**31 - 1, -(2**31), -(2**63))], pa.month_day_nano_interval()),
    }
    save_batches("temporal", [pa.record_batch(list(cols.values()), names=list(cols))])


# pyarrow (26) has no Python array class for the year-month and day-time interval types that
# Spark uses, so those columns are handed to pyarrow through the Arrow C data interface.
class _CSchema(ctypes.Structure):
    pass


class _CArray(ctypes.Structure):
    pass


_SREL = ctypes.CFUNCTYPE(None, ctypes.POINTER(_CSchema))
_AREL = ctypes.CFUNCTYPE(None, ctypes.POINTER(_CArray))
_CSchema._fields_ = [
    ("format", ctypes.c_char_p), ("name", ctypes.c_char_p), ("metadata", ctypes.c_char_p),
    ("flags", ctypes.c_int64), ("n_children", ctypes.c_int64),
    ("children", ctypes.POINTER(ctypes.POINTER(_CSchema))), ("dictionary", ctypes.c_void_p),
    ("release", _SREL), ("private_data", ctypes.c_void_p)]
_CArray._fields_ = [
    ("length", ctypes.c_int64), ("null_count", ctypes.c_int64), ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64), ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(_CArray))), ("dictionary", ctypes.c_void_p),
    ("release", _AREL), ("private_data", ctypes.c_void_p)]
_keep = []


@_SREL
def _schema_release(p):
    p.contents.release = _SREL()


@_AREL
def _array_release(p):
    p.contents.release = _AREL()


def _c_schema(fmt, name, children=(), nullable=True):
    kids = (ctypes.POINTER(_CSchema) * len(children))(*[ctypes.pointer(c) for c in children])
    _keep.append(kids)
    return _CSchema(fmt, name, None, 2 if nullable else 0, len(children), kids, None,
                    _schema_release, None)


def _c_array(length, nulls, bufs, children=()):
    held = [ctypes.create_string_buffer(b, len(b)) if b is not None else None for b in bufs]
    _keep.append(held)
    ptrs = (ctypes.c_void_p * len(bufs))(*[ctypes.addressof(h) if h is not None else None
                                           for h in held])
    kids = (ctypes.POINTER(_CArray) * len(children))(*[ctypes.pointer(c) for c in children])
    _keep.extend([ptrs, kids])
    return _CArray(length, nulls, 0, len(bufs), len(children), ptrs, kids, None,
                   _array_release, None)


def intervals():
    months = [0, 1, -14, None, 2**31 - 1, -(2**31)]
    day_ms = [(0, 0), (1, 1000), (-3, -86399999), None, (2**31 - 1, -(2**31)), (365, 5)]
    n = len(months)
    bitmap = lambda vals: bytes([sum(1 << i for i, v in enumerate(vals) if v is not None)])
    ym = _c_array(n, 1, [bitmap(months),
                         struct.pack("<%di" % n, *[v or 0 for v in months])])
    dtv = _c_array(n, 1, [bitmap(day_ms),
                          b"".join(struct.pack("<ii", *(v or (0, 0))) for v in day_ms)])
    top_s = _c_schema(b"+s", b"", [_c_schema(b"tiM", b"ym"), _c_schema(b"tiD", b"dt")],
                      nullable=False)
    top_a = _c_array(n, 0, [None], [ym, dtv])
    batch = pa.RecordBatch._import_from_c(ctypes.addressof(top_a), ctypes.addressof(top_s))
    data = stream_bytes(batch.schema, [batch])
    del batch
    gc.collect()  # pyarrow must let go of our buffers while the release callbacks still exist
    assert ipc.open_stream(data).read_all().num_rows == n
    lines = [
        "field 0 \"ym\" interval(year_month) nullable",
        "field 0 \"dt\" interval(day_time) nullable",
        "batch %d" % n,
    ]
    for m, d in zip(months, day_ms):
        lines.append("row %s | %s" % ("null" if m is None else m,
                                      "null" if d is None else "dt(%d,%d)" % d))
    save("intervals", data, lines)


def nested_batch(n=None):
    lst = pa.array([[1, 2, None], [], None, [4], [5, 6, 7, 8], [None]], pa.list_(pa.int32()))
    llst = pa.array([["a", None], None, [], ["\u00fc", "bb", "ccc"], [""], ["z"]],
                    pa.large_list(pa.utf8()))
    fsl = pa.array([[1, 2], None, [3, None], [5, 6], [-1, -2], [0, 0]],
                   pa.list_(pa.int16(), 2))
    inner = pa.StructArray.from_arrays(
        [pa.array([True, None, False, True, False, None])], names=["flag"],
        mask=pa.array([False, False, True, False, False, False]))
    st = pa.StructArray.from_arrays(
        [pa.array([1, None, 3, 4, 5, 6], pa.int32()),
         pa.array(["x", "y", None, "w", "v", "u"]), inner],
        names=["a", "b", "c"], mask=pa.array([False, False, False, True, False, False]))
    mp = pa.array([[("k1", 1), ("k2", None)], [], None, [("only", 42)], [("a", 1), ("b", 2)],
                   [("\u00e9", -1)]], pa.map_(pa.utf8(), pa.int64()))
    smp = pa.array([[(1, "one"), (2, "two")], None, [], [(3, None)], [(-5, "neg")], []],
                   pa.map_(pa.int32(), pa.utf8(), keys_sorted=True))
    deep_t = pa.list_(pa.struct([
        pa.field("m", pa.map_(pa.utf8(), pa.list_(pa.int32()))),
        pa.field("tag", pa.utf8()),
    ]))
    deep = pa.array([
        [{"m": [("a", [1, 2]), ("b", None)], "tag": "t1"}, None, {"m": None, "tag": None}],
        [],
        None,
        [{"m": [], "tag": "empty"}],
        [{"m": [("x", []), ("y", [None, 3])], "tag": "t2"}, {"m": [("z", [9])], "tag": "t3"}],
        [None],
    ], deep_t)
    return pa.record_batch([lst, llst, fsl, st, mp, smp, deep],
                           names=["list", "large_list", "fsl", "struct", "map", "sorted_map",
                                  "deep"])


def nested():
    save_batches("nested", [nested_batch()])


def mixed_batch(rows, seed):
    ints = [None if (i + seed) % 7 == 0 else (i * 2654435761 + seed) % 100000 - 50000
            for i in range(rows)]
    return pa.record_batch([
        pa.array(ints, pa.int64()),
        pa.array([None if v is None else v / 8 for v in ints], pa.float64()),
        pa.array([None if (i + seed) % 5 == 0 else "row %d \u00e9 %d" % (i, seed * i % 13)
                  for i in range(rows)], pa.utf8()),
        pa.array([None if i % 11 == 3 else [i % 3] * (i % 4) for i in range(rows)],
                 pa.list_(pa.int16())),
        pa.array([Decimal(i * 37 - 900) / 100 if i % 9 else None for i in range(rows)],
                 pa.decimal128(12, 2)),
        pa.array([None if i % 13 == 0 else (i % 2 == 0) for i in range(rows)], pa.bool_()),
    ], names=["id", "score", "label", "tags", "price", "flag"])


def empty_and_multi():
    b = mixed_batch(0, 1)
    save_batches("empty", [b])
    save_batches("multi_batch", [mixed_batch(5, 1), mixed_batch(0, 2), mixed_batch(3, 3)])


def sliced():
    nb = nested_batch()
    b = pa.array([True, False, None, True, False, True, True, False, None, True, False, True])
    s = pa.array(["zero", "one", None, "three", "four", "\u00fcnf", "six", "", "eight", "nine",
                  "ten", "eleven"])
    i = pa.array([0, 1, 2, None, 4, 5, 6, 7, 8, None, 10, 11], pa.int32())
    cols = [b.slice(3, 6), s.slice(3, 6), i.slice(3, 6)] + [c.slice(1, 6) for c in
                                                            [pa.concat_arrays([c, c])
                                                             for c in nb.columns]]
    names = ["bool", "str", "int"] + nb.schema.names
    save_batches("sliced", [pa.record_batch(cols, names=names)])


def large_strings():
    big = "".join(chr(0x41 + (i * 7) % 26) for i in range(20000))
    vals = [big, "\u00e9" * 1500, None, "short", big[:65], "x" * 64, ""]
    save_batches("large_strings", [pa.record_batch([pa.array(vals, pa.utf8()),
                                                    pa.array(vals[::-1], pa.large_utf8())],
                                                   names=["s", "ls"])])


def compressed():
    batches = [mixed_batch(300, 4), mixed_batch(40, 5)]
    save_batches("lz4", batches, compression="lz4")
    save_batches("zstd", batches, compression="zstd")
    save_batches("zstd_nested", [nested_batch()], compression="zstd")
    # Buffers that inflate far beyond their compressed size, as Spark's repetitive data does.
    big = pa.record_batch([pa.array(["ab" * 25000, "c" * 60000, None, "xyz" * 20000], pa.utf8()),
                           pa.array([1, -2, None, 4], pa.int64())],
                          names=["s", "n"])
    save_batches("zstd_large_buffer", [big], compression="zstd")
    save_batches("lz4_large_buffer", [big], compression="lz4")
    save("lz4_partly_raw", *partly_raw(stream_bytes(batches[1].schema, [batches[1]],
                                                    compression="lz4")))


def legacy():
    save_batches("legacy_v4", [mixed_batch(6, 7)], use_legacy_format=True,
                 metadata_version=ipc.MetadataVersion.V4)


def dictionary():
    arr = pa.array(["a", "b", "a", None]).dictionary_encode()
    data = stream_bytes(pa.schema([("d", arr.type)]), [pa.record_batch([arr], names=["d"])])
    save("dictionary", data, ["error dictionary"])


# ------------------------------------------------------------------------------------------------
# pyarrow compresses every buffer; writers may also store a buffer raw behind the length -1.
# partly_raw rewrites every other buffer of an LZ4 stream that way, by walking the flatbuffer
# metadata just far enough to find the buffer list (a minimal reader, enough for this purpose).


def _fb_table(buf, pos):
    vt = pos - struct.unpack_from("<i", buf, pos)[0]
    vlen = struct.unpack_from("<H", buf, vt)[0]
    slots = [struct.unpack_from("<H", buf, vt + 4 + 2 * i)[0] for i in range((vlen - 4) // 2)]
    return lambda i: pos + slots[i] if i < len(slots) and slots[i] else None


def _fb_deref(buf, at):
    return at + struct.unpack_from("<I", buf, at)[0]


def partly_raw(data):
    out, pos, flip = bytearray(), 0, 0
    codec = pa.Codec("lz4")
    while True:
        assert struct.unpack_from("<I", data, pos)[0] == 0xFFFFFFFF
        mlen = struct.unpack_from("<i", data, pos + 4)[0]
        if mlen == 0:
            out += data[pos:pos + 8]
            break
        meta = bytearray(data[pos + 8:pos + 8 + mlen])
        msg = _fb_table(meta, _fb_deref(meta, 0))
        body_len = struct.unpack_from("<q", meta, msg(3))[0] if msg(3) else 0
        body = data[pos + 8 + mlen:pos + 8 + mlen + body_len]
        if meta[msg(1)] == 3:  # RecordBatch: rebuild the body, rewrite Buffer structs in place
            rb = _fb_table(meta, _fb_deref(meta, msg(2)))
            vec = _fb_deref(meta, rb(2))
            new_body = bytearray()
            for k in range(struct.unpack_from("<I", meta, vec)[0]):
                off, ln = struct.unpack_from("<qq", meta, vec + 4 + 16 * k)
                piece = body[off:off + ln]
                if ln >= 8 and struct.unpack_from("<q", piece)[0] > 0 and flip % 2 == 0:
                    size = struct.unpack_from("<q", piece)[0]
                    raw = codec.decompress(piece[8:], decompressed_size=size).to_pybytes()
                    piece = struct.pack("<q", -1) + raw
                flip += 1
                struct.pack_into("<qq", meta, vec + 4 + 16 * k, len(new_body), len(piece))
                new_body += piece + b"\0" * (-len(piece) % 8)
            struct.pack_into("<q", meta, msg(3), len(new_body))
            body = bytes(new_body)
        out += data[pos:pos + 8] + meta + body
        pos += 8 + mlen + body_len
    data = bytes(out)
    return data, expected_for(data)  # pyarrow reading it back also proves it is well-formed


# ------------------------------------------------------------------------------------------------
# Schemas no writer produces but a hostile stream could: a minimal flatbuffer builder that lays
# objects out parent first, so that every offset points forward as flatbuffers requires.


def _fb_serialize(root):
    order, seen, queue = [], set(), [root]
    while queue:
        o = queue.pop(0)
        if id(o) in seen:
            continue
        seen.add(id(o))
        order.append(o)
        if o[0] == "table":
            queue += [v[1] for v in o[1].values() if v[0] == "off"]
        elif o[0] == "vec":
            queue += o[1]
    buf, pos, fixups = bytearray(8), {}, [(0, root)]

    def pad_to(align, extra=0):
        while (len(buf) + extra) % align:
            buf.append(0)

    for o in order:
        if o[0] == "str":
            pad_to(4)
            pos[id(o)] = len(buf)
            buf.extend(struct.pack("<I", len(o[1])) + o[1] + b"\0")
        elif o[0] == "vec":
            pad_to(8, 4)
            pos[id(o)] = len(buf)
            buf.extend(struct.pack("<I", len(o[1])))
            for e in o[1]:
                fixups.append((len(buf), e))
                buf.extend(b"\0\0\0\0")
        else:
            fields = o[1]
            nslot = max(fields) + 1 if fields else 0
            layout, off = {}, 4
            for slot in sorted(fields):
                size = 4 if fields[slot][0] == "off" else struct.calcsize(fields[slot][0])
                off = (off + size - 1) // size * size
                layout[slot] = (off, size)
                off += size
            pad_to(2)
            vt = len(buf)
            buf.extend(struct.pack("<HH", 4 + 2 * nslot, off))
            buf.extend(b"".join(struct.pack("<H", layout[i][0] if i in layout else 0)
                                for i in range(nslot)))
            pad_to(8)
            t = len(buf)
            pos[id(o)] = t
            buf.extend(struct.pack("<i", t - vt) + bytes(off - 4))
            for slot, (fo, size) in layout.items():
                kind, val = fields[slot]
                if kind == "off":
                    fixups.append((t + fo, val))
                else:
                    struct.pack_into("<" + kind, buf, t + fo, val)
    for at, target in fixups:
        struct.pack_into("<I", buf, at, pos[id(target)] - at)
    return bytes(buf)


def _schema_stream(fields):
    schema = ("table", {1: ("off", ("vec", fields))})
    msg = ("table", {0: ("h", 4), 1: ("B", 1), 2: ("off", schema), 3: ("q", 0)})
    meta = _fb_serialize(msg)
    meta += bytes(-len(meta) % 8)
    return struct.pack("<Ii", 0xFFFFFFFF, len(meta)) + meta + struct.pack("<Ii", 0xFFFFFFFF, 0)


def _field(name, type_id, type_fields, children):
    f = {0: ("off", ("str", name)), 1: ("B", 1), 2: ("B", type_id),
         3: ("off", ("table", type_fields))}
    if children:
        f[5] = ("off", ("vec", children))
    return ("table", f)


def hostile_schemas():
    def nested_lists(depth):
        f = _field(b"leaf", 2, {0: ("i", 8), 1: ("B", 1)}, [])
        for _ in range(depth - 1):
            f = _field(b"l", 12, {}, [f])
        return f

    ok = _schema_stream([nested_lists(64)])
    assert len(ipc.open_stream(ok).schema) == 1  # pyarrow agrees the builder is sound
    save("depth_64", ok, schema_lines(list(ipc.open_stream(ok).schema)))
    save("depth_65", _schema_stream([nested_lists(65)]), ["error deeper than 64"])

    # A struct whose 16 children are one shared table, six levels down: 16^6 fields from a few
    # hundred bytes of metadata.
    def shared(levels, width):
        f = _field(b"x", 2, {0: ("i", 8), 1: ("B", 1)}, [])
        for _ in range(levels):
            f = _field(b"s", 13, {}, [f] * width)
        return f

    small = _schema_stream([shared(2, 2)])
    assert ipc.open_stream(small).schema.field(0).type.num_fields == 2
    save("shared_fields", small, schema_lines(list(ipc.open_stream(small).schema)))
    save("field_bomb", _schema_stream([shared(6, 16)]), ["error more than 65536 fields"])


def main():
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(CORPUS, exist_ok=True)
    primitives()
    strings()
    decimals()
    temporal()
    intervals()
    nested()
    empty_and_multi()
    sliced()
    large_strings()
    compressed()
    legacy()
    dictionary()
    hostile_schemas()
    for name in ["primitives", "nested", "intervals", "empty", "legacy_v4", "zstd_nested",
                 "lz4_partly_raw", "decimals", "lz4_large_buffer"]:
        with open(os.path.join(OUT, name + ".arrows"), "rb") as f:
            data = f.read()
        with open(os.path.join(CORPUS, name), "wb") as f:
            f.write(data)
    total = sum(n for _, n in written)
    for name, n in written:
        print("%-16s %7d bytes" % (name, n))
    print("total %d bytes of streams (pyarrow %s)" % (total, pa.__version__))


if __name__ == "__main__":
    sys.exit(main())
