"""POST …/logs, …/metrics and …/report served ahead of FastAPI's routing.

At fleet rates FastAPI's exception, routing and dependency layers cost more than storing a small batch (issue 16).
`IngestRoutes` is the innermost middleware: the guards before it (Host and Origin, encoded slashes, body size) still
apply, and what it raises is answered by the app's own exception handlers. It makes the same checks through the
same functions as the FastAPI declarations in routers/logs.py, routers/metrics.py and routers/reports.py, which
remain for the OpenAPI document and call `ingest` too.
"""

import re
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ltm import arrow_batches
from ltm.api.auth import actor
from ltm.api.ingest_payload import (
    ingest_payload,
    log_rows,
    metric_rows,
    report_parts,
    rows_of,
    store_batch,
    store_report,
)
from ltm.store import ingest as store

_PATH = re.compile(r"/projects/(?P<project_id>[^/]+)/runs/(?P<run_id>[^/]+)/(?P<kind>logs|metrics|report)")
_READERS = {store.LOGS: (log_rows, "日志"), store.METRICS: (metric_rows, "指标")}


@dataclass(frozen=True)
class _Route:
    path: str  # what `auth.actor` reads of a route


REPORT = "report"
_ROUTES = {kind: _Route(f"/projects/{{project_id}}/runs/{{run_id}}/{kind}") for kind in (*_READERS, REPORT)}


async def ingest(request: Request, kind: str) -> Response:
    if kind == REPORT:
        return await report(request)
    caller = await actor(request)
    payload = await ingest_payload(request)
    read, what = _READERS[kind]
    batch_id, rows = await rows_of(payload, read)
    params = request.path_params
    batch = store.Batch(kind, params["run_id"], batch_id, rows, params["project_id"])
    return await store_batch(request, caller, batch, what)


async def report(request: Request) -> Response:
    caller = await actor(request)
    parts = await rows_of(await ingest_payload(request, arrow_batches.REPORT_MEDIA_TYPE), report_parts)
    project_id, run_id = request.path_params["project_id"], request.path_params["run_id"]
    batches = []
    for kind, part in ((store.LOGS, parts.logs), (store.METRICS, parts.metrics)):
        if part is not None:
            batch_id, rows = part
            batches.append(store.Batch(kind, run_id, batch_id, rows, project_id))
    return await store_report(request, caller, store.Report(run_id, project_id, batches, parts.progress))


class IngestRoutes:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = _PATH.fullmatch(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        params = found.groupdict()
        kind = params.pop("kind")
        scope["route"], scope["path_params"] = _ROUTES[kind], params
        request = Request(scope, receive)
        try:
            response = await ingest(request, kind)
        except Exception as exc:
            response = await _handled(request, exc)
        await response(scope, receive, send)


async def _handled(request: Request, exc: Exception) -> Response:
    """The answer the app's exception handlers give; an exception none of them takes goes on up (a 500)."""
    handlers = request.app.exception_handlers
    for kind in type(exc).__mro__:
        if kind in handlers and kind is not Exception:
            return await handlers[kind](request, exc)
    raise exc
