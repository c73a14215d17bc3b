"""Bodies of the ingest endpoints: a JSON batch (for curl and any language) or an Arrow IPC stream (the SDK's).

Both become one validated Arrow table with naive-UTC timestamps, ready for `store.ingest`.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from ltm import arrow_batches
from ltm.api import arrow_bounds, media_types
from ltm.api.errors import Refusal, conflict, not_found, shown, unprocessable
from ltm.limits import (
    MAX_BATCH_ID_LENGTH,
    MAX_BATCH_ITEMS,
    MAX_DECODED_BATCH_BYTES,
    MAX_LOG_MESSAGE,
    MAX_NAME_LENGTH,
    MIB,
)
from ltm.models import LogBatch, LogLevel, MetricBatch
from ltm.store import ingest

STORED_TIMESTAMP = pa.timestamp("us")
# a day inside Python's datetime range, so every stored time reads back in any time zone
_EARLIEST_US = arrow_batches.micros(datetime(1, 1, 2))
_LATEST_US = arrow_batches.micros(datetime(9999, 12, 30))


@dataclass
class Payload:
    media_type: str
    body: bytes

    @property
    def is_arrow(self) -> bool:
        return self.media_type == arrow_batches.MEDIA_TYPE


async def ingest_payload(request: Request) -> Payload:
    media_type = media_types.media_type(request)
    if media_type not in (media_types.JSON, arrow_batches.MEDIA_TYPE):
        raise Refusal(
            415,
            f"请求体必须是 JSON，Content-Type 应为 application/json，"
            f"或 Arrow IPC 流（{arrow_batches.MEDIA_TYPE}）{media_types.received(request)}",
        )
    return Payload(media_type, await request.body())


def log_rows(payload: Payload) -> tuple[str, pa.Table]:
    if not payload.is_arrow:
        batch = _parse_json(LogBatch, payload.body)
        return batch.batch_id, _stored(arrow_batches.lines_table(batch.lines))
    batch_id, table = _read_arrow(payload.body, arrow_batches.LOG_SCHEMA)
    unknown = pc.invert(pc.is_in(table["level"], pa.array([level.value for level in LogLevel])))
    _reject_first(unknown, "level", f"必须是 {'、'.join(level.value for level in LogLevel)} 之一")
    _reject_first(
        pc.greater(pc.utf8_length(table["message"]), MAX_LOG_MESSAGE),
        "message",
        f"长度不能超过 {MAX_LOG_MESSAGE} 个字符",
    )
    return batch_id, _stored(table)


def metric_rows(payload: Payload) -> tuple[str, pa.Table]:
    if not payload.is_arrow:
        batch = _parse_json(MetricBatch, payload.body)
        return batch.batch_id, _stored(arrow_batches.points_table(batch.points))
    batch_id, table = _read_arrow(payload.body, arrow_batches.METRIC_SCHEMA)
    lengths = pc.utf8_length(table["name"])
    _reject_first(
        pc.or_(pc.less(lengths, 1), pc.greater(lengths, MAX_NAME_LENGTH)),
        "name",
        f"长度必须在 1 到 {MAX_NAME_LENGTH} 个字符之间",
    )
    _reject_first(pc.less(table["step"], 0), "step", "不能小于 0")
    _reject_first(pc.invert(pc.is_finite(table["value"])), "value", "必须是有限数值")
    return batch_id, _stored(table)


@contextmanager
def store_refusals(run_id: str, batch_id: str, what: str) -> Iterator[None]:
    """The store's refusals of a batch as answers: 404 for a run deleted meanwhile, 409 for a reused batch id."""
    try:
        yield
    except ingest.UnknownRun:
        raise not_found("运行", run_id) from None
    except ingest.BatchConflict:
        raise conflict(
            f"batch_id {shown(batch_id)} 已用于运行 {run_id} 的另一批{what}（内容不同），本批未写入；"
            "重试请发送完全相同的内容，新的数据请使用新的 batch_id"
        ) from None


def _parse_json(model: type[BaseModel], body: bytes):
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError([{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]) from None


def _read_arrow(body: bytes, schema: pa.Schema) -> tuple[str, pa.Table]:
    try:
        size = arrow_bounds.stream_size(body)
    except (pa.ArrowInvalid, OSError, ValueError):
        raise unprocessable("请求体不是有效的 Arrow IPC 流", "body") from None
    if size.decoded_bytes > MAX_DECODED_BATCH_BYTES:
        raise Refusal(
            413,
            f"Arrow 批次解压后有 {size.decoded_bytes // MIB} MiB，超过上限 "
            f"{MAX_DECODED_BATCH_BYTES // MIB} MiB；请分成更小的批次",
        )
    if size.rows > MAX_BATCH_ITEMS:
        raise unprocessable(f"一个批次最多 {MAX_BATCH_ITEMS} 行，收到 {size.rows} 行", "body")
    try:
        batch_id, table = arrow_batches.decode(body)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, ValueError):
        raise unprocessable("请求体不是有效的 Arrow IPC 流", "body") from None
    if not batch_id or len(batch_id) > MAX_BATCH_ID_LENGTH:
        raise unprocessable(
            f"batch_id：Arrow 流的 schema 元数据必须带有 1–{MAX_BATCH_ID_LENGTH} 个字符的 batch_id", "batch_id"
        )
    if table.num_rows > MAX_BATCH_ITEMS:
        raise unprocessable(f"一个批次最多 {MAX_BATCH_ITEMS} 行，收到 {table.num_rows} 行", "body")
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            raise unprocessable(f"{field.name}：缺少这一列（需要 {', '.join(schema.names)}）", field.name)
        column = table[field.name]
        if column.null_count:
            raise unprocessable(f"{field.name}：不能为空值", field.name)
        try:
            columns.append(_cast(column, field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise unprocessable(f"{field.name}：类型应为 {field.type}，收到 {column.type}", field.name) from None
    return batch_id, pa.Table.from_arrays(columns, schema=schema)


def _cast(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    """Naive timestamps are UTC already; any other type must convert without loss."""
    if pa.types.is_timestamp(target) and pa.types.is_timestamp(column.type) and column.type.tz is None:
        column = column.cast(pa.timestamp(column.type.unit, tz="UTC"))
    return column.cast(target)


def _reject_first(bad: pa.ChunkedArray, field: str, message: str) -> None:
    if pc.any(bad).as_py():
        row = pc.index(bad, True).as_py()
        raise unprocessable(f"{field}：第 {row} 行{message}", field)


def _stored(table: pa.Table) -> pa.Table:
    """Timestamps as the store keeps them: naive UTC, within the range Python can read back."""
    timestamps = table["timestamp"].cast(STORED_TIMESTAMP)
    micros = timestamps.cast(pa.int64())
    if pc.any(pc.or_(pc.less(micros, _EARLIEST_US), pc.greater(micros, _LATEST_US))).as_py():
        raise unprocessable("timestamp：时间必须在公元 1 年到 9999 年之间", "timestamp")
    index = table.schema.get_field_index("timestamp")
    return table.set_column(index, "timestamp", timestamps)


def ingest_body(model: type[BaseModel]) -> dict:
    """`openapi_extra` for an ingest operation: the JSON batch model, or the same columns as an Arrow stream."""
    arrow_schema = arrow_batches.LOG_SCHEMA if model is LogBatch else arrow_batches.METRIC_SCHEMA
    columns = "、".join(f"{field.name}（{field.type}）" for field in arrow_schema)
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}},
                arrow_batches.MEDIA_TYPE: {
                    "schema": {
                        "type": "string",
                        "format": "binary",
                        "description": f"Arrow IPC 流：列 {columns}，schema 元数据 batch_id（SDK 使用这种格式）",
                    }
                },
            },
        }
    }


def document_ingest_models(app: FastAPI) -> None:
    """Ingest bodies are read by hand, so their JSON models join the OpenAPI components here."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schemas = generate().setdefault("components", {}).setdefault("schemas", {})
            for model in (LogBatch, MetricBatch):
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, definition in schema.pop("$defs", {}).items():
                    schemas.setdefault(name, definition)
                schemas[model.__name__] = schema
        return app.openapi_schema

    app.openapi = openapi
