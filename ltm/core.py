"""`ltm.core`: what a training script needs from ltm, in one context.

    with ltm.core.init(total_steps=1000) as ctx:
        ctx.hparams                       # the run's hyperparameters
        ctx.report(step, {"loss": 0.1})   # metrics and progress (rank 0 stores them; other ranks do nothing)
        ctx.log("…")                      # a line in the run's logs
        ctx.checkpoint.save(step, path)   # a file, a folder or {name: bytes}, registered as a checkpoint
        ctx.checkpoint.resume_path        # the checkpoint folder this run resumes from, or None
        ctx.should_stop()                 # True once the run is cancelled, agreed by every rank
        ctx.distributed                   # rank, world size, local rank (torchrun's environment)

The flow that starts the script passes everything through LTM_* environment variables (docs/scripts.md). Without
them (the script started by hand) the same code runs on its own: reports and logs are printed and checkpoints go to
./ltm-checkpoints. Importing this module never imports torch; `should_stop` uses torch.distributed only when the
script has initialised it.
"""

import json
import os
import posixpath
import shutil
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fsspec.implementations.local import LocalFileSystem

from ltm import artifact_paths, checksums

API_URL = "LTM_API_URL"
TOKEN = "LTM_TOKEN"
RUN_ID = "LTM_RUN_ID"
PROJECT_ID = "LTM_PROJECT_ID"
HPARAMS = "LTM_HPARAMS"
ARTIFACT_ROOT = "LTM_ARTIFACT_ROOT"
CHECKPOINT_DIR = "LTM_CHECKPOINT_DIR"
RESUME_PATH = "LTM_RESUME_PATH"
RESUME_STEP = "LTM_RESUME_STEP"
STOP_FILE = "LTM_STOP_FILE"
FLOW_PID = "LTM_FLOW_PID"

STANDALONE_CHECKPOINTS = "ltm-checkpoints"
STOP_CANCEL, STOP_TERMINATE = "cancel", "terminate"  # what the stop file says: why the script is asked to stop
STOP_CHECKPOINT_NAMES = {STOP_CANCEL: "取消前的检查点", STOP_TERMINATE: "终止前的检查点"}


@dataclass(frozen=True)
class Distributed:
    """This process's place among the script's processes, as torchrun describes it (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "Distributed":
        return cls(
            rank=int(os.environ.get("RANK", 0)),
            world_size=int(os.environ.get("WORLD_SIZE", 1)),
            local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        )

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class Checkpoints:
    """Checkpoints of the run: saving one copies it into the run's artifact folder and registers it."""

    def __init__(self, context: "Context") -> None:
        self._context = context
        env = os.environ
        self.dir = Path(env.get(CHECKPOINT_DIR) or Path(STANDALONE_CHECKPOINTS, "scratch")).resolve()
        self.resume_path: Path | None = Path(env[RESUME_PATH]) if env.get(RESUME_PATH) else None
        self.resume_step: int | None = int(env[RESUME_STEP]) if env.get(RESUME_STEP) else None
        self.dir.mkdir(parents=True, exist_ok=True)

    def save(self, step: int, source: str | os.PathLike | Mapping[str, bytes]) -> str | None:
        """Store `source` (a file, a folder, or file names mapped to bytes) as the checkpoint of `step` and
        register it; returns where it was stored. Only rank 0 stores: other ranks return None at once, so calling
        it on every rank is fine. A file under `ctx.checkpoint.dir` is moved rather than copied where it can be."""
        context = self._context
        if not context.distributed.is_main:
            return None
        stopping = context.stop_agreed
        folder = f"{'stop-' if stopping else ''}step-{int(step):08d}.ckpt"
        path, size, digests = _store(context.run_folder, folder, _files(source), movable_under=self.dir)
        name = STOP_CHECKPOINT_NAMES[context.stop_reason] if stopping else f"第 {step} 步检查点"
        context.register_checkpoint(name=name, path=path, size=size, step=int(step), checksums=digests)
        return path


class Context:
    def __init__(self) -> None:
        env = os.environ
        self.distributed = Distributed.from_env()
        self.hparams: dict[str, Any] = json.loads(env.get(HPARAMS) or "{}")
        self.run_id = env.get(RUN_ID)
        self.project_id = env.get(PROJECT_ID)
        self.total_steps: int | None = None
        self.stop_agreed = False
        self.stop_reason = STOP_CANCEL
        self._stop_file = Path(env[STOP_FILE]) if env.get(STOP_FILE) else None
        self._flow_pid = int(env[FLOW_PID]) if env.get(FLOW_PID) else None
        self._reporter = None
        self._client = None
        if self.run_id and self.project_id:
            root = env.get(ARTIFACT_ROOT)
            if not root:
                raise RuntimeError(f"缺少环境变量 {ARTIFACT_ROOT}：脚本运行应由 ltm 的训练流程启动")
            self.run_folder = artifact_paths.run_folder(root, self.project_id, self.run_id)
        else:
            self.run_folder = artifact_paths.locate(str(Path(STANDALONE_CHECKPOINTS).resolve()))
        self.checkpoint = Checkpoints(self)

    @property
    def attached(self) -> bool:
        """Started by an ltm flow (reports go to the run), rather than by hand."""
        return bool(self.run_id and self.project_id)

    def set_total_steps(self, total_steps: int) -> None:
        self.total_steps = int(total_steps)
        if self.distributed.is_main and self.attached:
            self._sink().progress(total_steps=self.total_steps)

    def report(self, step: int, metrics: Mapping[str, float]) -> None:
        """Metrics of `step`, and the run's progress when the total is known. Ranks other than 0 do nothing."""
        if not self.distributed.is_main:
            return
        values = {name: float(value) for name, value in metrics.items()}
        if not self.attached:
            print(f"第 {step} 步：" + "，".join(f"{name}={value:.6g}" for name, value in values.items()), flush=True)
            return
        sink = self._sink()
        sink.metrics(int(step), values)
        progress: dict[str, Any] = {"current_step": int(step)}
        if self.total_steps:
            progress.update(total_steps=self.total_steps, progress=min(1.0, step / self.total_steps))
        sink.progress(**progress)

    def log(self, message: str, level: str = "INFO") -> None:
        """A line in the run's logs from any rank (tagged with the rank when there are several)."""
        text = f"[rank {self.distributed.rank}] {message}" if self.distributed.world_size > 1 else str(message)
        if self.attached:
            self._sink().log(text, level=level)
        else:
            print(f"{level} {text}", file=sys.stderr if level != "INFO" else sys.stdout, flush=True)

    def should_stop(self) -> bool:
        """True once the run is cancelled (or the flow supervising the script is gone).

        Every rank must call it at the same steps: with torch.distributed initialised it is one all-reduce, so all
        ranks get the same answer and stop at the same step. Once True it stays True."""
        wanted = self.stop_agreed or self._stop_requested()
        wanted = _agree(wanted)
        if wanted and not self.stop_agreed:
            self.stop_agreed = True
            if self.distributed.is_main:
                self.log("收到停止请求，在本步结束后停止")
        return wanted

    def register_checkpoint(
        self, name: str, path: str, size: int, step: int, checksums: dict[str, str] | None = None
    ) -> None:
        if not self.attached:
            print(f"已保存检查点（第 {step} 步）：{path}", flush=True)
            return
        from ltm.client import ApiError

        sink = self._sink()
        sink.artifact(type="checkpoint", name=name, path=path, size_bytes=size, step=step, checksums=checksums)
        sink.log(f"已保存检查点（第 {step} 步）：{path}")
        try:
            sink.flush()  # registered now, after the metrics that led to it
        except (httpx.HTTPError, ApiError) as exc:
            if isinstance(exc, ApiError) and exc.status_code < 500:
                raise
            # the API is briefly unreachable: the reporter keeps sending in the background and on close

    def close(self) -> None:
        """Send what is still buffered; a failure to send is printed, not raised (training itself went fine)."""
        if self._reporter is None:
            return
        try:
            self._reporter.close()
        except Exception as exc:  # noqa: BLE001  any reason the API could not take the last batch
            print(f"ltm：最后一批日志和指标未能发送（{exc}）", file=sys.stderr, flush=True)
        finally:
            self._client.close()
            self._reporter = None

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _sink(self):
        if self._reporter is None:
            from ltm.client import Client
            from ltm.reporter import RunReporter

            env = os.environ
            if not env.get(API_URL):
                raise RuntimeError(f"缺少环境变量 {API_URL}：脚本运行需要 ltm API 的地址")
            self._client = Client(env[API_URL], token=env.get(TOKEN) or None)
            self._reporter = RunReporter(self._client, self.project_id, self.run_id)
        return self._reporter

    def _stop_requested(self) -> bool:
        if self._stop_file is not None and self._stop_file.exists():
            reason = self._stop_file.read_text(encoding="utf-8").strip()
            self.stop_reason = reason if reason in STOP_CHECKPOINT_NAMES else STOP_CANCEL
            return True
        if self._flow_pid is not None:
            try:
                os.kill(self._flow_pid, 0)
            except ProcessLookupError:  # nobody supervises the script any more: stop at a step, keep a checkpoint
                self.stop_reason = STOP_TERMINATE
                return True
            except PermissionError:
                pass
        return False


def init(total_steps: int | None = None) -> Context:
    """The script's ltm context; use it as `with ltm.core.init() as ctx:` so buffered reports are sent at the end."""
    context = Context()
    if total_steps is not None:
        context.set_total_steps(total_steps)
    return context


def _agree(wanted: bool) -> bool:
    """Any rank's True becomes every rank's True (one all-reduce), when the script runs torch.distributed."""
    torch = sys.modules.get("torch")  # a script that never imported torch has no process group
    if torch is None or not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return wanted
    distributed = torch.distributed
    device = "cpu"
    if distributed.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    flag = torch.tensor([1 if wanted else 0], dtype=torch.int32, device=device)
    distributed.all_reduce(flag, op=distributed.ReduceOp.MAX)
    return bool(flag.item())


def _files(source: str | os.PathLike | Mapping[str, bytes]) -> list[tuple[str, Path | bytes]]:
    """(relative name, local path or bytes) of every file in the checkpoint."""
    if isinstance(source, Mapping):
        return [(_safe_relative(name), bytes(data)) for name, data in source.items()]
    path = Path(source)
    if path.is_file():
        return [(path.name, path)]
    if path.is_dir():
        found = [(file.relative_to(path).as_posix(), file) for file in sorted(path.rglob("*")) if file.is_file()]
        if found:
            return found
        raise ValueError(f"检查点目录 {path} 是空的")
    raise FileNotFoundError(f"找不到要保存的检查点 {path}")


def _safe_relative(name: str) -> str:
    parts = str(name).split("/")
    if not name or any(part in ("", ".", "..") for part in parts) or "\\" in name:
        raise ValueError(f"检查点文件名 {name!r} 必须是相对路径，不能含 .. 或空段")
    return name


def _store(
    run_folder: artifact_paths.Location, folder: str, files, movable_under: Path
) -> tuple[str, int, dict[str, str]]:
    """Write the files and their SHA-256 manifest into `<run folder>/<folder>/`, moved into place only once all are
    there; returns where, the size and each file's SHA-256."""
    fs = run_folder.filesystem()
    local = run_folder.protocol is None
    final = posixpath.join(run_folder.path, folder)
    temporary = posixpath.join(run_folder.path, f".{folder}.{uuid.uuid4().hex}.tmp")
    fs.makedirs(temporary, exist_ok=True)
    size, digests = 0, {}
    try:
        for name, content in files:
            target = posixpath.join(temporary, name)
            fs.makedirs(posixpath.dirname(target), exist_ok=True)
            if isinstance(content, bytes):
                with fs.open(target, "wb") as handle:
                    handle.write(content)
                size += len(content)
                digests[name] = checksums.of_bytes(content)
                continue
            size += content.stat().st_size
            digests[name] = checksums.of_file(LocalFileSystem(), str(content))
            if local and content.resolve().is_relative_to(movable_under):
                shutil.move(content, target)
            else:
                fs.put_file(str(content), target)
        manifest = checksums.manifest_bytes(digests)
        with fs.open(posixpath.join(temporary, checksums.MANIFEST), "wb") as handle:
            handle.write(manifest)
        size += len(manifest)
        if fs.exists(final):
            fs.rm(final, recursive=True)
        fs.mv(temporary, final, recursive=True)
    finally:
        if fs.exists(temporary):
            fs.rm(temporary, recursive=True)
    return artifact_paths.Location(run_folder.protocol, final).url, size, digests
