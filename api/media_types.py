"""How a request says what its body is: one reading of Content-Type for every route."""

from starlette.requests import Request

JSON = "application/json"


def media_type(request: Request) -> str:
    """The body's media type, lower-case and without parameters; any `application/*+json` counts as JSON."""
    value = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return JSON if value.startswith("application/") and value.endswith("+json") else value


def received(request: Request) -> str:
    """What the caller sent, quoted back (shortened) in a 415."""
    content_type = request.headers.get("content-type", "")
    return f"（收到 {content_type[:100]}）" if content_type else "（请求未设置 Content-Type）"
