import secrets

PREFIXES = {
    "project": "proj",
    "run": "run",
    "checkpoint": "ckpt",
    "event": "tb",
    "evaluation": "eval",
    "config": "cfg",
    "token": "tok",
    "sweep": "sweep",
    "release": "rel",
}


def new_id(kind: str) -> str:
    return f"{PREFIXES[kind]}_{secrets.token_hex(6)}"
