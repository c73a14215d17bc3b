"""`ltm token create|list|revoke`: through the API (LTM_API_URL + an admin LTM_TOKEN), or on the embedded store
while no API runs — which is how the first admin token is made."""

import argparse
import sys

import httpx

from ltm.client import ApiError, Client
from ltm.vocabulary import USER_ROLES


def _client() -> Client:
    return Client.from_env()


def create(args: argparse.Namespace) -> int:
    created = _client().create_token(args.user, args.role)
    print(
        f"已为 {created.user}（{created.role}）创建令牌 {created.id}。令牌只显示这一次，请妥善保存：", file=sys.stderr
    )
    print(created.token)
    return 0


def list_(args: argparse.Namespace) -> int:
    for token in _client().list_tokens():
        state = f"已吊销 {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "有效"
        print(f"{token.id}\t{token.user}\t{token.role}\t{token.created_at:%Y-%m-%d %H:%M}\t{state}")
    return 0


def revoke(args: argparse.Namespace) -> int:
    _client().revoke_token(args.token_id)
    print(f"已吊销令牌 {args.token_id}")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return args.token_handler(args)
    except ApiError as exc:
        print(f"失败（{exc.status_code}）：{exc.detail}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(f"无法连接 API：{exc}", file=sys.stderr)
        return 2


def add_commands(commands) -> None:
    token = commands.add_parser("token", help="管理 API 访问令牌")
    actions = token.add_subparsers(dest="token_command", required=True)
    new = actions.add_parser("create", help="创建令牌（只显示一次）")
    new.add_argument("--user", required=True)
    new.add_argument("--role", required=True, choices=[role.value for role in USER_ROLES])
    new.set_defaults(token_handler=create)
    actions.add_parser("list", help="列出令牌").set_defaults(token_handler=list_)
    gone = actions.add_parser("revoke", help="吊销令牌")
    gone.add_argument("token_id")
    gone.set_defaults(token_handler=revoke)
    token.set_defaults(handler=run)
