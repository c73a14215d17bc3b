"""Append-only logs and metrics, inserted as Arrow tables, many batches to one transaction (group commit).

A batch id is stored once per run and kind, with a digest of the batch's content: sending the same batch again is
recognised, reusing its id for other content is refused. `append` stores a group of batches, possibly of many runs,
in one transaction: every check comes before the first insert, so a refused batch leaves the others of its group
unaffected, and one INSERT per table carries the rows of the whole group.

Statements read Arrow tables through DuckDB's replacement scan (a local variable named in the SQL): registering
and unregistering a table costs several times what the insert itself does.
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ltm.store.db import Database, utc_now

_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)

INDEX_SCAN_KEYS = 2048  # DuckDB's index_scan_max_count: a lookup of more keys scans the table
BLOCK_STEPS = 128  # migration 6 fills metric_blocks with the same block size
LOGS, METRICS = "logs", "metrics"
_BLOCKS_OF_INCOMING = f"""
INSERT INTO metric_blocks
SELECT run_id, name, step // {BLOCK_STEPS}, min(step), max(step), min(value), max(value), arg_max(value, step),
       arg_max(timestamp, step), count(*)
FROM incoming GROUP BY run_id, name, step // {BLOCK_STEPS}
"""


class UnknownRun(Exception):
    """The run is gone (deleted while the batch was on its way) or is not in the named project. Nothing was stored."""


class RunEnded(Exception):
    """The run has finished: its record is final. Nothing was stored."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class BatchConflict(Exception):
    """The batch id was stored before with other content. Nothing was stored."""


@dataclass
class Batch:
    """One batch on its way into the store. `project_id`, when set, must be the run's project."""

    kind: str
    run_id: str
    batch_id: str
    rows: pa.Table
    project_id: str | None = None
    content: str = field(init=False)

    def __post_init__(self) -> None:
        self.content = digest(self.rows)


@dataclass
class Stored:
    """What became of one batch: `accepted` rows (0 for a batch stored before: `duplicate`)."""

    accepted: int
    duplicate: bool


PROGRESS_FIELDS = ("progress", "current_step", "total_steps", "gpu_utilization")


@dataclass
class Report:
    """One reporter flush of one run: up to one log and one metric batch, and new values of `PROGRESS_FIELDS`.
    It is stored whole or not at all."""

    run_id: str
    project_id: str | None
    batches: list[Batch]
    progress: dict


@dataclass
class Reported:
    """What became of a report: its batches in order, and the run's status once it was stored."""

    batches: list[Stored]
    status: str


def digest(table: pa.Table) -> str:
    """Of a batch's content: the same whichever body (JSON or Arrow, however chunked) carried it."""
    table = table.combine_chunks().replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.blake2b(sink.getvalue(), digest_size=16).hexdigest()


def append(
    db: Database, items: list[Batch | Report], terminal: frozenset[str] = frozenset()
) -> list[Stored | Reported | Exception]:
    """Store `items` in one transaction; each batch gets a `Stored`, each report a `Reported`, or the exception that
    refused it (UnknownRun, RunEnded for a run whose status is in `terminal`, BatchConflict). A report refuses all
    its parts when one is refused; one with nothing new for an ended run answers its status. On an unexpected error
    nothing is stored."""
    with db.writing(transaction=True) as cur:
        runs = _runs(cur, {item.run_id for item in items})
        claimed = _claimed(cur, [batch for item in items for batch in batches_of(item)])
        outcomes: list[Stored | Reported | Exception] = []
        accepted: list[Batch] = []
        progressed: list[Report] = []
        for item in items:
            parts = batches_of(item)
            results = [_check(batch, runs, claimed, terminal) for batch in parts]
            refused = next((result for result in results if isinstance(result, Exception)), None)
            if isinstance(item, Report) and refused is None:
                refused = _check_report(item, runs, terminal)
            if refused is not None:
                outcomes.append(refused)
                continue
            for batch, result in zip(parts, results):
                if not result.duplicate:
                    claimed[claim_of(batch)] = batch.content
                    accepted.append(batch)
            if isinstance(item, Report):
                if item.progress:
                    progressed.append(item)
                outcomes.append(Reported(results, runs[item.run_id]["status"]))
            else:
                outcomes.append(results[0])
        if accepted:
            _claim(cur, accepted)
            _insert_logs(db, cur, [b for b in accepted if b.kind == LOGS])
        summaries = _insert_metrics(cur, [b for b in accepted if b.kind == METRICS], runs)
        _update_runs(cur, runs, summaries, progressed)
    return outcomes


def batches_of(item: Batch | Report) -> list[Batch]:
    """A report's batches, or the batch itself."""
    return item.batches if isinstance(item, Report) else [item]


def _check_report(report: Report, runs: dict, terminal: frozenset[str]) -> Exception | None:
    run = runs.get(report.run_id)
    if run is None or (report.project_id is not None and run["project_id"] != report.project_id):
        return UnknownRun(report.run_id)
    if report.progress and run["status"] in terminal:
        return RunEnded(run["status"])
    return None


def append_logs(db: Database, run_id: str, batch_id: str, lines: pa.Table) -> bool:
    """Insert lines (timestamp, level, message) under `batch_id`; False when that batch was already stored."""
    return not _one(db, Batch(LOGS, run_id, batch_id, lines)).duplicate


def append_metrics(db: Database, run_id: str, batch_id: str, points: pa.Table) -> bool:
    """Insert points (name, step, value, timestamp) under `batch_id`; False when that batch was already stored."""
    return not _one(db, Batch(METRICS, run_id, batch_id, points)).duplicate


def _one(db: Database, batch: Batch) -> Stored:
    (outcome,) = append(db, [batch])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


_RUN_COLUMNS = ("id", "project_id", "status", "metrics", "metric_steps", *PROGRESS_FIELDS, "progressed_at")


def _runs(cur, run_ids: set[str]) -> dict[str, dict]:
    """What a group reads and may change of each run that exists."""
    rows = _by_key(cur, f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE", "id", run_ids)
    return {row[0]: dict(zip(_RUN_COLUMNS, row)) for row in rows}


def _by_key(cur, select: str, column: str, keys) -> list[tuple]:
    """Rows whose `column` is one of `keys`, found through the column's index: DuckDB uses it for `list_contains`
    over a list of up to INDEX_SCAN_KEYS, while `IN (SELECT unnest(?))` is planned as a join that scans the whole
    table (a group's duplicate check then grew with every batch ever stored: 60 ms at 2M, 2 ms by the index)."""
    keys = sorted(keys)
    rows = []
    for start in range(0, len(keys), INDEX_SCAN_KEYS):
        rows += cur.execute(f"{select} list_contains(?, {column})", [keys[start : start + INDEX_SCAN_KEYS]]).fetchall()
    return rows


def claim_of(batch: "Batch") -> str:
    return f"{batch.kind}:{batch.run_id}:{batch.batch_id}"  # run ids and kinds hold no ':'


def _claimed(cur, batches: list[Batch]) -> dict[str, str | None]:
    rows = _by_key(cur, "SELECT claim, digest FROM ingest_batches WHERE", "claim", {claim_of(b) for b in batches})
    return dict(rows)


def _check(batch: Batch, runs: dict, claimed: dict, terminal: frozenset[str]) -> Stored | Exception:
    run = runs.get(batch.run_id)
    if run is None or (batch.project_id is not None and run["project_id"] != batch.project_id):
        return UnknownRun(batch.run_id)
    claim = claim_of(batch)
    if claim in claimed:
        stored = claimed[claim]
        if stored not in (None, batch.content):  # a batch stored before digests were kept matches any content
            return BatchConflict(batch.batch_id)
        return Stored(0, True)
    if run["status"] in terminal:
        return RunEnded(run["status"])
    return Stored(batch.rows.num_rows, False)


def _claim(cur, batches: list[Batch]) -> None:
    now = utc_now()
    claims = pa.table(  # noqa: F841 (read by name in the statement)
        {
            "run_id": [b.run_id for b in batches],
            "kind": [b.kind for b in batches],
            "batch_id": [b.batch_id for b in batches],
            "row_count": pa.array([b.rows.num_rows for b in batches], pa.int32()),
            "received_at": pa.array([now] * len(batches), pa.timestamp("us")),
            "digest": [b.content for b in batches],
            "claim": [claim_of(b) for b in batches],
        }
    )
    cur.execute(
        "INSERT INTO ingest_batches (run_id, kind, batch_id, row_count, received_at, digest, claim) "
        "SELECT run_id, kind, batch_id, row_count, received_at, digest, claim FROM claims"
    )


def _update_by_id(cur, table: str, key: str, columns: list[str], rows: pa.Table) -> None:
    """One UPDATE of `columns` from `rows` (keyed by `key`): by the index for one row, by a join for many (a join
    of a few hundred rows costs about what two point updates do)."""
    if rows.num_rows == 1:
        row = rows.to_pylist()[0]
        assignments = ", ".join(f"{column} = ?" for column in columns)
        cur.execute(f"UPDATE {table} SET {assignments} WHERE {key} = ?", [*(row[c] for c in columns), row[key]])
        return
    changed = rows  # noqa: F841 (read by name in the statement)
    assignments = ", ".join(f"{column} = changed.{column}" for column in columns)
    cur.execute(f"UPDATE {table} SET {assignments} FROM changed WHERE {table}.{key} = changed.{key}")


def _insert_logs(db: Database, cur, batches: list[Batch]) -> None:
    """Lines get their run's next line numbers in time order; `log_runs` remembers whether every batch so far
    started no earlier than the previous one ended, which is when line numbers can serve pages directly. The whole
    group is sorted, numbered and inserted at once: per-batch Arrow calls cost more than the rows."""
    batches = [b for b in batches if b.rows.num_rows]
    if not batches:
        return
    run_ids = {b.run_id for b in batches}
    state = {
        row[0]: [row[1], _micros(row[2]), row[3]]
        for row in _by_key(cur, "SELECT run_id, lines, last_ts, in_order FROM log_runs WHERE", "run_id", run_ids)
    }
    known = set(state)
    counts = np.array([b.rows.num_rows for b in batches], dtype=np.int64)
    ends = np.cumsum(counts)
    starts = ends - counts
    which = np.repeat(np.arange(len(batches)), counts)
    rows = pa.concat_tables([b.rows.select(["timestamp", "level", "message"]) for b in batches])
    order = pc.sort_indices(
        pa.table({"batch": which, "timestamp": rows["timestamp"]}),
        sort_keys=[("batch", "ascending"), ("timestamp", "ascending")],
    )
    lines = rows.take(order).combine_chunks()  # each batch's lines in time order, batches in group order
    times = lines["timestamp"].combine_chunks().view(pa.int64()).to_numpy()
    first_line = np.empty(len(batches), dtype=np.int64)
    for index, (batch, earliest, latest) in enumerate(zip(batches, times[starts], times[ends - 1])):
        lines_so_far, last_ts, in_order = state.setdefault(batch.run_id, [0, None, True])
        first_line[index] = lines_so_far + 1
        state[batch.run_id] = [
            lines_so_far + int(counts[index]),
            int(latest) if last_ts is None else max(int(latest), last_ts),
            in_order and (last_ts is None or int(earliest) >= last_ts),
        ]
    total = int(ends[-1])
    first_seq = db.reserve_log_seq(total)
    positions = np.arange(total, dtype=np.int64)
    incoming = pa.table(  # noqa: F841 (read by name in the statement)
        {
            "run_id": pa.array([b.run_id for b in batches], pa.string()).take(pa.array(which)),
            "seq": positions + first_seq,
            "timestamp": lines["timestamp"],
            "level": lines["level"],
            "message": lines["message"],
            "line": positions - np.repeat(starts, counts) + np.repeat(first_line, counts),
        }
    )
    cur.execute("INSERT INTO logs SELECT run_id, seq, timestamp, level, message, line FROM incoming")
    ordered = sorted(run_ids)
    changed = pa.table(
        {
            "run_id": ordered,
            "lines": [state[r][0] for r in ordered],
            "last_ts": pa.array([state[r][1] for r in ordered], pa.timestamp("us")),
            "in_order": [state[r][2] for r in ordered],
        }
    )
    known_rows = changed.filter(pa.array([r in known for r in ordered]))
    if known_rows.num_rows:
        _update_by_id(cur, "log_runs", "run_id", ["lines", "last_ts", "in_order"], known_rows)
    new_rows = changed.filter(pa.array([r not in known for r in ordered]))
    if new_rows.num_rows:
        cur.execute("INSERT INTO log_runs (run_id, lines, last_ts, in_order) SELECT * FROM new_rows")


def _micros(moment) -> int | None:
    """A naive UTC TIMESTAMP as read from DuckDB, in microseconds since the epoch."""
    return None if moment is None else (moment - _EPOCH) // _MICROSECOND


def _insert_metrics(cur, batches: list[Batch], runs: dict) -> dict[str, tuple[dict, dict]]:
    """The points and their blocks; returns, for each run given points, its latest value and step of each series
    (the value at the largest step, whatever order batches arrive in)."""
    batches = [b for b in batches if b.rows.num_rows]
    if not batches:
        return {}
    counts = np.array([b.rows.num_rows for b in batches], dtype=np.int64)
    which = pa.array(np.repeat(np.arange(len(batches)), counts))
    incoming = pa.concat_tables([b.rows.select(["name", "step", "value", "timestamp"]) for b in batches])
    run_ids = pa.array([b.run_id for b in batches], pa.string()).take(which)
    incoming = incoming.combine_chunks().add_column(0, "run_id", run_ids)  # DuckDB scans one chunk faster than many
    cur.execute("INSERT INTO metrics SELECT run_id, name, step, value, timestamp FROM incoming")
    cur.execute(_BLOCKS_OF_INCOMING)
    last_points = incoming.sort_by([("step", "ascending")]).group_by(["run_id", "name"], use_threads=False)
    last = last_points.aggregate([("step", "last"), ("value", "last")])
    latest = zip(*(last[column].to_pylist() for column in ("run_id", "name", "step_last", "value_last")))
    merged: dict[str, tuple[dict, dict]] = {}
    for run_id, name, step, value in latest:
        if run_id not in merged:
            merged[run_id] = (json.loads(runs[run_id]["metrics"]), json.loads(runs[run_id]["metric_steps"]))
        metrics, steps = merged[run_id]
        if step >= steps.get(name, -1):
            metrics[name], steps[name] = value, step
    return merged


_RUN_UPDATE = pa.schema(
    [
        ("id", pa.string()),
        ("metrics", pa.string()),
        ("metric_steps", pa.string()),
        ("progress", pa.float64()),
        ("current_step", pa.int64()),
        ("total_steps", pa.int64()),
        ("gpu_utilization", pa.float64()),
        ("progressed_at", pa.timestamp("us")),
        ("updated_at", pa.timestamp("us")),
    ]
)


def _update_runs(cur, runs: dict, summaries: dict[str, tuple[dict, dict]], progressed: list[Report]) -> None:
    """One UPDATE of the runs that got points or progress: their latest metrics, and reported progress in order.
    A step beyond the run's current one moves `progressed_at`, hang detection's clock."""
    if not summaries and not progressed:
        return
    now = utc_now()
    changed: dict[str, dict] = {}
    for run_id, (metrics, steps) in summaries.items():
        run = changed[run_id] = dict(runs[run_id])
        run["metrics"] = json.dumps(metrics, ensure_ascii=False)
        run["metric_steps"] = json.dumps(steps, ensure_ascii=False)
    for report in progressed:
        run = changed.setdefault(report.run_id, dict(runs[report.run_id]))
        step = report.progress.get("current_step")
        if step is not None and step > run["current_step"]:
            run["progressed_at"] = now
        run.update(report.progress)
    rows = {name: [run[name] for run in changed.values()] for name in _RUN_UPDATE.names if name != "updated_at"}
    rows["updated_at"] = [now] * len(changed)
    table = pa.Table.from_pydict(rows, schema=_RUN_UPDATE)
    _update_by_id(cur, "runs", "id", _RUN_UPDATE.names[1:], table)
