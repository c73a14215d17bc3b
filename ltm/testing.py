"""Real ltm processes for tests: free loopback ports, an API process, a whole `ltm up`, waiting on conditions.

Used by ltm's own tests and benchmarks, and public for plugin authors who test a trainer or launcher against a
real API (see docs/trainers.md).
"""

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ltm.up import answers

ROOT = Path(__file__).resolve().parent.parent


# Below Linux's ephemeral range (32768–60999), where outgoing connections take their local ports: a port handed out
# from that range can be taken by some client's connection before the server that was given it binds.
_PORTS = range(20_000, 32_768)
_handed_out: set[int] = set()


def free_port() -> int:
    """A port no one listens on and this process has not handed out before."""
    while True:
        port = random.choice(_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


def wait_until(condition, timeout: float = 30.0, interval: float = 0.05, message: str = "condition"):
    """Poll `condition` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class LtmSystem:
    """`ltm up` as a user runs it: Prefect server, deployment, worker, API (and console), on free ports."""

    def __init__(self, home: Path, **env: str) -> None:
        self.home = home
        self.ports = {"prefect": free_port(), "api": free_port(), "console": free_port()}
        self.api_url = f"http://127.0.0.1:{self.ports['api']}"
        self.prefect_api_url = f"http://127.0.0.1:{self.ports['prefect']}/api"
        self.console_url = f"http://127.0.0.1:{self.ports['console']}"
        self.env = {**os.environ, "LTM_RECONCILE_SECONDS": "1", **env}
        for key in ("LTM_API_URL", "LTM_HOME", "PREFECT_API_URL", "PREFECT_HOME"):
            self.env.pop(key, None)
        self.process: subprocess.Popen | None = None
        self.output: list[str] = []

    def start(self) -> "LtmSystem":
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ltm.cli",
                "up",
                "--home",
                str(self.home),
                "--prefect-port",
                str(self.ports["prefect"]),
                "--api-port",
                str(self.ports["api"]),
                "--console-port",
                str(self.ports["console"]),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for line in self.process.stdout:
            self.output.append(line)
            if "按 Ctrl-C 停止" in line:
                return self
        raise AssertionError("ltm up exited before it was ready:\n" + "".join(self.output) + self.logs())

    def logs(self) -> str:
        return "".join(
            f"\n--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in (self.home / "logs").glob("*.log")
        )

    def processes(self) -> list[int]:
        """Live processes started for this system (found by the LTM_HOME in their environment)."""
        return processes_with_env(f"LTM_HOME={self.home.resolve()}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        rest = self.process.stdout.read()
        self.output.append(rest)
        return self.process.wait(timeout=90)


def processes_with_env(assignment: str) -> list[int]:
    """Live processes other than this one whose environment holds `assignment` (`NAME=value`)."""
    marker = assignment.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


class ApiProcess:
    """The real API served by uvicorn in its own process, on a real DuckDB file."""

    def __init__(self, home: Path, **env: str) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "LTM_HOME": str(home), **env}
        self.env.pop("LTM_API_URL", None)
        self.process: subprocess.Popen | None = None

    def start(self) -> "ApiProcess":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ltm.cli", "api", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
        )
        wait_until(self._healthy, timeout=60, message="the API to answer /health")
        return self

    def _healthy(self) -> bool:
        assert self.process.poll() is None, "API process exited during start-up"
        return answers(self.url + "/health")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=30)
