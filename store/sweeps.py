"""Sweeps: their request, their Optuna journal (append-only, in order) and their trials."""

import json

from ltm.store import runs as run_store
from ltm.store.db import Database, from_db_time

_TIMES = ("created_at", "updated_at", "finished_at")
_TRIAL_TIMES = ("created_at", "updated_at")
UPDATABLE = frozenset({"status", "message", "updated_at", "finished_at", "flow_run_id", "controller_starts"})
TRIAL_UPDATABLE = frozenset({"state", "objective", "pruned_reason", "message", "updated_at"})


def _decode(row: dict) -> dict:
    row["spec"] = json.loads(row["spec"])
    row["rungs"] = json.loads(row["rungs"])
    for key in _TIMES:
        row[key] = from_db_time(row[key])
    return row


def _decode_trial(row: dict) -> dict:
    row["params"] = json.loads(row["params"])
    for key in _TRIAL_TIMES:
        row[key] = from_db_time(row[key])
    return row


def insert(db: Database, sweep: dict) -> None:
    values = {**sweep, "spec": json.dumps(sweep["spec"], ensure_ascii=False), "rungs": json.dumps(sweep["rungs"])}
    columns = list(values)
    with db.writing() as cur:
        cur.execute(
            f"INSERT INTO sweeps ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
            [values[c] for c in columns],
        )


def get(db: Database, sweep_id: str) -> dict | None:
    rows = db.fetch_dicts("SELECT * FROM sweeps WHERE id = ?", [sweep_id])
    return _decode(rows[0]) if rows else None


def list_for_project(db: Database, project_id: str) -> list[dict]:
    rows = db.fetch_dicts("SELECT * FROM sweeps WHERE project_id = ? ORDER BY created_at DESC, id", [project_id])
    return [_decode(row) for row in rows]


def list_by_status(db: Database, status: str) -> list[dict]:
    return [_decode(row) for row in db.fetch_dicts("SELECT * FROM sweeps WHERE status = ?", [status])]


def update(db: Database, sweep_id: str, values: dict) -> None:
    assert values and set(values) <= UPDATABLE, values
    assignments = ", ".join(f"{column} = ?" for column in values)
    with db.writing() as cur:
        cur.execute(f"UPDATE sweeps SET {assignments} WHERE id = ?", [*values.values(), sweep_id])


def delete(db: Database, sweep_id: str) -> None:
    """A sweep that never started: no journal, trials or runs yet."""
    with db.writing() as cur:
        cur.execute("DELETE FROM sweeps WHERE id = ?", [sweep_id])


def journal(db: Database, sweep_id: str, start: int) -> list[dict]:
    rows = db.fetch_all(
        "SELECT entry FROM sweep_journal WHERE sweep_id = ? AND seq >= ? ORDER BY seq", [sweep_id, start]
    )
    return [json.loads(row[0]) for row in rows]


def append_journal(db: Database, sweep_id: str, entries: list[dict]) -> int:
    """Append `entries` after the sweep's last entry, in one transaction; returns the sequence number after them."""
    with db.writing(transaction=True) as cur:
        first = cur.execute(
            "SELECT coalesce(max(seq) + 1, 0) FROM sweep_journal WHERE sweep_id = ?", [sweep_id]
        ).fetchone()[0]
        cur.executemany(
            "INSERT INTO sweep_journal VALUES (?, ?, ?)",
            [[sweep_id, first + i, json.dumps(entry, ensure_ascii=False)] for i, entry in enumerate(entries)],
        )
    return first + len(entries)


def trials(db: Database, sweep_id: str) -> list[dict]:
    rows = db.fetch_dicts("SELECT * FROM sweep_trials WHERE sweep_id = ? ORDER BY number", [sweep_id])
    return [_decode_trial(row) for row in rows]


def trial(db: Database, sweep_id: str, number: int) -> dict | None:
    rows = db.fetch_dicts("SELECT * FROM sweep_trials WHERE sweep_id = ? AND number = ?", [sweep_id, number])
    return _decode_trial(rows[0]) if rows else None


def insert_trial(db: Database, trial: dict) -> None:
    values = {**trial, "params": json.dumps(trial["params"], ensure_ascii=False)}
    columns = list(values)
    with db.writing() as cur:
        cur.execute(
            f"INSERT INTO sweep_trials ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
            [values[c] for c in columns],
        )


def update_trial(db: Database, sweep_id: str, number: int, values: dict) -> None:
    assert values and set(values) <= TRIAL_UPDATABLE, values
    assignments = ", ".join(f"{column} = ?" for column in values)
    with db.writing() as cur:
        cur.execute(
            f"UPDATE sweep_trials SET {assignments} WHERE sweep_id = ? AND number = ?",
            [*values.values(), sweep_id, number],
        )


def runs(db: Database, sweep_id: str) -> list[dict]:
    """The runs of the sweep's trials, by trial and then by rung."""
    rows = db.fetch_dicts("SELECT * FROM runs WHERE sweep_id = ? ORDER BY trial_number, rung, created_at", [sweep_id])
    return [run_store.decode(row) for row in rows]


def trial_run(db: Database, sweep_id: str, number: int, rung: int) -> dict | None:
    rows = db.fetch_dicts(
        "SELECT * FROM runs WHERE sweep_id = ? AND trial_number = ? AND rung = ?", [sweep_id, number, rung]
    )
    return run_store.decode(rows[0]) if rows else None
