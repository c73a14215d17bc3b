"""A script run's processes: the command that starts them, their output in the run's logs, and stopping them all."""

import os
import re
import shlex
import sys
import threading
import time
from collections import deque
from pathlib import Path

from ltm.flows.script_source import ScriptConfigError
from ltm.models import Run
from ltm.reporter import RunReporter

TAIL_LINES = 12
RANK_PREFIX = "[rank${rank}]:"  # torchrun's per-line prefix template (TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE)
_RANK_LINE = re.compile(r"^\[rank(\d+)\]:(.*)$", re.DOTALL)
_ERROR_LINE = re.compile(r"Traceback|Error|Exception|CUDA out of memory")
_OUT_OF_MEMORY = re.compile(r"CUDA out of memory|OutOfMemoryError")


def process_count(run: Run) -> int:
    return run.processes or len(run.devices) or 1


def build_command(entrypoint: str, processes: int, folder: Path, log_dir: Path) -> list[str]:
    """The entrypoint with `python` replaced by this interpreter; torchrun when there are several processes."""
    words = shlex.split(entrypoint)
    args = words[1:]
    if not args[0].startswith("-"):
        script = (folder / args[0]).resolve()
        if folder not in script.parents:
            raise ScriptConfigError(f"entrypoint 中的脚本 {args[0]} 不在 source 目录 {folder} 之内")
        if not script.is_file():
            raise ScriptConfigError(f"entrypoint 中的脚本 {args[0]} 在 source 目录 {folder} 中不存在")
    elif processes > 1 and args[0] != "-m":
        raise ScriptConfigError("entrypoint：多进程运行只能是 python 脚本.py … 或 python -m 模块 …")
    if processes == 1:
        return [sys.executable, *args]
    try:
        import torch.distributed.run  # noqa: F401  only to learn whether torchrun is there
    except ImportError:
        raise ScriptConfigError(f"processes={processes}：多进程运行需要 worker 上安装 torch（torchrun）") from None
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    return [*launcher, "--tee=3", f"--log-dir={log_dir}", *args]


class ScriptOutput:
    """Every line the script prints goes to the run's logs, tagged with its rank; stderr is WARNING or ERROR."""

    def __init__(self, reporter: RunReporter) -> None:
        self.reporter = reporter
        self.tails: dict[str, deque[str]] = {}
        self.first_error: dict[str, float] = {}
        self.out_of_memory = False
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def follow(self, stream, is_stderr: bool, single_rank: bool) -> None:
        thread = threading.Thread(target=self._read, args=(stream, is_stderr, single_rank), daemon=True)
        thread.start()
        self._threads.append(thread)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _read(self, stream, is_stderr: bool, single_rank: bool) -> None:
        for text in _lines(stream):
            matched = _RANK_LINE.match(text)
            if single_rank:
                source = "rank 0"
            elif matched:
                source, text = f"rank {matched.group(1)}", matched.group(2)
            else:
                source = "torchrun"
            own = _RANK_LINE.match(text)  # PyTorch's own prefix, on a traceback once a process group is up
            if own and source == f"rank {own.group(1)}":
                text = own.group(2).removeprefix(" ")
            self._line(source, text.rsplit("\r", 1)[-1], is_stderr)  # a progress bar redraws with \r: its last state
        stream.close()

    def _line(self, source: str, text: str, is_stderr: bool) -> None:
        level = "INFO"
        if is_stderr:
            level = "ERROR" if _ERROR_LINE.search(text) else "WARNING"
            with self._lock:
                self.tails.setdefault(source, deque(maxlen=TAIL_LINES)).append(text)
                if level == "ERROR":
                    self.first_error.setdefault(source, time.monotonic())
                    self.out_of_memory = self.out_of_memory or bool(_OUT_OF_MEMORY.search(text))
        self.reporter.log(f"[{source}] {text}", level=level)

    def failure_text(self) -> str:
        """The last stderr lines of the rank that failed first (torchrun's own lines only when no rank wrote)."""
        with self._lock:
            ranks = [source for source in self.tails if source != "torchrun"]
            if not ranks and "torchrun" in self.tails:
                ranks = ["torchrun"]
            if not ranks:
                return "脚本没有输出错误信息"
            failing = min(ranks, key=lambda source: (self.first_error.get(source, float("inf")), source))
            lines = [line for line in self.tails[failing] if line.strip()]
        return f"{failing} 的最后输出：\n" + "\n".join(lines)


def _lines(stream, longest: int = 64 * 1024):
    """Decoded lines of a binary stream as they arrive; a line longer than `longest` is cut there."""
    pending = b""
    while chunk := stream.read1(longest):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        while len(pending) > longest:
            complete.append(pending[:longest])
            pending = pending[longest:]
        for line in complete:
            yield line.rstrip(b"\r").decode("utf-8", errors="replace")
    if pending:
        yield pending.rstrip(b"\r").decode("utf-8", errors="replace")


def _process_table() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, state) of every process, from /proc."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        table[int(entry.name)] = (int(fields[1]), fields[0].decode())
    return table


def descendants(pid: int) -> list[int]:
    """`pid` and every live process below it (torchrun starts each worker in a session of its own)."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for child, (parent, state) in table.items():
        if state != "Z":
            children.setdefault(parent, []).append(child)
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def alive(pids: list[int]) -> list[int]:
    table = _process_table()
    return [pid for pid in pids if pid in table and table[pid][1] != "Z"]


def signal_groups(pids: list[int], signum: int) -> None:
    groups = set()
    for pid in pids:
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            continue
    for group in groups:
        if group <= 1 or group == os.getpgid(0):
            continue
        try:
            os.killpg(group, signum)
        except (ProcessLookupError, PermissionError):
            pass
