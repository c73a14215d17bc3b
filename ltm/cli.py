"""`ltm` command line: serve the API, start the whole system."""

import argparse
import sys


def serve_api(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app

    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ltm", description="LLM 训练管理")
    commands = parser.add_subparsers(dest="command", required=True)
    api = commands.add_parser("api", help="启动 REST API（DuckDB 存储的唯一所有者）")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.set_defaults(handler=serve_api)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
