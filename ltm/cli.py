"""`ltm` command line: serve the API, start the whole system, maintain the store."""

import argparse
import sys

from ltm.cli_backup import add_commands as add_backup_commands
from ltm.cli_backup import call_api
from ltm.cli_tokens import add_commands as add_token_commands


def serve_api(args: argparse.Namespace) -> int:
    import uvicorn

    from ltm.api.app import create_app
    from ltm.settings import Settings

    settings = Settings()
    beyond_loopback = args.host not in ("127.0.0.1", "localhost", "::1")
    settings = settings.model_copy(update={"auth": beyond_loopback or bool(settings.auth), "listen_host": args.host})
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
    return 0


def start_all(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ltm.settings import Settings
    from ltm.up import Ports, up

    home = Path(args.home) if args.home else Settings().home
    return up(home, Ports(prefect=args.prefect_port, api=args.api_port, console=args.console_port))


def report_host(args: argparse.Namespace) -> int:
    import signal
    import threading

    from ltm.host_agent import report_forever
    from ltm.settings import Settings

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return report_forever(Settings(), stop)


def compact_store(args: argparse.Namespace) -> int:
    result, code = call_api("压缩存储", lambda client: client.compact())
    if result is None:
        return code
    megabytes = [round(size / 2**20, 1) for size in (result.bytes_before, result.bytes_after)]
    print(
        f"已压缩存储：{megabytes[0]} MiB → {megabytes[1]} MiB，用时 {result.seconds} 秒"
        f"（{len(result.tables)} 张表，共 {sum(result.tables.values())} 行，行数已核对）"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ltm", description="LLM 训练管理")
    commands = parser.add_subparsers(dest="command", required=True)
    api = commands.add_parser("api", help="启动 REST API（DuckDB 存储的唯一所有者）")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.set_defaults(handler=serve_api)
    everything = commands.add_parser("up", help="启动 Prefect、训练部署与 worker、API 和控制台")
    everything.add_argument("--home", help="数据目录（默认 $LTM_HOME 或 ./.ltm）")
    everything.add_argument("--prefect-port", type=int, default=4200)
    everything.add_argument("--api-port", type=int, default=8000)
    everything.add_argument("--console-port", type=int, default=8501)
    everything.set_defaults(handler=start_all)
    host = commands.add_parser(
        "host",
        help="定期向 API（LTM_API_URL）登记本机 GPU（LTM_GPUS 声明的模拟设备，或 NVML 读到的真实设备），直到被停止",
    )
    host.set_defaults(handler=report_host)
    add_token_commands(commands)
    add_backup_commands(commands)
    compact = commands.add_parser("compact", help="压缩存储，收回已删除运行占用的空间（通过运行中的 API，LTM_API_URL）")
    compact.set_defaults(handler=compact_store)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
