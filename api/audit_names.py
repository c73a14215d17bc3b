"""Audit entries as people read them: the runs and checkpoints they mention by name rather than by bare id, and the
project fields an edit changed by their Chinese labels. Entries recorded before names were kept are resolved here."""

import re

from ltm.store import Database
from ltm.store import auth as auth_store
from ltm.vocabulary import FIELD_LABELS

_ID = re.compile(r"(?<![0-9A-Za-z_])(?:run|ckpt|tb|eval|cfg)_[0-9a-f]{12}(?![0-9A-Za-z_])")
_PROJECT_CHANGES = frozenset({"修改项目", "归档项目", "恢复项目"})
_CHANGED_FIELDS = re.compile(r"^(版本 \d+：)(.*)$")


def readable(db: Database, events: list[dict]) -> list[dict]:
    mentioned = {run_id for e in events if (run_id := e.get("run_id")) and not e.get("run_name")}
    for event in events:
        for text in (event.get("target"), event.get("details")):
            mentioned.update(_ID.findall(text or ""))
    names = auth_store.names_of(db, mentioned)
    return [_readable(event, names) for event in events]


def _readable(event: dict, names: dict[str, str]) -> dict:
    details = _named(event.get("details"), names)
    if event["action"] in _PROJECT_CHANGES and details:
        details = _labelled(details)
    return {
        **event,
        "run_name": event.get("run_name") or names.get(event.get("run_id") or ""),
        "target": _named(event.get("target"), names),
        "details": details,
    }


def _named(text: str | None, names: dict[str, str]) -> str | None:
    return _ID.sub(lambda found: names.get(found.group(0), found.group(0)), text) if text else text


def _labelled(details: str) -> str:
    """`版本 3：description、tags` → `版本 3：描述、标签`."""
    found = _CHANGED_FIELDS.match(details)
    if not found:
        return details
    fields = found.group(2).split("、")
    return found.group(1) + "、".join(FIELD_LABELS.get(field, field) for field in fields)
