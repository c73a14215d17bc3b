"""Short-lived download links: a browser following a link from the console sends no bearer token, so the link
itself carries a grant — which artifact, for whom, until when — signed with a key that lives only in this API
process (links die with it, and with their expiry)."""

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from ltm.api.errors import Refusal

LIFETIME_SECONDS = 600
_KEY = secrets.token_bytes(32)


@dataclass(frozen=True)
class Grant:
    artifact_id: str
    user: str
    role: str
    expires: int


def expiry() -> int:
    """When links issued now expire (Unix seconds)."""
    return int(time.time() + LIFETIME_SECONDS)


def issue(artifact_id: str, user: str, role: str, expires: int) -> str:
    """The grant text of a download link for `artifact_id`, valid until `expires`."""
    payload = _encode(json.dumps([artifact_id, user, role, expires], ensure_ascii=False).encode())
    return f"{payload}.{_sign(payload)}"


def verify(grant: str, artifact_id: str) -> Grant:
    """The grant when it is genuine, unexpired and for `artifact_id`; else 403 saying why."""
    payload, _, signature = grant.partition(".")
    if not hmac.compare_digest(_sign(payload).encode(), signature.encode("utf-8", "surrogateescape")):
        raise Refusal(403, "下载链接无效（可能来自重启之前的 API）：请在控制台重新生成下载链接")
    try:
        granted = Grant(*json.loads(_decode(payload)))
    except (ValueError, TypeError):
        raise Refusal(403, "下载链接无效：请在控制台重新生成下载链接") from None
    if granted.artifact_id != artifact_id:
        raise Refusal(403, f"下载链接属于工件 {granted.artifact_id}，不能用来下载 {artifact_id}")
    if granted.expires < time.time():
        raise Refusal(403, f"下载链接已过期（有效期 {LIFETIME_SECONDS // 60} 分钟）：请在控制台重新生成下载链接")
    return granted


def _sign(payload: str) -> str:
    return _encode(hmac.new(_KEY, payload.encode(), hashlib.sha256).digest())


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
