"""What a web page can make a browser send is refused before routing.

DNS rebinding points a name the attacker owns at 127.0.0.1, so the page reads the API as its own site: every request
must name, in `Host`, an address the API serves. A page on another site can also submit a form or a no-cors fetch
(cancel, resume, compact, …) without reading the answer: a state-changing request that carries an `Origin` (or,
without one, a `Referer`) must come from the API itself or from the console. Requests without either header come
from programs (SDK, flows, curl), which no web page controls.
"""

import functools
import ipaddress
from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ltm.api.auth import arrived_over_network
from ltm.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}
WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::", ""})


@functools.lru_cache(maxsize=256)  # the helpers below are asked on every request, with few distinct values
def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=256)
def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=256)
def _host(header: str) -> tuple[str, int | None] | None:
    """(name, port) named by a Host header; None when it is not a plain host[:port]."""
    if not header or any(char in header for char in "@/?#\\"):
        return None
    try:
        parts = urlsplit("//" + header)
        name, port = parts.hostname, parts.port
    except ValueError:
        return None
    return (name.rstrip("."), port) if name else None


def _origin(value: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, or of the page URL a Referer names."""
    try:
        parts = urlsplit(value)
        name, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not name:
        return None
    return parts.scheme, name.rstrip("."), port or DEFAULT_PORTS[parts.scheme]


_READ = {b"host": "host", b"origin": "origin", b"referer": "referer"}


def _read_headers(scope: Scope) -> dict[str, str]:
    """The first Host, Origin and Referer, in one pass: Starlette's `Headers.get` decodes every header per lookup."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = _READ.get(name)
        if key is not None and key not in found:
            found[key] = value.decode("latin-1")
    return found


class OriginGuard:
    """421 for a `Host` the API does not serve; 403 for a state-changing request from another site's page.

    421 Misdirected Request says the request reached a server that does not answer for that authority (RFC 9110
    15.5.20): the request is well formed (not 400) and no credential would change the answer (not 403)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        configured = settings.allowed_host_names
        self.any_host = configured is not None and "*" in configured
        self.network_may_name_any_host = configured is None
        listen = (settings.listen_host or "").strip().lower().strip("[]")
        self.hosts = (configured or frozenset()) | ({listen} - WILDCARD_ADDRESSES)
        self.console = _origin(settings.console_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope, _read_headers(scope))
            if refusal is not None:
                status, detail = refusal
                await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        raw_host = headers.get("host", "")
        host = _host(raw_host)
        if not self._serves(host, scope):
            shown = raw_host[:100] or "（未设置）"
            return 421, (
                f"请求头 Host 的值 {shown} 不是本 API 服务的地址；"
                "若要通过这个名称访问，请把它加入 LTM_ALLOWED_HOSTS（逗号分隔）"
            )
        if scope["method"] in SAFE_METHODS:
            return None
        sender, header = headers.get("origin"), "Origin"
        if sender is None:
            sender, header = headers.get("referer"), "Referer"
        if sender is None or self._trusted(sender, host):
            return None
        return 403, (
            f"拒绝跨站请求：请求头 {header} 的值 {sender[:100]} 不是本 API 或控制台"
            f"（{self._console_text()}）的地址，修改类请求只接受来自这两处页面的浏览器请求"
        )

    def _serves(self, host: tuple[str, int | None] | None, scope: Scope) -> bool:
        server = scope.get("server")
        if server and not _is_ip(server[0]):
            return True  # an in-process transport (Client.local(), TestClient): no socket, so no browser
        if host is None:
            return False
        name = host[0]
        if self.any_host or _is_loopback(name) or name in self.hosts:
            return True
        # Beyond loopback every request needs a token, which no other site's page can attach.
        return self.network_may_name_any_host and arrived_over_network(scope)

    def _trusted(self, sender: str, host: tuple[str, int | None] | None) -> bool:
        """The console, or a page of this API itself: the host and port the request was sent to (a TLS proxy in
        front may change the scheme, so the scheme is not compared)."""
        origin = _origin(sender)
        if origin is None:
            return False
        scheme, name, port = origin
        ours = host is not None and name == host[0] and port == (DEFAULT_PORTS[scheme] if host[1] is None else host[1])
        return ours or origin == self.console

    def _console_text(self) -> str:
        if self.console is None:
            return "未配置"
        scheme, host, port = self.console
        return f"{scheme}://{host}:{port}"
