"""SHA-256 of a checkpoint's files: computed as they are written, kept in the checkpoint folder (MANIFEST) and in
the store, and compared before a checkpoint is resumed, released or downloaded."""

import hashlib
import json
import posixpath

MANIFEST = "ltm-manifest.json"
_CHUNK = 1 << 20


def of_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def of_file(fs, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_bytes(checksums: dict[str, str]) -> bytes:
    document = {"algorithm": "sha256", "files": dict(sorted(checksums.items()))}
    return json.dumps(document, ensure_ascii=False, indent=2).encode()


def of_location(fs, root: str) -> dict[str, str]:
    """The SHA-256 of every file at `root` (a folder, by path relative to it, without the manifest; or one file,
    by its name)."""
    if fs.info(root)["type"] != "directory":
        return {posixpath.basename(root): of_file(fs, root)}
    found = {}
    for path in sorted(fs.find(root)):
        relative = posixpath.relpath(path, root)
        if relative != MANIFEST:
            found[relative] = of_file(fs, path)
    return found


def differences(recorded: dict[str, str], found: dict[str, str]) -> list[str]:
    """What differs between the checksums recorded at write time and those of the files now, in Chinese."""
    problems = []
    for name in sorted(recorded):
        if name not in found:
            problems.append(f"文件 {name} 不见了")
        elif found[name] != recorded[name]:
            problems.append(
                f"文件 {name} 的 SHA-256 与写入时不同（写入时 {recorded[name][:12]}…，现在 {found[name][:12]}…）"
            )
    problems += [f"多了写入时没有的文件 {name}" for name in sorted(set(found) - set(recorded))]
    return problems
