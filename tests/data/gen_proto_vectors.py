#!/usr/bin/env python3
"""Wire vectors for tests/unit/spark/proto_test.c, serialised by the REAL PySpark client classes.

Kindling's .proto subset (src/spark/proto/) is written by hand from the protocol facts; these
vectors prove that its field numbers and wire types agree with the official definitions:
proto_test.c decodes each tests/data/proto/<name>.hex with the protobuf-c code generated from our
.proto and compares the fields with <name>.json, and for some vectors encodes the same message in C
and compares the bytes.

Before writing anything the script also compares every field of our .proto (compiled with protoc
into a descriptor set) against PySpark's descriptors by number, name, type and cardinality, and
stops on the first disagreement. Fields newer than the installed pyspark are listed, not checked.

Setup: pip install pyspark==4.0.1 protobuf googleapis-common-protos pyarrow ; protoc-c on PATH.
Run:   python3 tests/data/gen_proto_vectors.py      (rewrites tests/data/proto/)

The .json files are flat: one key per checked value, keyed by the C access path, so the C test
needs no JSON library. Strings in them use only the escapes \\" \\\\ \\n.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pyarrow as pa
import pyspark
import pyspark.sql.connect.proto as pb
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROTO_DIR = os.path.join(ROOT, "src", "spark", "proto")
OUT_DIR = os.path.join(HERE, "proto")

# Our stand-ins for well-known types live in google.rpc (one package per file); map them back.
UPSTREAM_NAME = {
    "google.rpc.Any": "google.protobuf.Any",
    "google.rpc.Duration": "google.protobuf.Duration",
}

F = descriptor_pb2.FieldDescriptorProto


def check_against_pyspark():
    """Compares our descriptors with PySpark's; exits on a disagreement, lists what it skipped."""
    # protoc-c embeds protoc's front end, so either compiler can write the descriptor set.
    protoc = shutil.which("protoc") or shutil.which("protoc-c")
    if not protoc:
        sys.exit("neither protoc nor protoc-c found: cannot cross-check the .proto")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "set.pb")
        subprocess.run([protoc, "-I" + PROTO_DIR, "--include_imports",
                        "--descriptor_set_out=" + out, "kindling_spark_connect.proto"], check=True)
        fds = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            fds.ParseFromString(f.read())

    pool = descriptor_pool.Default()
    notes, errors, checked = [], [], 0

    def walk(prefix, messages):
        nonlocal checked
        for m in messages:
            full = prefix + "." + m.name
            if m.options.map_entry:
                continue
            walk(full, m.nested_type)
            try:
                up = pool.FindMessageTypeByName(UPSTREAM_NAME.get(full, full))
            except KeyError:
                notes.append(f"{full}: not in pyspark {pyspark.__version__} (from the facts file)")
                continue
            by_num = {f.number: f for f in up.fields}
            for f in m.field:
                uf = by_num.get(f.number)
                same_name = up.fields_by_name.get(f.name)
                if same_name is not None and same_name.number != f.number:
                    errors.append(f"{full}.{f.name}={f.number}: upstream numbers it "
                                  f"{same_name.number}")
                    continue
                if uf is None:
                    notes.append(f"{full}.{f.name}={f.number}: "
                                 f"not in pyspark {pyspark.__version__}")
                    continue
                checked += 1
                where = f"{full}.{f.name}={f.number}"
                if uf.name != f.name:
                    errors.append(f"{where}: upstream calls field {f.number} '{uf.name}'")
                if (f.label == F.LABEL_REPEATED) != uf.is_repeated:
                    errors.append(f"{where}: repeated differs from upstream")
                ours, theirs = f.type, uf.type
                if ours == F.TYPE_INT32 and theirs == F.TYPE_ENUM:
                    continue  # deliberate: server-sent enums decoded as int32
                if ours != theirs:
                    errors.append(f"{where}: type {ours} but upstream has {theirs}")
                    continue
                if ours == F.TYPE_MESSAGE:
                    ours_name = f.type_name.lstrip(".")
                    ours_name = UPSTREAM_NAME.get(ours_name, ours_name)
                    if ours_name != uf.message_type.full_name and not ours_name.endswith("Entry"):
                        errors.append(f"{where}: message {ours_name}, upstream "
                                      f"{uf.message_type.full_name}")

    for fd in fds.file:
        walk(fd.package, fd.message_type)
    if errors:
        sys.exit("our .proto disagrees with pyspark:\n  " + "\n  ".join(errors))
    print(f"cross-check: {checked} fields agree with pyspark {pyspark.__version__}")
    for n in notes:
        print("  unchecked:", n)


# --- helpers -------------------------------------------------------------------------------------

def field(num, wire, payload):
    """Raw protobuf field bytes, for fields no descriptor of ours or pyspark's declares."""
    def varint(v):
        out = bytearray()
        while True:
            b = v & 0x7F
            v >>= 7
            out.append(b | (0x80 if v else 0))
            if not v:
                return bytes(out)
    key = varint((num << 3) | wire)
    if wire == 0:
        return key + varint(payload)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload  # wire 1 / 5: payload already 8 / 4 bytes


def check_json_string(s):
    for ch in s:
        if ord(ch) < 0x20 and ch != "\n":
            raise ValueError(f"string {s!r} needs an escape the C reader does not handle")


def write(name, data, expect):
    for v in expect.values():
        if isinstance(v, str):
            check_json_string(v)
    with open(os.path.join(OUT_DIR, name + ".hex"), "w") as f:
        hexs = data.hex()
        for i in range(0, len(hexs), 96):
            f.write(hexs[i:i + 96] + "\n")
    expect = {"bytes": len(data), **expect}
    with open(os.path.join(OUT_DIR, name + ".json"), "w") as f:
        f.write("{\n")
        items = list(expect.items())
        for i, (k, v) in enumerate(items):
            f.write(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}"
                    + ("," if i + 1 < len(items) else "") + "\n")
        f.write("}\n")
    print(f"{name}: {len(data)} bytes, {len(expect)} expectations")


def arrow_stream():
    table = pa.table({"id": pa.array([1, 2, 3], pa.int64()),
                      "name": pa.array(["a", None, "ç"], pa.string())})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


SESSION = "8a5f3c1e-2b4d-4e6f-9a0b-1c2d3e4f5a6b"
SERVER_SESSION = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
OPERATION = "11111111-2222-4333-8444-555555555555"


def main():
    check_against_pyspark()
    os.makedirs(OUT_DIR, exist_ok=True)

    # ExecutePlanRequest running a SQL command, as Kindling sends it. No maps, so the bytes are
    # deterministic and the C test can compare its own encoding byte for byte.
    req = pb.ExecutePlanRequest(
        session_id=SESSION,
        user_context=pb.UserContext(user_id="alice", user_name="Alice"),
        client_type="kindling/0.1 os/linux",
        operation_id=OPERATION,
        tags=["kindling", "cell-7"],
        client_observed_server_side_session_id=SERVER_SESSION,
    )
    req.plan.command.sql_command.sql = "SELECT * FROM t WHERE id = ?"
    req.plan.command.sql_command.pos_args.add().long = 42
    req.request_options.add().reattach_options.reattachable = True
    write("exec_req_sql_command", req.SerializeToString(deterministic=True), {
        "session_id": SESSION,
        "user_context.user_id": "alice",
        "user_context.user_name": "Alice",
        "client_type": "kindling/0.1 os/linux",
        "operation_id": OPERATION,
        "n_tags": 2, "tags[0]": "kindling", "tags[1]": "cell-7",
        "client_observed_server_side_session_id": SERVER_SESSION,
        "plan.command.sql_command.sql": "SELECT * FROM t WHERE id = ?",
        "plan.command.sql_command.pos_args[0].long": 42,
        "n_request_options": 1,
        "request_options[0].reattach_options.reattachable": True,
    })

    # A plain query sent back as Plan.root wrapped in a Limit, with every literal kind that
    # parameter binding uses as positional args (no maps: deterministic bytes).
    req = pb.ExecutePlanRequest(session_id=SESSION, operation_id=OPERATION)
    lim = req.plan.root.limit
    lim.limit = 1000
    lim.input.common.plan_id = 7
    sql = lim.input.sql
    sql.query = "SELECT ?, ?, ?"
    a = sql.pos_args
    a.add().null.integer.SetInParent()
    a.add().binary = b"\x00\xffkl"
    a.add().boolean = True
    a.add().byte = -8
    a.add().short = 300
    a.add().integer = -70000
    a.add().long = -(1 << 40)
    a.add().float = 1.5
    a.add().double = -2.25
    d = a.add().decimal
    d.value, d.precision, d.scale = "-12.345", 10, 3
    a.add().string = "héllo"
    a.add().date = 19000
    a.add().timestamp = 1_700_000_000_123_456
    a.add().timestamp_ntz = 1_600_000_000_000_001
    ci = a.add().calendar_interval
    ci.months, ci.days, ci.microseconds = 14, 3, 5_000_000
    a.add().year_month_interval = 25
    a.add().day_time_interval = 86_400_000_001
    arr = a.add().array
    arr.element_type.string.SetInParent()
    arr.elements.add().string = "x"
    arr.elements.add().string = "y"
    mp = a.add().map
    mp.key_type.string.SetInParent()
    mp.value_type.integer.SetInParent()
    mp.keys.add().string = "k"
    mp.values.add().integer = 9
    st = a.add().struct
    sf = st.struct_type.struct.fields.add()
    sf.name, sf.nullable = "f", True
    sf.data_type.long.SetInParent()
    st.elements.add().long = 5
    a.add().integer = 0  # a oneof member set to zero is still on the wire
    write("exec_req_root_literals", req.SerializeToString(deterministic=True), {
        "session_id": SESSION,
        "operation_id": OPERATION,
        "plan.root.limit.limit": 1000,
        "plan.root.limit.input.common.plan_id": 7,
        "plan.root.limit.input.sql.query": "SELECT ?, ?, ?",
        "n_pos_args": 21,
        "pos_args[0].null.kind": "integer",
        "pos_args[1].binary_hex": "00ff6b6c",
        "pos_args[2].boolean": True,
        "pos_args[3].byte": -8,
        "pos_args[4].short": 300,
        "pos_args[5].integer": -70000,
        "pos_args[6].long": -(1 << 40),
        "pos_args[7].float": 1.5,
        "pos_args[8].double": -2.25,
        "pos_args[9].decimal.value": "-12.345",
        "pos_args[9].decimal.precision": 10,
        "pos_args[9].decimal.scale": 3,
        "pos_args[10].string": "héllo",
        "pos_args[11].date": 19000,
        "pos_args[12].timestamp": 1_700_000_000_123_456,
        "pos_args[13].timestamp_ntz": 1_600_000_000_000_001,
        "pos_args[14].calendar_interval.months": 14,
        "pos_args[14].calendar_interval.days": 3,
        "pos_args[14].calendar_interval.microseconds": 5_000_000,
        "pos_args[15].year_month_interval": 25,
        "pos_args[16].day_time_interval": 86_400_000_001,
        "pos_args[17].array.n_elements": 2,
        "pos_args[17].array.elements[1].string": "y",
        "pos_args[18].map.keys[0].string": "k",
        "pos_args[18].map.values[0].integer": 9,
        "pos_args[19].struct.struct_type.fields[0].name": "f",
        "pos_args[19].struct.elements[0].long": 5,
        "pos_args[20].integer": 0,
    })

    # The response stream of a query: schema, one Arrow batch, metrics, progress, completion.
    def resp(**kw):
        return pb.ExecutePlanResponse(session_id=SESSION, operation_id=OPERATION,
                                      server_side_session_id=SERVER_SESSION, **kw)

    r = resp(response_id="r-1")
    f1 = r.schema.struct.fields.add()
    f1.name, f1.nullable = "id", False
    f1.data_type.long.SetInParent()
    f2 = r.schema.struct.fields.add()
    f2.name, f2.nullable, f2.metadata = "price", True, '{"comment":"net"}'
    f2.data_type.decimal.precision = 10
    f2.data_type.decimal.scale = 2
    f3 = r.schema.struct.fields.add()
    f3.name, f3.nullable = "tags", True
    f3.data_type.array.element_type.string.collation = "UTF8_LCASE"
    f3.data_type.array.contains_null = True
    f4 = r.schema.struct.fields.add()
    f4.name = "m"
    f4.data_type.map.key_type.string.SetInParent()
    f4.data_type.map.value_type.var_char.length = 12
    f4.data_type.map.value_contains_null = False
    f5 = r.schema.struct.fields.add()
    f5.name = "span"
    f5.data_type.day_time_interval.start_field = 0
    f5.data_type.day_time_interval.end_field = 3
    write("exec_resp_schema", r.SerializeToString(deterministic=True), {
        "session_id": SESSION,
        "operation_id": OPERATION,
        "response_id": "r-1",
        "server_side_session_id": SERVER_SESSION,
        "response_type": "none",
        "schema.struct.n_fields": 5,
        "schema.struct.fields[0].name": "id",
        "schema.struct.fields[0].nullable": False,
        "schema.struct.fields[0].data_type.kind": "long",
        "schema.struct.fields[1].name": "price",
        "schema.struct.fields[1].metadata": '{"comment":"net"}',
        "schema.struct.fields[1].data_type.decimal.precision": 10,
        "schema.struct.fields[1].data_type.decimal.scale": 2,
        "schema.struct.fields[2].data_type.array.element_type.string.collation": "UTF8_LCASE",
        "schema.struct.fields[2].data_type.array.contains_null": True,
        "schema.struct.fields[3].data_type.map.key_type.kind": "string",
        "schema.struct.fields[3].data_type.map.value_type.var_char.length": 12,
        "schema.struct.fields[4].data_type.day_time_interval.start_field": 0,
        "schema.struct.fields[4].data_type.day_time_interval.end_field": 3,
    })

    data = arrow_stream()
    r = resp(response_id="r-2")
    r.arrow_batch.row_count = 3
    r.arrow_batch.data = data
    r.arrow_batch.start_offset = 0
    write("exec_resp_arrow_batch", r.SerializeToString(deterministic=True), {
        "session_id": SESSION,
        "response_id": "r-2",
        "server_side_session_id": SERVER_SESSION,
        "response_type": "arrow_batch",
        "arrow_batch.row_count": 3,
        "arrow_batch.has_start_offset": True,
        "arrow_batch.start_offset": 0,
        "arrow_batch.data_hex": data.hex(),
    })

    r = resp(response_id="r-3")
    mo = r.metrics.metrics.add()
    mo.name, mo.plan_id, mo.parent = "LocalTableScan", 12, 3
    mo.execution_metrics["numOutputRows"].name = "number of output rows"
    mo.execution_metrics["numOutputRows"].value = 3
    mo.execution_metrics["numOutputRows"].metric_type = "sum"
    r.result_complete.SetInParent()  # oneof; metrics is a plain field beside it
    write("exec_resp_metrics_complete", r.SerializeToString(deterministic=True), {
        "response_id": "r-3",
        "response_type": "result_complete",
        "metrics.n_metrics": 1,
        "metrics.metrics[0].name": "LocalTableScan",
        "metrics.metrics[0].plan_id": 12,
        "metrics.metrics[0].parent": 3,
        "metrics.metrics[0].execution_metrics.numOutputRows.name": "number of output rows",
        "metrics.metrics[0].execution_metrics.numOutputRows.value": 3,
        "metrics.metrics[0].execution_metrics.numOutputRows.metric_type": "sum",
    })

    r = resp(response_id="r-4")
    p = r.execution_progress
    p.num_inflight_tasks = 4
    s = p.stages.add()
    s.stage_id, s.num_tasks, s.num_completed_tasks = 2, 8, 5
    s.input_bytes_read, s.done = 1 << 33, False
    s = p.stages.add()
    s.stage_id, s.num_tasks, s.num_completed_tasks, s.done = 1, 4, 4, True
    write("exec_resp_progress", r.SerializeToString(deterministic=True), {
        "response_id": "r-4",
        "response_type": "execution_progress",
        "execution_progress.num_inflight_tasks": 4,
        "execution_progress.n_stages": 2,
        "execution_progress.stages[0].stage_id": 2,
        "execution_progress.stages[0].num_tasks": 8,
        "execution_progress.stages[0].num_completed_tasks": 5,
        "execution_progress.stages[0].input_bytes_read": 1 << 33,
        "execution_progress.stages[0].done": False,
        "execution_progress.stages[1].done": True,
    })

    # An eager command's result: a LocalRelation holding Arrow rows. Then a query's echo: a SQL
    # relation inside a WithRelations (field 41, which Kindling does not declare) that must come
    # back unchanged when re-encoded as Plan.root.
    r = resp(response_id="r-5")
    r.sql_command_result.relation.local_relation.data = data
    write("exec_resp_sql_command_local", r.SerializeToString(deterministic=True), {
        "response_type": "sql_command_result",
        "sql_command_result.relation.rel_type": "local_relation",
        "sql_command_result.relation.local_relation.data_hex": data.hex(),
    })
    rel = pb.Relation()
    rel.common.plan_id = 1
    wr = rel.with_relations
    wr.root.common.plan_id = 2
    wr.root.sql.query = "SELECT * FROM v WHERE x > :lo"
    wr.root.sql.named_arguments["lo"].literal.integer = 3
    ref = wr.references.add()
    ref.common.plan_id = 3
    ref.sql.query = "SELECT 1 AS x"
    write("relation_with_relations", rel.SerializeToString(deterministic=True), {
        "common.plan_id": 1,
        "rel_type": "none",
        "n_unknown_fields": 1,
    })

    # Unknown fields of every wire type, before, between and after known ones, and inside a
    # nested message: all must be skipped (and kept) by the decoder.
    r = resp(response_id="r-6")
    r.arrow_batch.row_count = 0
    r.arrow_batch.data = b""
    inner = r.arrow_batch.SerializeToString(deterministic=True) + field(77, 0, 5)
    raw = (field(4242, 0, 1 << 50)
           + field(1, 2, SESSION.encode())
           + field(2, 2, inner)
           + field(5000, 2, b"future payload")
           + field(12, 2, OPERATION.encode())
           + field(6001, 5, b"\x01\x02\x03\x04")
           + field(13, 2, b"r-6")
           + field(23, 2, field(1, 2, b"pipeline event"))  # 4.1 pipeline result, unknown to us
           + field(6002, 1, b"\x00" * 8))
    check = pb.ExecutePlanResponse()
    check.ParseFromString(raw)  # the real client accepts it too
    assert check.response_id == "r-6" and check.arrow_batch.row_count == 0
    write("exec_resp_unknown_fields", raw, {
        "session_id": SESSION,
        "operation_id": OPERATION,
        "response_id": "r-6",
        "response_type": "arrow_batch",
        "arrow_batch.row_count": 0,
        "arrow_batch.n_unknown_fields": 1,
        "n_unknown_fields": 5,
    })

    # AnalyzePlan: the server's version string.
    ar = pb.AnalyzePlanResponse(session_id=SESSION, server_side_session_id=SERVER_SESSION)
    ar.spark_version.version = "4.0.1"
    write("analyze_resp_spark_version", ar.SerializeToString(deterministic=True), {
        "session_id": SESSION,
        "server_side_session_id": SERVER_SESSION,
        "result": "spark_version",
        "spark_version.version": "4.0.1",
    })

    # Config: what `SET k=v` becomes, and the reply of a get.
    cr = pb.ConfigRequest(session_id=SESSION, client_type="kindling/0.1")
    cr.user_context.user_id = "alice"
    kv = cr.operation.set.pairs.add()
    kv.key, kv.value = "spark.sql.ansi.enabled", "true"
    write("config_req_set", cr.SerializeToString(deterministic=True), {
        "session_id": SESSION,
        "client_type": "kindling/0.1",
        "operation.op_type": "set",
        "operation.set.n_pairs": 1,
        "operation.set.pairs[0].key": "spark.sql.ansi.enabled",
        "operation.set.pairs[0].value": "true",
    })
    cres = pb.ConfigResponse(session_id=SESSION, server_side_session_id=SERVER_SESSION,
                             warnings=["deprecated: spark.foo"])
    cres.pairs.add(key="spark.sql.shuffle.partitions", value="200")
    cres.pairs.add(key="spark.unset.thing")  # value absent: presence matters
    write("config_resp_get", cres.SerializeToString(deterministic=True), {
        "server_side_session_id": SERVER_SESSION,
        "n_pairs": 2,
        "pairs[0].key": "spark.sql.shuffle.partitions",
        "pairs[0].value": "200",
        "pairs[1].key": "spark.unset.thing",
        "pairs[1].has_value": False,
        "warnings[0]": "deprecated: spark.foo",
    })

    # FetchErrorDetails: a two-error chain with a SQL query context.
    fe = pb.FetchErrorDetailsResponse(root_error_idx=0, session_id=SESSION,
                                      server_side_session_id=SERVER_SESSION)
    e0 = fe.errors.add()
    e0.error_type_hierarchy.extend(["org.apache.spark.sql.AnalysisException",
                                    "java.lang.Exception"])
    e0.message = "[TABLE_OR_VIEW_NOT_FOUND] The table or view `nope` cannot be found."
    e0.cause_idx = 1
    st0 = e0.stack_trace.add()
    st0.declaring_class, st0.method_name, st0.file_name, st0.line_number = \
        "org.apache.spark.sql.Foo", "bar", "Foo.scala", 42
    e0.spark_throwable.error_class = "TABLE_OR_VIEW_NOT_FOUND"
    e0.spark_throwable.sql_state = "42P01"
    e0.spark_throwable.message_parameters["relationName"] = "`nope`"
    qc = e0.spark_throwable.query_contexts.add()
    qc.context_type = pb.FetchErrorDetailsResponse.QueryContext.ContextType.DATAFRAME
    qc.object_type, qc.object_name = "VIEW", "v"
    qc.start_index, qc.stop_index, qc.fragment = 14, 17, "nope"
    qc.call_site, qc.summary = "<cell 3>", "== SQL ==\nSELECT * FROM nope"
    e1 = fe.errors.add()
    e1.error_type_hierarchy.append("java.io.IOException")
    e1.message = "disk"
    write("fetch_error_details_resp", fe.SerializeToString(deterministic=True), {
        "root_error_idx": 0,
        "session_id": SESSION,
        "server_side_session_id": SERVER_SESSION,
        "n_errors": 2,
        "errors[0].error_type_hierarchy[0]": "org.apache.spark.sql.AnalysisException",
        "errors[0].message": e0.message,
        "errors[0].cause_idx": 1,
        "errors[0].stack_trace[0].declaring_class": "org.apache.spark.sql.Foo",
        "errors[0].stack_trace[0].line_number": 42,
        "errors[0].spark_throwable.error_class": "TABLE_OR_VIEW_NOT_FOUND",
        "errors[0].spark_throwable.sql_state": "42P01",
        "errors[0].spark_throwable.message_parameters.relationName": "`nope`",
        "errors[0].spark_throwable.query_contexts[0].context_type": 1,
        "errors[0].spark_throwable.query_contexts[0].object_type": "VIEW",
        "errors[0].spark_throwable.query_contexts[0].start_index": 14,
        "errors[0].spark_throwable.query_contexts[0].stop_index": 17,
        "errors[0].spark_throwable.query_contexts[0].fragment": "nope",
        "errors[0].spark_throwable.query_contexts[0].summary": "== SQL ==\nSELECT * FROM nope",
        "errors[1].message": "disk",
        "errors[1].has_cause_idx": False,
        "errors[1].has_spark_throwable": False,
    })

    # The grpc-status-details-bin trailer of a Spark error: Status{ErrorInfo, RetryInfo}.
    info = error_details_pb2.ErrorInfo(
        reason="org.apache.spark.sql.AnalysisException", domain="org.apache.spark")
    info.metadata["classes"] = '["org.apache.spark.sql.AnalysisException"]'
    info.metadata["sqlState"] = "42P01"
    info.metadata["errorClass"] = "TABLE_OR_VIEW_NOT_FOUND"
    info.metadata["messageParameters"] = '{"relationName":"`nope`"}'
    info.metadata["errorId"] = "d9f1b5a0-3c2e-4f6a-8b7d-9e0f1a2b3c4d"
    retry = error_details_pb2.RetryInfo()
    retry.retry_delay.seconds, retry.retry_delay.nanos = 2, 500_000_000
    status = status_pb2.Status(code=13, message="[TABLE_OR_VIEW_NOT_FOUND] nope")
    d0 = any_pb2.Any()
    d0.Pack(info, deterministic=True)
    d1 = any_pb2.Any()
    d1.Pack(retry, deterministic=True)
    status.details.extend([d0, d1])
    write("rpc_status_error_info", status.SerializeToString(deterministic=True), {
        "code": 13,
        "message": "[TABLE_OR_VIEW_NOT_FOUND] nope",
        "n_details": 2,
        "details[0].type_url": "type.googleapis.com/google.rpc.ErrorInfo",
        "details[0].error_info.reason": "org.apache.spark.sql.AnalysisException",
        "details[0].error_info.domain": "org.apache.spark",
        "details[0].error_info.n_metadata": 5,
        "details[0].error_info.metadata.classes": '["org.apache.spark.sql.AnalysisException"]',
        "details[0].error_info.metadata.sqlState": "42P01",
        "details[0].error_info.metadata.errorClass": "TABLE_OR_VIEW_NOT_FOUND",
        "details[0].error_info.metadata.messageParameters": '{"relationName":"`nope`"}',
        "details[0].error_info.metadata.errorId": "d9f1b5a0-3c2e-4f6a-8b7d-9e0f1a2b3c4d",
        "details[1].type_url": "type.googleapis.com/google.rpc.RetryInfo",
        "details[1].retry_info.retry_delay.seconds": 2,
        "details[1].retry_info.retry_delay.nanos": 500_000_000,
    })
    print(f"written with pyspark {pyspark.__version__} to {OUT_DIR}")


if __name__ == "__main__":
    main()
