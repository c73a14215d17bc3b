"""Log and metric batches as Arrow tables: what the SDK sends and what the store inserts, column by column.

A batch travels as one Arrow IPC stream (`MEDIA_TYPE`) whose schema metadata carries the batch id, so
neither side builds a Python object per line or point.
"""

import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import pyarrow as pa

MEDIA_TYPE = "application/vnd.apache.arrow.stream"
REPORT_MEDIA_TYPE = "application/vnd.ltm.report"
BATCH_ID_KEY = b"batch_id"
TIMESTAMP = pa.timestamp("us", tz="UTC")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ONE_MICROSECOND = timedelta(microseconds=1)

LOG_SCHEMA = pa.schema([("timestamp", TIMESTAMP), ("level", pa.string()), ("message", pa.string())])
METRIC_SCHEMA = pa.schema(
    [("name", pa.string()), ("step", pa.int64()), ("value", pa.float64()), ("timestamp", TIMESTAMP)]
)


def log_table(timestamps_us: Sequence[int], levels: Sequence[str], messages: Sequence[str]) -> pa.Table:
    return pa.Table.from_arrays(
        [_timestamps(timestamps_us), pa.array(levels, pa.string()), pa.array(messages, pa.string())], schema=LOG_SCHEMA
    )


def metric_table(
    names: Sequence[str], steps: Sequence[int], values: Sequence[float], timestamps_us: Sequence[int]
) -> pa.Table:
    return pa.Table.from_arrays(
        [
            pa.array(names, pa.string()),
            pa.array(steps, pa.int64()),
            pa.array(values, pa.float64()),
            _timestamps(timestamps_us),
        ],
        schema=METRIC_SCHEMA,
    )


def lines_table(lines) -> pa.Table:
    """From `ltm.models.LogLine` objects."""
    return log_table(
        [micros(line.timestamp) for line in lines],
        [line.level.value for line in lines],
        [line.message for line in lines],
    )


def points_table(points) -> pa.Table:
    """From `ltm.models.MetricPoint` objects."""
    return metric_table(
        [p.name for p in points],
        [p.step for p in points],
        [p.value for p in points],
        [micros(p.timestamp) for p in points],
    )


def micros(moment: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken to be UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - EPOCH) // ONE_MICROSECOND


def _timestamps(timestamps_us: Sequence[int]) -> pa.Array:
    """From integers: converting datetime objects one by one cost more than everything else the SDK does."""
    return pa.array(timestamps_us, pa.int64()).cast(TIMESTAMP)


def encode(table: pa.Table, batch_id: str) -> bytes:
    table = table.replace_schema_metadata({BATCH_ID_KEY: batch_id.encode()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode(body: bytes) -> tuple[str | None, pa.Table]:
    """The batch id (None when missing) and the table; raises pa.ArrowInvalid for bytes that are not a stream."""
    table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
    metadata = table.schema.metadata or {}
    batch_id = metadata.get(BATCH_ID_KEY)
    return (batch_id.decode("utf-8", errors="replace") if batch_id is not None else None), table


def encode_report(progress: dict, logs: bytes | None = None, metrics: bytes | None = None) -> bytes:
    """A report body (`REPORT_MEDIA_TYPE`): one JSON line with the progress and the byte length of each part, then
    the log batch's and the metric batch's Arrow streams (each from `encode`)."""
    logs, metrics = logs or b"", metrics or b""
    head = json.dumps({"progress": progress, "logs": len(logs), "metrics": len(metrics)}, separators=(",", ":"))
    return head.encode() + b"\n" + logs + metrics


def decode_report(body: bytes) -> tuple[dict, bytes | None, bytes | None]:
    """The progress and the two streams (None where absent); raises ValueError for a body not in this form."""
    end = body.find(b"\n")
    if end < 0:
        raise ValueError("缺少首行")
    try:
        head = json.loads(body[:end])
    except ValueError:
        raise ValueError("首行不是有效的 JSON") from None
    if not isinstance(head, dict) or set(head) - {"progress", "logs", "metrics"}:
        raise ValueError("首行必须是只含 progress、logs、metrics 的 JSON 对象")
    sizes = [head.get("logs", 0), head.get("metrics", 0)]
    if not all(type(size) is int and size >= 0 for size in sizes) or end + 1 + sum(sizes) != len(body):
        raise ValueError("首行的 logs、metrics 字节数与请求体长度不符")
    start = end + 1
    logs, metrics = body[start : start + sizes[0]], body[start + sizes[0] :]
    return head.get("progress") or {}, logs or None, metrics or None
