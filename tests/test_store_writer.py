"""Row updates and deletes go through the store's one writer, `Database.writing()`, so none can race by accident."""

import ast
import threading
from pathlib import Path

from ltm.store import Database, utc_now
from ltm.store import runs as run_store

STORE = Path(__file__).resolve().parent.parent / "store"
# Appends (logs, metrics, their bookkeeping), migrations, compaction and the writer itself are not row updates.
APPEND_ONLY = {"ingest.py", "migrations.py", "compaction.py", "db.py"}
# Restore builds a new file on its own connection while no API runs: no other writer exists.
OFFLINE = {"backup.py:import_database"}
WRITERS = ("writing", "removing_runs")  # removing_runs is the writer plus the runs' append locks
ROW_WRITES = ("UPDATE ", "DELETE FROM", "DO UPDATE")


def _writes_rows(function: ast.FunctionDef) -> bool:
    return any(
        isinstance(node, ast.Constant) and isinstance(node.value, str) and any(w in node.value for w in ROW_WRITES)
        for node in ast.walk(function)
    )


def _calls(function: ast.FunctionDef, name: str) -> bool:
    return any(
        isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == name
        for node in ast.walk(function)
    )


def _takes_writer(function: ast.FunctionDef) -> bool:
    return any(_calls(function, writer) for writer in WRITERS)


def test_every_row_update_in_the_store_runs_inside_the_writer():
    unguarded = []
    for path in sorted(STORE.glob("*.py")):
        if path.name in APPEND_ONLY:
            continue
        functions = [n for n in ast.parse(path.read_text(encoding="utf-8")).body if isinstance(n, ast.FunctionDef)]
        for function in filter(_writes_rows, functions):
            if _takes_writer(function) or f"{path.name}:{function.name}" in OFFLINE:
                continue
            callers = [f for f in functions if _calls(f, function.name)]
            if function.args.args[0].arg != "cur" or not callers or not all(_takes_writer(f) for f in callers):
                unguarded.append(f"{path.name}:{function.name}")
    assert not unguarded, unguarded


def _run(run_id: str) -> dict:
    row = {column: None for column in run_store.COLUMNS}
    row.update(
        id=run_id,
        project_id="proj_x",
        name="r",
        status="运行中",
        progress=0.0,
        model="m",
        dataset="d",
        hyperparameters={},
        resources={},
        metrics={},
        metric_steps={},
        created_at=utc_now(),
        updated_at=utc_now(),
        project_version=1,
        start_step=0,
        current_step=0,
        total_steps=100,
        trainer="simulated",
    )
    return row


def test_concurrent_updates_of_one_run_row_never_conflict(tmp_path):
    db = Database(tmp_path / "ltm.duckdb")
    run_store.insert(db, _run("run_same"))
    errors, barrier = [], threading.Barrier(16)

    def report(step: int) -> None:
        barrier.wait()
        try:
            for offset in range(20):
                run_store.update(db, "run_same", {"current_step": step * 100 + offset, "progress": offset / 20})
        except Exception as exc:  # the unguarded failure was TransactionException: Conflict on update
            errors.append(repr(exc))

    threads = [threading.Thread(target=report, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert run_store.get(db, "run_same")["progress"] == 19 / 20
    db.close()


def test_a_check_then_write_holds_the_writer_across_both(tmp_path):
    db = Database(tmp_path / "ltm.duckdb")
    run_store.insert(db, _run("run_once"))
    moved = []

    def move_once() -> None:
        with db.writing():
            if run_store.get(db, "run_once")["status"] == "运行中":
                run_store.update(db, "run_once", {"status": "已完成"})
                moved.append(True)

    threads = [threading.Thread(target=move_once) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert moved == [True]
    db.close()
