"""`ltm host`: report this host's GPUs to the API every few seconds until stopped (the heartbeat).

It talks to the API over HTTP through the SDK, like the flows; the store is the API's alone."""

import sys
import threading

import httpx

from ltm import gpus
from ltm.client import ApiError, Client
from ltm.settings import Settings

DEFAULT_API_URL = "http://127.0.0.1:8000"


def report_forever(settings: Settings, stop: threading.Event) -> int:
    """Report until `stop` is set; 2 when LTM_GPUS cannot be read. A refused or failed report is printed once
    (not again until it changes) and retried at the next beat."""
    try:
        gpus.inventory(settings)
    except ValueError as exc:
        print(f"ltm host：{exc}", file=sys.stderr, flush=True)
        return 2
    host, url = settings.host_label, settings.api_url or DEFAULT_API_URL
    last_problem: str | None = "未上报"
    with Client(url, token=settings.token, timeout=10) as client:
        while not stop.is_set():
            try:
                registered = client.register_host(host, gpus.inventory(settings), work_queue=settings.host_work_queue)
                problem, news = None, f"已向 {url} 登记主机 {host}：{len(registered.devices)} 个 GPU"
            except (ApiError, httpx.HTTPError) as exc:
                problem = news = f"向 {url} 登记主机 {host} 失败：{exc}"
            if problem != last_problem:
                print(news, file=sys.stderr if problem else sys.stdout, flush=True)
                last_problem = problem
            stop.wait(settings.host_report_seconds)
    return 0
