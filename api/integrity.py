"""A checkpoint's files checked against the SHA-256 recorded as they were written: before a resume, a release and a
download, and on request. A mismatch is refused and marks the checkpoint 已损坏; nothing is deleted."""

from ltm import artifact_paths, checksums
from ltm.api.errors import Refusal, conflict
from ltm.models import ArtifactType
from ltm.store import artifacts as artifact_store
from ltm.store import auth as auth_store
from ltm.store import utc_now

ACTOR = "ltm 校验"


def verify(db, root_url: str, artifact: dict) -> dict:
    """The artifact as stored after comparing its files with their recorded SHA-256; 409 naming what differs when
    they no longer match (the artifact is then marked 已损坏), 410 when its files are gone. A checkpoint without
    recorded checksums, or another kind of artifact, has nothing to compare and passes."""
    if artifact["type"] != ArtifactType.CHECKPOINT.value or artifact["checksums"] is None:
        return artifact
    problems = checksums.differences(artifact["checksums"], _found(root_url, artifact))
    name = f"{artifact['name']}（{artifact['id']}）"
    if problems:
        text = "；".join(problems)
        artifact_store.mark_corrupted(db, artifact["id"], text, utc_now())
        if artifact["corrupted_at"] is None:
            auth_store.record(
                db,
                ACTOR,
                "发现检查点损坏",
                artifact["project_id"],
                artifact["run_id"],
                target=artifact["name"],
                details=text,
            )
        raise conflict(f"检查点 {name} 已损坏：{text}。文件保持原样、没有删除，检查点已标记为已损坏")
    if artifact["corrupted_at"] is not None:
        artifact_store.clear_corrupted(db, artifact["id"])
        auth_store.record(
            db,
            ACTOR,
            "检查点恢复完好",
            artifact["project_id"],
            artifact["run_id"],
            target=artifact["name"],
            details="文件再次与写入时的 SHA-256 一致",
        )
    return artifact_store.get(db, artifact["id"])


def _found(root_url: str, artifact: dict) -> dict[str, str]:
    name = f"检查点 {artifact['name']}（{artifact['id']}）"
    try:
        location = artifact_paths.checked(artifact["path"], root_url, artifact["project_id"], artifact["run_id"])
        return checksums.of_location(location.filesystem(), location.path)
    except artifact_paths.OutsideRunFolder as exc:
        raise conflict(f"{name} 的文件不在它所属运行的目录中，无法校验：{exc}") from None
    except FileNotFoundError:
        raise Refusal(410, f"{name} 的文件已不存在（{artifact['path']}）：可能已被删除或被保留策略清理") from None
    except (ImportError, ValueError) as exc:  # no fsspec backend for the scheme in this process
        raise conflict(f"API 进程无法读取{name}所在的存储，无法校验：{exc}") from None
    except OSError as exc:
        raise Refusal(503, f"暂时无法读取{name}的存储：{exc}") from None
