"""Bodies of the ingest endpoints: a JSON batch (for curl and any language) or an Arrow IPC stream (the SDK's).

Both become one Arrow table in the batch's schema with naive-UTC timestamps, ready for `store.ingest`; what each row
must satisfy is checked with its commit group (`row_checks`).
"""

from dataclasses import dataclass

import pyarrow as pa
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from ltm import arrow_batches
from ltm.api import arrow_bounds, media_types
from ltm.api.auth import Actor, record_intervention
from ltm.api.errors import Refusal, conflict, not_found, shown, unprocessable
from ltm.api.group_commit import RETRY_AFTER_SECONDS, Overloaded
from ltm.limits import (
    MAX_BATCH_ID_LENGTH,
    MAX_BATCH_ITEMS,
    MAX_DECODED_BATCH_BYTES,
    MIB,
)
from ltm.models import LogBatch, MetricBatch, ProgressReport, RunReport
from ltm.store import Database, ingest
from ltm.store import projects as project_store

STORED_TIMESTAMP = pa.timestamp("us")
LARGE_BODY = 256 * 1024  # bytes of body above which parsing leaves the event loop


@dataclass
class Payload:
    media_type: str
    body: bytes

    @property
    def is_arrow(self) -> bool:
        return self.media_type == arrow_batches.MEDIA_TYPE


_BINARY_BODIES = {arrow_batches.MEDIA_TYPE: "Arrow IPC 流", arrow_batches.REPORT_MEDIA_TYPE: "ltm 报告"}


async def ingest_payload(request: Request, binary: str = arrow_batches.MEDIA_TYPE) -> Payload:
    """The body, if it is JSON or the `binary` media type the endpoint reads (415 otherwise)."""
    media_type = media_types.media_type(request)
    if media_type not in (media_types.JSON, binary):
        raise Refusal(
            415,
            f"请求体必须是 JSON，Content-Type 应为 application/json，"
            f"或 {_BINARY_BODIES[binary]}（{binary}）{media_types.received(request)}",
        )
    return Payload(media_type, await request.body())


@dataclass
class ReportParts:
    logs: tuple[str, pa.Table] | None
    metrics: tuple[str, pa.Table] | None
    progress: dict


def report_parts(payload: Payload) -> ReportParts:
    """A report's batches, checked as the logs and metrics endpoints check them, and its progress fields."""
    if payload.media_type == media_types.JSON:
        report = _parse_json(RunReport, payload.body)
        return ReportParts(
            (report.logs.batch_id, _stored(arrow_batches.lines_table(report.logs.lines))) if report.logs else None,
            (report.metrics.batch_id, _stored(arrow_batches.points_table(report.metrics.points)))
            if report.metrics
            else None,
            report.progress.model_dump(exclude_none=True) if report.progress else {},
        )
    try:
        progress, logs, metrics = arrow_batches.decode_report(payload.body)
    except ValueError as exc:
        raise unprocessable(f"请求体不是有效的 ltm 报告：{exc}", "body") from None
    try:
        progress = ProgressReport.model_validate(progress).model_dump(exclude_none=True)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", "progress", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None
    return ReportParts(
        log_rows(Payload(arrow_batches.MEDIA_TYPE, logs)) if logs else None,
        metric_rows(Payload(arrow_batches.MEDIA_TYPE, metrics)) if metrics else None,
        progress,
    )


def log_rows(payload: Payload) -> tuple[str, pa.Table]:
    """The batch id and the lines; what each line must satisfy is checked with its commit group (`row_checks`)."""
    if not payload.is_arrow:
        batch = _parse_json(LogBatch, payload.body)
        return batch.batch_id, _stored(arrow_batches.lines_table(batch.lines))
    batch_id, table = _read_arrow(payload.body, arrow_batches.LOG_SCHEMA)
    return batch_id, _stored(table)


def metric_rows(payload: Payload) -> tuple[str, pa.Table]:
    """As `log_rows`, for metric points."""
    if not payload.is_arrow:
        batch = _parse_json(MetricBatch, payload.body)
        return batch.batch_id, _stored(arrow_batches.points_table(batch.points))
    batch_id, table = _read_arrow(payload.body, arrow_batches.METRIC_SCHEMA)
    return batch_id, _stored(table)


async def store_batch(request: Request, caller: Actor, batch: ingest.Batch, what: str) -> JSONResponse:
    """Queue the batch for the next group commit and answer once that commit holds it: 503 with Retry-After when
    the queue is full, 404 or 409 when the store refuses it."""
    stored = await _committed(request, batch, what)
    if not stored.duplicate:
        _ingested(request, caller, batch, what)
    # A Response skips FastAPI's validation of the answer against IngestResult: it is built right here.
    return JSONResponse(_result(batch, stored))


async def store_report(request: Request, caller: Actor, report: ingest.Report) -> JSONResponse:
    """As `store_batch`, for a report: all of it is stored in one commit, or none of it."""
    reported = await _committed(request, report, "上报")
    answer: dict = {"logs": None, "metrics": None, "status": reported.status}
    for batch, stored in zip(report.batches, reported.batches):
        what = _WHAT[batch.kind]
        if not stored.duplicate:
            _ingested(request, caller, batch, what)
        answer[batch.kind] = _result(batch, stored)
    if report.progress:
        changes = "，".join(f"{key}={value}" for key, value in report.progress.items())
        record_intervention(request.app.state.db, caller, _run_of(report), "上报运行状态", changes)
    return JSONResponse(answer)


_WHAT = {ingest.LOGS: "日志", ingest.METRICS: "指标"}


async def _committed(request: Request, item: ingest.Batch | ingest.Report, what: str):
    state = request.app.state
    try:
        queued = state.group_commit.submit(item)
    except Overloaded as exc:
        raise Refusal(
            503,
            f"API 暂时写入繁忙：{exc}。本批未写入，请在 {RETRY_AFTER_SECONDS} 秒后用同一 batch_id 重试",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None
    try:
        return await queued
    except (ingest.UnknownRun, ingest.RunEnded, ingest.BatchConflict) as exc:
        raise refusal(exc, state.db, item, what) from None


def _ingested(request: Request, caller: Actor, batch: ingest.Batch, what: str) -> None:
    request.app.state.notifications.ingested(batch)  # thresholds crossed, non-finite values: judged off this request
    details = f"批次 {batch.batch_id}：{batch.rows.num_rows} 条"
    record_intervention(request.app.state.db, caller, _run_of(batch), f"写入{what}", details)


def _run_of(item: ingest.Batch | ingest.Report) -> dict:
    return {"project_id": item.project_id, "id": item.run_id}


def _result(batch: ingest.Batch, stored: ingest.Stored) -> dict:
    return {"batch_id": batch.batch_id, "accepted": stored.accepted, "duplicate": stored.duplicate}


def refusal(exc: Exception, db: Database, item: ingest.Batch | ingest.Report, what: str) -> Refusal:
    """The store's refusal as an answer: 404 for a run (or project) that is not there, 409 for a run that has
    ended or a reused batch id."""
    if isinstance(exc, ingest.UnknownRun):
        if project_store.get_row(db, item.project_id) is None:
            return not_found("项目", item.project_id)
        return not_found("运行", item.run_id)
    if isinstance(exc, ingest.RunEnded):
        return conflict(f"运行 {item.run_id} 已结束（{exc.status}），不再接受{what}")
    if isinstance(exc, ingest.BatchConflict):
        (batch_id,) = exc.args
        if isinstance(item, ingest.Report):
            what = next(_WHAT[batch.kind] for batch in item.batches if batch.batch_id == batch_id)
        return conflict(
            f"batch_id {shown(batch_id)} 已用于运行 {item.run_id} 的另一批{what}（内容不同），本批未写入；"
            "重试请发送完全相同的内容，新的数据请使用新的 batch_id"
        )
    raise exc


async def rows_of(payload: Payload, read) -> tuple[str, pa.Table]:
    """`read(payload)` on the event loop for a small body, on a worker thread for a large one."""
    if len(payload.body) < LARGE_BODY:
        return read(payload)
    return await run_in_threadpool(read, payload)


def _parse_json(model: type[BaseModel], body: bytes):
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError([{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]) from None


def _read_arrow(body: bytes, schema: pa.Schema) -> tuple[str, pa.Table]:
    """The batch id and the table in `schema`."""
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
    if table.schema.equals(schema) and not any(column.null_count for column in table.columns):
        return batch_id, table  # what the SDK sends
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
    if column.type == target:
        return column
    if pa.types.is_timestamp(target) and pa.types.is_timestamp(column.type) and column.type.tz is None:
        column = column.cast(pa.timestamp(column.type.unit, tz="UTC"))
    return column.cast(target)


def _stored(table: pa.Table) -> pa.Table:
    """Timestamps as the store keeps them: naive UTC. Every table here has UTC microseconds (`arrow_batches`
    schemas), so a view of the same values does, and costs a third of a cast."""
    index = table.schema.get_field_index("timestamp")
    chunks = table.column(index).chunks
    naive = pa.chunked_array([chunk.view(STORED_TIMESTAMP) for chunk in chunks], STORED_TIMESTAMP)
    return table.set_column(index, "timestamp", naive)


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
            for model in (LogBatch, MetricBatch, RunReport):
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, definition in schema.pop("$defs", {}).items():
                    schemas.setdefault(name, definition)
                schemas[model.__name__] = schema
        return app.openapi_schema

    app.openapi = openapi
