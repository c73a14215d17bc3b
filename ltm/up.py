"""`ltm up` / `make up`: Prefect server, training deployment, worker, API and console on 127.0.0.1."""

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SOURCE_DIR = Path(__file__).resolve().parent.parent
# A lost worker is replaced (its runs end as the flows and the reconciler find them), and so is the host agent.
RESTARTABLE = {"worker", "host"}


def answers(url: str) -> bool:
    """Whether `url` answers 200 right now."""
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Ports:
    prefect: int = 4200
    api: int = 8000
    console: int = 8501


@dataclass
class Service:
    name: str
    argv: list[str]
    health_url: str | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, env: dict, log_dir: Path) -> None:
        log = open(log_dir / f"{self.name}.log", "ab")
        self.process = subprocess.Popen(
            self.argv, env=env, cwd=SOURCE_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_healthy(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} 启动失败（退出码 {self.process.returncode}），请查看日志")
            if answers(self.health_url):
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} 在 {timeout:.0f} 秒内没有就绪")

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        group = os.getpgid(self.process.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait()
        _kill_group_leftovers(group)


def _kill_group_leftovers(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass


def environment(home: Path, ports: Ports) -> dict[str, str]:
    prefect_api = f"http://127.0.0.1:{ports.prefect}/api"
    return {
        **os.environ,
        "LTM_HOME": str(home),
        "LTM_API_URL": f"http://127.0.0.1:{ports.api}",
        "LTM_LAUNCHER": "prefect",
        "LTM_CONSOLE_URL": f"http://127.0.0.1:{ports.console}",
        "LTM_PREFECT_UI_URL": f"http://127.0.0.1:{ports.prefect}",
        "LTM_SOURCE_DIR": str(SOURCE_DIR),
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_API_URL": prefect_api,
        "PREFECT_UI_API_URL": prefect_api,
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(ports.prefect),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "0",
        "PYTHONUNBUFFERED": "1",
    }


def services(ports: Ports) -> list[Service]:
    python = sys.executable
    found = [
        Service(
            "prefect-server",
            [python, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(ports.prefect)],
            f"http://127.0.0.1:{ports.prefect}/api/health",
        ),
        Service("deploy", [python, "-m", "ltm.flows.deploy"]),
        Service("worker", [python, "-m", "prefect", "worker", "start", "--pool", "ltm-process", "--type", "process"]),
        Service(
            "api", [python, "-m", "ltm.cli", "api", "--port", str(ports.api)], f"http://127.0.0.1:{ports.api}/health"
        ),
        Service("host", [python, "-m", "ltm.cli", "host"]),  # this host's GPUs (LTM_GPUS or NVML), reported
    ]
    console_app = Path(importlib.util.find_spec("ltm.console").origin).with_name("app.py")
    if console_app.exists():
        found.append(
            Service(
                "console",
                [
                    python,
                    "-m",
                    "streamlit",
                    "run",
                    str(console_app),
                    "--server.address",
                    "127.0.0.1",
                    "--server.port",
                    str(ports.console),
                    "--server.headless",
                    "true",
                    "--browser.gatherUsageStats",
                    "false",
                    "--client.toolbarMode",
                    "minimal",
                ],
                f"http://127.0.0.1:{ports.console}/_stcore/health",
            )
        )
    return found


def cancel_active_runs(api_url: str) -> None:
    """A stopping Prefect worker kills its flows outright; cancel them first so each keeps a checkpoint."""
    from ltm.client import ApiError, Client

    with Client(api_url, timeout=60) as client:
        try:
            active = [
                run
                for project in client.list_projects(status="进行中")
                for run in client.list_runs(project.id)
                if run.status.is_active
            ]
        except (ApiError, httpx.HTTPError):
            return
        if active:
            print(f"正在取消 {len(active)} 个进行中的运行并保存检查点 …", flush=True)
        for run in active:
            try:
                client.cancel_run(run.project_id, run.id)
            except (ApiError, httpx.HTTPError) as exc:
                print(f"  {run.id}：{exc}", flush=True)


def declared_gpus() -> int:
    """How many GPUs LTM_GPUS declares for the local host; ValueError (naming LTM_GPUS) before anything starts."""
    from ltm.gpus import parse_declared
    from ltm.settings import Settings

    settings = Settings()  # the environment the host agent inherits
    return len(parse_declared(settings.gpus, settings.host_label)) if settings.gpus and settings.gpus.strip() else 0


def up(home: Path, ports: Ports) -> int:
    try:
        declared_gpus()
    except ValueError as exc:
        print(f"启动失败：{exc}", file=sys.stderr, flush=True)
        return 1
    home = home.resolve()
    log_dir = home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = environment(home, ports)
    running: list[Service] = []
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        for service in services(ports):
            print(f"启动 {service.name} …", flush=True)
            service.start(env, log_dir)
            if service.name == "deploy":
                if service.process.wait() != 0:
                    raise RuntimeError("注册训练部署失败，请查看 deploy.log")
                continue
            running.append(service)
            if service.health_url:
                service.wait_healthy()
        print(f"\nltm 已启动（日志：{log_dir}）", flush=True)
        print(f"  Prefect UI : http://127.0.0.1:{ports.prefect}", flush=True)
        print(f"  API        : http://127.0.0.1:{ports.api}/docs", flush=True)
        if any(s.name == "console" for s in running):
            print(f"  控制台     : http://127.0.0.1:{ports.console}", flush=True)
        print("按 Ctrl-C 停止全部服务。", flush=True)
        while not stop.wait(1.0):
            dead = [s for s in running if s.process.poll() is not None]
            for worker in [s for s in dead if s.name in RESTARTABLE]:
                print(f"{worker.name} 意外退出（退出码 {worker.process.returncode}），正在重启", flush=True)
                worker.start(env, log_dir)
            if any(s.name not in RESTARTABLE for s in dead):
                print(f"{', '.join(s.name for s in dead)} 已退出，正在停止全部服务", flush=True)
                return 1
        return 0
    except RuntimeError as exc:
        print(f"启动失败：{exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if {"api", "worker"} <= {s.name for s in running if s.process.poll() is None}:
            cancel_active_runs(env["LTM_API_URL"])
        order = ["console", "worker", "host", "api", "prefect-server"]
        for service in sorted(running, key=lambda s: order.index(s.name)):
            service.stop()
        print("已停止。", flush=True)
