"""Writes run artifacts (checkpoints, configs, evaluations, TensorBoard logs) as real files."""

from __future__ import annotations

import json
import posixpath
import re
import time
import uuid
from dataclasses import dataclass

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from ltm import checksums
from ltm.artifact_paths import Location

CHECKPOINT_SUFFIX = ".ckpt"
CONFIG_FILE_NAME = "config.json"
TENSORBOARD_DIR_NAME = "tensorboard"

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class WrittenArtifact:
    path: str
    size_bytes: int
    checksums: dict[str, str] | None = None  # a checkpoint's files, as written


def _require_safe_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise ValueError(f"{kind} {name!r} 只能包含字母、数字、点、下划线和连字符")
    return name


def _public_path(fs, path: str) -> str:
    return path if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(path)


class ArtifactWriter:
    def __init__(self, root_url: str, project_id: str, run_id: str) -> None:
        self._fs, root_path = url_to_fs(root_url)
        project_dir = _require_safe_name("项目 ID", str(project_id))
        run_dir = _require_safe_name("运行 ID", str(run_id))
        self._run_dir = posixpath.join(root_path.rstrip("/") or "/", project_dir, run_dir)

    @property
    def run_dir(self) -> str:
        return _public_path(self._fs, self._run_dir)

    @property
    def tensorboard_dir(self) -> str:
        return _public_path(self._fs, posixpath.join(self._run_dir, TENSORBOARD_DIR_NAME))

    def write_checkpoint(self, name: str, files: dict[str, bytes]) -> WrittenArtifact:
        """A checkpoint is a folder of the trainer's files and their SHA-256 manifest, moved into place only once all
        are written."""
        folder = name if name.endswith(CHECKPOINT_SUFFIX) else name + CHECKPOINT_SUFFIX
        final_path = posixpath.join(self._run_dir, _require_safe_name("检查点名称", folder))
        temporary_path = posixpath.join(self._run_dir, f".{folder}.{uuid.uuid4().hex}.tmp")
        self._fs.makedirs(temporary_path, exist_ok=True)
        digests = {}
        try:
            for file_name, payload in files.items():
                with self._fs.open(posixpath.join(temporary_path, _require_safe_name("文件名", file_name)), "wb") as f:
                    f.write(payload)
                digests[file_name] = checksums.of_bytes(payload)
            with self._fs.open(posixpath.join(temporary_path, checksums.MANIFEST), "wb") as f:
                f.write(checksums.manifest_bytes(digests))
            if self._fs.exists(final_path):
                self._fs.rm(final_path, recursive=True)
            self._fs.mv(temporary_path, final_path, recursive=True)
        finally:
            if self._fs.exists(temporary_path):
                self._fs.rm(temporary_path, recursive=True)
        size = sum(self._fs.size(posixpath.join(final_path, name)) for name in [*files, checksums.MANIFEST])
        return WrittenArtifact(path=_public_path(self._fs, final_path), size_bytes=size, checksums=digests)

    def write_config(self, config: dict) -> WrittenArtifact:
        return self._write_json(CONFIG_FILE_NAME, config)

    def write_evaluation(self, epoch: int, step: int, metrics: dict) -> WrittenArtifact:
        document = {"epoch": epoch, "step": step, "metrics": metrics}
        return self._write_json(f"eval_epoch{epoch}.json", document)

    def _write_json(self, file_name: str, document: dict) -> WrittenArtifact:
        payload = json.dumps(document, ensure_ascii=False, allow_nan=False, indent=2).encode("utf-8")
        final_path = posixpath.join(self._run_dir, file_name)
        temporary_path = posixpath.join(self._run_dir, f".{file_name}.{uuid.uuid4().hex}.tmp")
        self._fs.makedirs(self._run_dir, exist_ok=True)
        try:
            with self._fs.open(temporary_path, "wb") as handle:
                handle.write(payload)
            self._fs.mv(temporary_path, final_path)
        finally:
            if self._fs.exists(temporary_path):
                self._fs.rm(temporary_path)
        return WrittenArtifact(path=_public_path(self._fs, final_path), size_bytes=self._fs.size(final_path))


class CorruptCheckpoint(ValueError):
    """A checkpoint's files no longer match the SHA-256 recorded when they were written."""


def read_checkpoint(location: Location, recorded: dict[str, str] | None) -> dict[str, bytes]:
    """The files of a checkpoint folder, by name (`location` as ltm.artifact_paths.checked returns it), checked
    against the SHA-256 `recorded` at write time (None: a checkpoint written before checksums were kept)."""
    fs = location.filesystem()
    files = {posixpath.basename(entry): fs.cat_file(entry) for entry in fs.ls(location.path, detail=False)}
    files.pop(checksums.MANIFEST, None)
    if recorded is not None:
        problems = checksums.differences(recorded, {name: checksums.of_bytes(data) for name, data in files.items()})
        if problems:
            raise CorruptCheckpoint("；".join(problems))
    return files


class TensorBoardWriter:
    """Scalar event files that ``tensorboard --logdir`` reads; the log directory must be local."""

    def __init__(self, logdir_url: str) -> None:
        fs, path = url_to_fs(logdir_url)
        if not isinstance(fs, LocalFileSystem):
            raise ValueError(f"TensorBoard 日志目前只能写入本地目录，不支持 {logdir_url}")
        self._fs = fs
        self.logdir = path
        self._writer = EventFileWriter(path, flush_secs=5)

    def add_scalars(self, step: int, metrics: dict[str, float], wall_time: float | None = None) -> None:
        values = [summary_pb2.Summary.Value(tag=tag, simple_value=float(value)) for tag, value in metrics.items()]
        event = event_pb2.Event(
            wall_time=time.time() if wall_time is None else wall_time,
            step=step,
            summary=summary_pb2.Summary(value=values),
        )
        self._writer.add_event(event)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def size_bytes(self) -> int:
        return int(self._fs.du(self.logdir, total=True))

    def __enter__(self) -> TensorBoardWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
