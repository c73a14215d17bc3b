"""What every stored log line and metric point must satisfy, checked for a whole commit group at once.

Per call, pyarrow costs about as much for 2,000 rows as for 20, and at fleet rates these checks made per batch took
a fifth of the event loop (issue 16). The group commit checks all the rows it is about to store together, and only
when some row fails looks at the batches one by one, to refuse exactly those holding a bad row with a 422 naming it.
"""

from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from ltm import arrow_batches
from ltm.api.errors import Refusal, unprocessable
from ltm.limits import MAX_LOG_MESSAGE, MAX_NAME_LENGTH
from ltm.models import LogLevel
from ltm.store import ingest

# a day inside Python's datetime range, so every stored time reads back in any time zone
_EARLIEST_US = arrow_batches.micros(datetime(1, 1, 2))
_LATEST_US = arrow_batches.micros(datetime(9999, 12, 30))
_LEVEL_VALUES = [level.value for level in LogLevel]
_LEVELS = pa.array(_LEVEL_VALUES)
_LEVEL_NAMES = frozenset(_LEVEL_VALUES)


def refused(items: list[ingest.Batch | ingest.Report]) -> dict[int, Refusal]:
    """The index of each item holding a row that breaks a check, with the 422 refusing it."""
    tables: dict[str, list[pa.Table]] = {ingest.LOGS: [], ingest.METRICS: []}
    for item in items:
        for batch in ingest.batches_of(item):
            tables[batch.kind].append(batch.rows)
    try:
        for kind, rows in tables.items():
            if rows:
                _check(kind, pa.concat_tables(rows))
        return {}
    except (Refusal, pa.ArrowInvalid, pa.ArrowTypeError):  # a bad row, or tables that do not stack: one at a time
        pass
    refusals = {}
    for index, item in enumerate(items):
        try:
            for batch in ingest.batches_of(item):
                _check(batch.kind, batch.rows)
        except Refusal as exc:
            refusals[index] = exc
    return refusals


def _check(kind: str, rows: pa.Table) -> None:
    """Raises the 422 for the first row of a log or metric table (timestamps naive UTC) that breaks a check."""
    if not rows.num_rows:
        return
    if kind == ingest.LOGS:
        _check_lines(rows)
    else:
        _check_points(rows)
    earliest, latest = pc.min_max(rows["timestamp"]).values()
    if earliest.value < _EARLIEST_US or latest.value > _LATEST_US:
        raise unprocessable("timestamp：时间必须在公元 1 年到 9999 年之间", "timestamp")


def _check_lines(rows: pa.Table) -> None:
    if not set(pc.unique(rows["level"]).to_pylist()) <= _LEVEL_NAMES:
        _reject(pc.invert(pc.is_in(rows["level"], _LEVELS)), "level", f"必须是 {'、'.join(_LEVEL_VALUES)} 之一")
    if rows["message"].nbytes > MAX_LOG_MESSAGE:  # a character takes at least a byte: smaller rows hold no long line
        lengths = pc.utf8_length(rows["message"])
        if pc.max(lengths).as_py() > MAX_LOG_MESSAGE:
            _reject(pc.greater(lengths, MAX_LOG_MESSAGE), "message", f"长度不能超过 {MAX_LOG_MESSAGE} 个字符")


def _check_points(rows: pa.Table) -> None:
    lengths = pc.utf8_length(rows["name"])
    shortest, longest = pc.min_max(lengths).values()
    if shortest.as_py() < 1 or longest.as_py() > MAX_NAME_LENGTH:
        bad = pc.or_(pc.less(lengths, 1), pc.greater(lengths, MAX_NAME_LENGTH))
        _reject(bad, "name", f"长度必须在 1 到 {MAX_NAME_LENGTH} 个字符之间")
    if pc.min(rows["step"]).as_py() < 0:
        _reject(pc.less(rows["step"], 0), "step", "不能小于 0")
    finite = pc.is_finite(rows["value"])
    if not pc.all(finite).as_py():
        _reject(pc.invert(finite), "value", "必须是有限数值")


def _reject(bad: pa.ChunkedArray, field: str, message: str) -> None:
    """422 naming the first row where `bad` holds."""
    row = pc.index(bad, True).as_py()
    raise unprocessable(f"{field}：第 {row} 行{message}", field)
