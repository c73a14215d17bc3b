"""An artifact's bytes as served for download: one file as it is, a folder (a checkpoint of several files) as an
uncompressed tar built while it streams. Both have a size and an ETag known before the first byte, and any byte range
of either can be produced on its own, so an interrupted download resumes with an HTTP Range request."""

import hashlib
import posixpath
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ltm.api.errors import Refusal
from ltm.artifact_paths import Location

CHUNK = 1 << 20
_TAR_BLOCK = 512
_TAR_END = bytes(2 * _TAR_BLOCK)
_RANGE = re.compile(r"bytes=(?P<first>[0-9]*)-(?P<last>[0-9]*)", re.ASCII)


@dataclass(frozen=True)
class Part:
    """A stretch of the served bytes: literal bytes (tar headers, padding) or the whole of one file."""

    size: int
    data: bytes | None = None
    path: str | None = None


@dataclass(frozen=True)
class Served:
    filename: str
    media_type: str
    etag: str
    parts: tuple[Part, ...]

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts)


class Unsatisfiable(Exception):
    """A Range that starts beyond the end (416)."""


def served(location: Location, name: str, file: str | None, inside: Callable[[str], None]) -> Served:
    """What a download of the artifact at `location` sends: the file, one file `file` of a folder, or the folder as
    a tar. `inside(path)` refuses a path that resolves outside the run's folder (a symlink, say). 410 when the files
    are gone, 404 when `file` is not in the folder."""
    try:
        fs = location.filesystem()
        info = fs.info(location.path)
    except FileNotFoundError:
        raise Refusal(410, f"工件 {name} 的文件已不存在（{location.url}）：可能已被删除或被保留策略清理") from None
    except (ImportError, ValueError) as exc:  # no fsspec backend for the scheme in this process
        raise Refusal(409, f"API 进程无法读取工件 {name} 所在的存储（{location.url}）：{exc}") from None
    except OSError as exc:
        raise Refusal(503, f"暂时无法读取工件 {name} 的存储（{location.url}）：{exc}") from None
    if info["type"] != "directory":
        return _one_file(location.path, info, posixpath.basename(location.path))
    files = _folder_files(fs, location.path)
    if file is not None:
        if file not in files:
            shown = "、".join(sorted(files)[:20]) or "（无文件）"
            raise Refusal(404, f"文件 {file} 不在工件 {name} 中；其中的文件：{shown}")
        inside(posixpath.join(location.path, file))
        return _one_file(posixpath.join(location.path, file), files[file], posixpath.basename(file))
    for relative in files:
        inside(posixpath.join(location.path, relative))
    return _tar(posixpath.basename(location.path), location.path, files)


def _folder_files(fs, root: str) -> dict[str, dict]:
    found = fs.find(root, detail=True)
    kept = {path: info for path, info in found.items() if info["type"] == "file" or info.get("islink")}
    return {posixpath.relpath(path, root): info for path, info in sorted(kept.items())}


def _one_file(path: str, info: dict, filename: str) -> Served:
    part = Part(size=int(info["size"]), path=path)
    return Served(filename, "application/octet-stream", _etag([(filename, info)]), (part,))


def _tar(folder: str, root: str, files: dict[str, dict]) -> Served:
    parts: list[Part] = []
    for relative, info in files.items():
        member = tarfile.TarInfo(posixpath.join(folder, relative))
        member.size, member.mtime, member.mode = int(info["size"]), int(_modified(info)), 0o644
        header = member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        parts.append(Part(size=len(header), data=header))
        parts.append(Part(size=member.size, path=posixpath.join(root, relative)))
        padding = -member.size % _TAR_BLOCK
        if padding:
            parts.append(Part(size=padding, data=bytes(padding)))
    parts.append(Part(size=len(_TAR_END), data=_TAR_END))
    return Served(folder + ".tar", "application/x-tar", _etag(list(files.items())), tuple(parts))


def _modified(info: dict) -> float:
    value = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("created") or 0
    return value.timestamp() if hasattr(value, "timestamp") else float(value)


def _etag(entries: list[tuple[str, dict]]) -> str:
    text = "\n".join(f"{name}\t{info['size']}\t{_modified(info)}\t{info.get('ETag', '')}" for name, info in entries)
    return '"' + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32] + '"'


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte of a single `bytes=` range; None for no range or one this server ignores
    (several ranges, a malformed header): the whole file is sent then, as RFC 9110 allows."""
    found = _RANGE.fullmatch(header.strip()) if header else None
    if not found or not (found["first"] or found["last"]):
        return None
    if not found["first"]:
        suffix = int(found["last"])
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return max(size - suffix, 0), size - 1
    start = int(found["first"])
    end = min(int(found["last"]), size - 1) if found["last"] else size - 1
    if start >= size:
        raise Unsatisfiable
    return (start, end) if end >= start else None


def stream(location: Location, thing: Served, first: int, last: int) -> Iterator[bytes]:
    """Bytes `first`..`last` (inclusive) of what `thing` serves, read a chunk at a time."""
    fs = location.filesystem()
    offset = 0
    for part in thing.parts:
        begin, end = max(first, offset), min(last + 1, offset + part.size)
        if begin < end:
            if part.data is not None:
                yield part.data[begin - offset : end - offset]
            else:
                yield from _file_bytes(fs, part.path, begin - offset, end - offset)
        offset += part.size
        if offset > last:
            return


def _file_bytes(fs, path: str, start: int, stop: int) -> Iterator[bytes]:
    with fs.open(path, "rb") as handle:
        handle.seek(start)
        left = stop - start
        while left > 0:
            chunk = handle.read(min(CHUNK, left))
            if not chunk:
                raise OSError(f"文件 {path} 在下载过程中变短了")
            left -= len(chunk)
            yield chunk
