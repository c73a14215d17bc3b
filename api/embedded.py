"""The in-process server behind `Client.local()`: one app per store folder, shared by every local client."""

import atexit
import threading
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from ltm.api.app import create_app
from ltm.settings import Settings

_servers: dict[Path, TestClient] = {}
_lock = threading.Lock()


def embedded_http(home: Path) -> httpx.Client:
    key = Path(home).resolve()
    with _lock:
        if key not in _servers:
            http = TestClient(
                create_app(Settings(home=key, api_url=None, launcher="none")), base_url="http://ltm.local"
            )
            http.__enter__()
            atexit.register(http.__exit__, None, None, None)
            _servers[key] = http
        return _servers[key]
