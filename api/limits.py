"""Limits on a request's shape, checked before routing: body size, and no encoded '/' inside a path segment."""

import re

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ltm.limits import BODY_LIMIT, INGEST_BODY_LIMIT, MIB

_INGEST_PATH = re.compile(r"^/projects/[^/]+/runs/[^/]+/(logs|metrics|report)/?$")


def body_limit(method: str, path: str) -> int:
    """Log and metric batches (and reports carrying them) may be large; every other body is a small JSON document."""
    return INGEST_BODY_LIMIT if method == "POST" and _INGEST_PATH.match(path) else BODY_LIMIT


def too_large_message(limit: int) -> str:
    return f"请求体过大（上限 {limit // MIB} MiB）"


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes its limit; FastAPI lets HTTPExceptions through."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_message(limit))


class BodySizeLimit:
    """413 for a declared Content-Length over the limit at once, for a chunked body as soon as it passes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["method"], scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await JSONResponse({"detail": too_large_message(limit)}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counting_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class NoEncodedSlash:
    """404 for a path with %2F: uvicorn decodes it before routing, so `run_x%2Flogs` would reach another route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and b"%2f" in scope.get("raw_path", b"").lower():
            path = scope["path"] if len(scope["path"]) <= 200 else scope["path"][:200] + "…"
            detail = f"路径 {path} 不存在（ID 中不能包含“/”）"
            await JSONResponse({"detail": detail}, status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)
