"""Where a script run's code is and what it is: its folder below LTM_SOURCE_DIR and its version."""

import hashlib
import os
import subprocess
from pathlib import Path

MAX_HASHED_FILE = 64 * 2**20
_SKIPPED_DIRS = {"__pycache__", "node_modules"}


class ScriptConfigError(ValueError):
    """The run cannot start its script; the message says why, in Chinese, naming the field."""


def resolve_source(root: Path, source: str | None) -> Path:
    """`source` below `root`, links resolved; refused when it leads outside or is not a folder."""
    base = root.resolve()
    folder = (base / (source or "")).resolve()
    if folder != base and base not in folder.parents:
        raise ScriptConfigError(f"source {source!r} 指向 LTM_SOURCE_DIR（{base}）之外的 {folder}")
    if not folder.is_dir():
        raise ScriptConfigError(f"source {source!r}：LTM_SOURCE_DIR（{base}）下没有这个目录")
    return folder


def code_version(folder: Path) -> str:
    """git:<commit>[+dirty] when the folder is in a git checkout, else sha256:<hash of the folder's files>."""
    commit = _git(folder, "rev-parse", "HEAD")
    if commit:
        changes = _git(folder, "status", "--porcelain", "--untracked-files=normal", "--", ".")
        return f"git:{commit}{'+dirty' if changes else ''}"
    return f"sha256:{content_hash(folder)}"


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def content_hash(folder: Path) -> str:
    """Names and contents of the folder's files (hidden folders and caches left out; files over 64 MiB by size)."""
    digest = hashlib.sha256()
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        for name in sorted(files):
            path = Path(directory, name)
            if not path.is_file():
                continue
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
            size = path.stat().st_size
            if size > MAX_HASHED_FILE:
                digest.update(f"size:{size}".encode())
            else:
                digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()
