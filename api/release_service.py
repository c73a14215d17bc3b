"""A project's current release and every move of it: release a checkpoint, roll back to an earlier release, approve
or reject a request when the project asks for a second person, withdraw (admins only). A release's files are
checked against their recorded SHA-256 and copied into the release folder first, where deleting runs, retention
and compaction never reach; every move is audited and recorded as tag events on the checkpoints."""

import posixpath
from collections.abc import Callable

from ltm import artifact_paths, checksums
from ltm.api import integrity, release_manifest
from ltm.api.auth import Actor, can_work_on
from ltm.api.errors import Refusal, conflict, not_found, unprocessable
from ltm.api.ids import ARTIFACT_KINDS, well_formed
from ltm.ids import new_id
from ltm.models import ArtifactType
from ltm.settings import Settings
from ltm.store import artifacts as artifact_store
from ltm.store import auth as auth_store
from ltm.store import releases as release_store
from ltm.store import runs as run_store
from ltm.store import utc_now
from ltm.vocabulary import ReleaseAction, ReleaseState


class ReleaseService:
    def __init__(self, db, settings: Settings) -> None:
        self.db = db
        self.root_url = settings.artifact_root_url
        self.dataset_roots = settings.dataset_root_urls
        self.listeners: list[Callable[[dict], None]] = []  # told of each release that becomes current

    # ---- reading

    def view(self, project: dict) -> dict:
        history = [self.shown(release) for release in release_store.history(self.db, project["id"])]
        return {
            "project_id": project["id"],
            "approval_required": bool(project.get("release_approval")),
            "current": next((r for r in history if r["state"] == ReleaseState.CURRENT), None),
            "pending": [r for r in history if r["state"] == ReleaseState.PENDING],
            "history": history,
        }

    def shown(self, release: dict) -> dict:
        artifact = artifact_store.get(self.db, release["artifact_id"])
        latest = artifact["tags"][-1]["value"] if artifact and artifact["tags"] else None
        return {
            **release,
            "tagged_by": release["requested_by"],
            "tagged_at": release["requested_at"],
            "frozen": release["frozen_path"] is not None,
            "latest_tag": latest,
        }

    def get(self, project: dict, release_id: str) -> dict:
        release = release_store.get(self.db, release_id) if well_formed(release_id, "release") else None
        if release is None or release["project_id"] != project["id"]:
            raise not_found("发布", release_id)
        return release

    # ---- moving the current release

    def release(self, project: dict, artifact_id: str, caller: Actor, notes: str | None, replaces: str | None) -> dict:
        artifact = self._checkpoint(project, artifact_id)
        self._refuse_unless_replacing(project, replaces)
        return self._request(project, artifact, caller, notes, ReleaseAction.RELEASE)

    def rollback(self, project: dict, release_id: str, caller: Actor, notes: str | None) -> dict:
        earlier = self.get(project, release_id)
        if earlier["state"] not in (ReleaseState.SUPERSEDED, ReleaseState.WITHDRAWN):
            raise conflict(f"发布 #{earlier['number']} 的状态是{earlier['state']}，只能回滚到已被取代或已撤销的发布")
        artifact = artifact_store.get(self.db, earlier["artifact_id"])
        if artifact is None and earlier["frozen_path"] is None:
            raise conflict(f"发布 #{earlier['number']} 没有冻结副本，它的运行也已删除，不能回滚到它")
        artifact = artifact or _gone_artifact(earlier)
        return self._request(project, artifact, caller, notes, ReleaseAction.ROLLBACK, frozen_from=earlier)

    def _request(
        self,
        project: dict,
        artifact: dict,
        caller: Actor,
        notes: str | None,
        action: str,
        frozen_from: dict | None = None,
    ) -> dict:
        release_id = new_id("release")
        if frozen_from is not None and frozen_from["frozen_path"] is not None:
            frozen_path, digests = self.verified_copy(frozen_from)
            note = None
        else:
            frozen_path, digests, note = self._freeze(project, artifact, release_id)
        run = run_store.get(self.db, artifact["run_id"])
        if run is None:
            manifest = frozen_from["manifest"]  # the run is gone: what was recorded when it was released
        else:
            manifest = release_manifest.manifest(self.db, self.root_url, artifact, self.dataset_roots)
        pending = bool(project.get("release_approval"))
        with self.db.writing():
            release = {
                "id": release_id,
                "project_id": project["id"],
                "number": release_store.next_number(self.db, project["id"]),
                "action": action.value,
                "artifact_id": artifact["id"],
                "run_id": artifact["run_id"],
                "run_name": run["name"] if run else (frozen_from or {}).get("run_name"),
                "artifact_name": artifact["name"],
                "step": artifact["step"],
                "notes": notes,
                "requested_by": caller.user,
                "requested_at": utc_now(),
                "frozen_path": frozen_path,
                "frozen_note": note,
                "checksums": digests,
                "manifest": manifest,
            }
            if pending:
                release_store.insert_pending(self.db, release)
            else:
                release_store.make_current(self.db, release, release["requested_at"], caller.user)
        if not pending:
            self._became_current(release_id)
        verb = "申请发布" if pending else action.value
        details = f"#{release['number']} {release['run_name']} 的 {artifact['name']}：{notes or '（无备注）'}"
        auth_store.record(self.db, caller.user, verb, project["id"], artifact["run_id"], artifact["name"], details)
        return self.shown(release_store.get(self.db, release_id))

    def approve(self, project: dict, release_id: str, caller: Actor, notes: str | None) -> dict:
        release = self._pending(project, release_id)
        if release["requested_by"] == caller.user:
            raise Refusal(403, f"发布 #{release['number']} 须由申请人 {caller.user} 以外的另一位项目成员批准")
        if not can_work_on(self.db, caller, project):
            raise Refusal(403, f"{caller.user} 不是项目成员，不能批准发布")
        self.verified_copy(release)
        with self.db.writing():
            release = self._pending(project, release_id)
            now = utc_now()
            decided = {"decided_by": caller.user, "decided_at": now, "decision_notes": notes}
            release_store.make_current(self.db, release, now, caller.user, decided)
        self._became_current(release_id)
        what = f"{release['run_name']} 的 {release['artifact_name']}"
        details = f"#{release['number']} {what}，申请人 {release['requested_by']}"
        auth_store.record(
            self.db, caller.user, "批准发布", project["id"], release["run_id"], release["artifact_name"], details
        )
        return self.shown(release_store.get(self.db, release_id))

    def reject(self, project: dict, release_id: str, caller: Actor, notes: str | None) -> dict:
        if not can_work_on(self.db, caller, project):
            raise Refusal(403, f"{caller.user} 不是项目成员，不能拒绝发布")
        with self.db.writing():
            release = self._pending(project, release_id)
            decided = {"decided_by": caller.user, "decided_at": utc_now(), "decision_notes": notes}
            release_store.decide(self.db, release_id, ReleaseState.REJECTED.value, decided)
        details = f"#{release['number']} {release['artifact_name']}：{notes or '（无说明）'}"
        auth_store.record(
            self.db, caller.user, "拒绝发布", project["id"], release["run_id"], release["artifact_name"], details
        )
        return self.shown(release_store.get(self.db, release_id))

    def withdraw(self, project: dict, caller: Actor, notes: str | None) -> dict:
        """No current release any more (admins only): the release is kept, frozen copy and all, as 已撤销."""
        if not caller.is_admin:
            raise Refusal(403, f"撤销发布只有管理员可以操作，{caller.user} 不是管理员")
        with self.db.writing():
            current = release_store.current(self.db, project["id"])
            if current is None:
                raise conflict(f"项目 {project['id']} 没有当前发布，无需撤销")
            note = f"撤销发布：{notes}" if notes else "撤销发布"
            release_store.withdraw(self.db, current, utc_now(), caller.user, note)
        details = f"#{current['number']} {current['run_name']} 的 {current['artifact_name']}：{notes or '（无说明）'}"
        auth_store.record(
            self.db, caller.user, "撤销发布", project["id"], current["run_id"], current["artifact_name"], details
        )
        return self.shown(release_store.get(self.db, current["id"]))

    # ---- helpers

    def _became_current(self, release_id: str) -> None:
        release = release_store.get(self.db, release_id)
        for listener in self.listeners:
            listener(release)  # notifications only take note: nothing here can fail the release

    def _checkpoint(self, project: dict, artifact_id: str) -> dict:
        artifact = artifact_store.get(self.db, artifact_id) if well_formed(artifact_id, *ARTIFACT_KINDS) else None
        if artifact is None or artifact["project_id"] != project["id"]:
            raise not_found(f"项目 {project['id']} 的工件", artifact_id)
        if artifact["type"] != ArtifactType.CHECKPOINT.value:
            raise unprocessable(f"工件 {artifact_id} 的类型是 {artifact['type']}，只能发布检查点", "artifact_id")
        return artifact

    def _refuse_unless_replacing(self, project: dict, replaces: str | None) -> None:
        current = release_store.current(self.db, project["id"])
        current_id = current["artifact_id"] if current else None
        if replaces is not None and replaces != current_id:
            now = f"{current['run_name']} 的 {current['artifact_name']}（{current_id}）" if current else "没有当前发布"
            raise conflict(f"replaces：确认要取代的是 {replaces}，但项目的当前发布已是 {now}；请刷新后重新确认")

    def _pending(self, project: dict, release_id: str) -> dict:
        release = self.get(project, release_id)
        if release["state"] != ReleaseState.PENDING:
            raise conflict(f"发布 #{release['number']} 的状态是{release['state']}，不在等待批准")
        return release

    def _freeze(self, project: dict, artifact: dict, release_id: str) -> tuple[str | None, dict | None, str | None]:
        """Check the checkpoint's files, copy them into the release folder and check the copy; returns its URL, the
        SHA-256 of each file, and why nothing was frozen. A checkpoint whose SHA-256 was recorded as it was written
        is released only with a verified frozen copy; one registered without checksums (by hand, or before ltm
        kept them) is frozen when the API can read its files and otherwise released as it is, saying why."""
        integrity.verify(self.db, self.root_url, artifact)
        target = artifact_paths.release_folder(self.root_url, project["id"], release_id)
        try:
            source = artifact_paths.checked(artifact["path"], self.root_url, project["id"], artifact["run_id"])
            fs = source.filesystem()
            destination = posixpath.join(target.path, posixpath.basename(source.path))
            if fs.isdir(source.path):
                fs.copy(source.path, destination, recursive=True)
            else:
                fs.makedirs(target.path, exist_ok=True)
                fs.copy(source.path, destination)
            digests = checksums.of_location(fs, destination)
        except artifact_paths.OutsideRunFolder as exc:
            raise conflict(f"检查点 {artifact['name']} 的文件不在它所属运行的目录中，不能发布：{exc}") from None
        except (OSError, ImportError, ValueError) as exc:
            _discard(target)
            if artifact["checksums"] is not None:
                raise Refusal(503, f"无法把检查点 {artifact['name']} 冻结复制到发布目录：{exc}") from None
            return None, None, f"API 无法读取检查点的文件，未冻结副本（{type(exc).__name__}：{exc}）"
        recorded = artifact["checksums"]
        if recorded is not None and checksums.differences(recorded, digests):
            _discard(target)
            raise Refusal(503, f"检查点 {artifact['name']} 的冻结副本与写入时的 SHA-256 不一致，已放弃这次发布，请重试")
        return artifact_paths.Location(target.protocol, destination).url, digests, None

    def verified_copy(self, release: dict) -> tuple[str | None, dict[str, str] | None]:
        """A release's frozen copy, checked against the SHA-256 taken when it was frozen (nothing to check for a
        release without one)."""
        if release["frozen_path"] is None:
            return None, None
        location = artifact_paths.locate(release["frozen_path"])
        try:
            found = checksums.of_location(location.filesystem(), location.path)
        except FileNotFoundError:
            raise conflict(f"发布 #{release['number']} 的冻结副本已不存在（{release['frozen_path']}）") from None
        problems = checksums.differences(release["checksums"] or {}, found)
        if problems:
            raise conflict(f"发布 #{release['number']} 的冻结副本已损坏：{'；'.join(problems)}")
        return release["frozen_path"], release["checksums"]


def _discard(folder: artifact_paths.Location) -> None:
    """A partial frozen copy goes; one that cannot even be reached was never written."""
    try:
        folder.remove()
    except (OSError, ImportError, ValueError):
        pass


def _gone_artifact(release: dict) -> dict:
    """The checkpoint of an earlier release whose run was deleted since: its frozen copy still stands for it."""
    return {
        "id": release["artifact_id"],
        "run_id": release["run_id"],
        "name": release["artifact_name"],
        "step": release["step"],
    }
