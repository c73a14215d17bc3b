"""Where a run's artifact files may be: a path resolved exactly as fsspec will open it, inside its run's folder.

Registering, reading (resume) and removing (deletion, retention) all go through `checked`, each right before it
acts, and act on the `Location` it returns rather than on the raw string: fsspec reads `a::b` as URL chaining and
opens only `a`, so a check over the raw string is not a check at all.
"""

import os
import posixpath
from dataclasses import dataclass

import fsspec
from fsspec.core import split_protocol

_LOCAL_PROTOCOLS = (None, "file", "local")
_GLOB_CHARACTERS = "*?["
RELEASES_FOLDER = "releases"


class OutsideRunFolder(ValueError):
    """The path is not one ltm reads or removes for this run; the message says why, in Chinese."""


@dataclass(frozen=True)
class Location:
    """A filesystem protocol (None: the local disk) and the normalised path that filesystem sees."""

    protocol: str | None
    path: str

    @property
    def url(self) -> str:
        return self.path if self.protocol is None else f"{self.protocol}://{self.path}"

    def filesystem(self) -> fsspec.AbstractFileSystem:
        return fsspec.filesystem(self.protocol or "file")

    def remove(self) -> None:
        """Remove the file or folder (checkpoints are folders); one already gone counts as removed."""
        try:
            self.filesystem().rm(self.path, recursive=True)
        except FileNotFoundError:
            pass

    def contains(self, other: "Location") -> bool:
        return self.protocol == other.protocol and other.path.startswith(self.path.rstrip("/") + "/")


def locate(url: str) -> Location:
    """The one filesystem and path fsspec opens for `url`; refuses what fsspec would read differently."""
    if "::" in url:
        raise OutsideRunFolder("路径不能使用 fsspec 的 :: 链式写法")
    if any(character in url for character in _GLOB_CHARACTERS):
        raise OutsideRunFolder("路径不能包含通配符 * ? [")
    if any(ord(character) < 32 for character in url):
        raise OutsideRunFolder("路径不能包含控制字符")
    protocol, rest = split_protocol(url)
    if protocol in _LOCAL_PROTOCOLS:
        if not rest.startswith("/"):
            raise OutsideRunFolder("本地路径必须是以 / 开头的绝对路径")
        return Location(None, os.path.realpath(rest))
    if any(segment in (".", "..") for segment in rest.split("/")):
        raise OutsideRunFolder("对象存储路径不能包含 . 或 .. 段")
    try:
        path = fsspec.get_filesystem_class(protocol)._strip_protocol(url)
    except (ImportError, ValueError):  # a backend not installed in this process: its path as written
        path = rest
    return Location(protocol, path.rstrip("/"))


def run_folder(root_url: str, project_id: str, run_id: str) -> Location:
    """Where flows.artifact_io.ArtifactWriter puts a run's files: <root>/<project>/<run>."""
    root = locate(root_url)
    return Location(root.protocol, posixpath.join(root.path, project_id, run_id))


def release_folder(root_url: str, project_id: str, release_id: str) -> Location:
    """Where a release's frozen copy lives: <root>/releases/<project>/<release>, outside every run's folder, so
    deleting runs, retention and deleting a project's run folders never reach it."""
    root = locate(root_url)
    return Location(root.protocol, posixpath.join(root.path, RELEASES_FOLDER, project_id, release_id))


def checked(url: str, root_url: str, project_id: str, run_id: str) -> Location:
    """`url` resolved, when it lies inside run `run_id`'s own folder; else OutsideRunFolder."""
    folder = run_folder(root_url, project_id, run_id)
    required = f"工件路径必须位于运行自己的目录 {folder.url}/ 之下"
    try:
        location = locate(url)
    except OutsideRunFolder as exc:
        raise OutsideRunFolder(f"{exc}；{required}") from None
    if not folder.contains(location):
        raise OutsideRunFolder(required)
    return location
