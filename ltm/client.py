"""Typed SDK over the REST API; `Client.local()` talks to the same app served in-process (ltm.api.embedded)."""

import functools
import json
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
from pydantic import TypeAdapter

from ltm import arrow_batches, models
from ltm.settings import Settings


class ApiError(Exception):
    def __init__(self, status_code: int, detail: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.retry_after = retry_after  # seconds the API asked the caller to wait (Retry-After), if it did


SERVER_ENTRY_POINT_GROUP = "ltm.servers"


def _embedded_http(home: Path) -> httpx.Client:
    """The in-process server, found by entry point so the SDK never imports the server it talks to."""
    servers = entry_points(group=SERVER_ENTRY_POINT_GROUP, name="embedded")
    if not servers:
        raise RuntimeError("Client.local() 需要安装 ltm 服务端（ltm.servers 入口点 embedded）")
    return next(iter(servers)).load()(home)


def _drop_none(params: dict) -> dict:
    return {k: v for k, v in params.items() if v is not None}


class Client:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
        token: str | None = None,
    ) -> None:
        self._owns_http = http is None
        self.http = http or httpx.Client(base_url=base_url, timeout=timeout)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = str(self.http.base_url)

    @classmethod
    def local(cls, home: str | Path | None = None) -> "Client":
        return cls(http=_embedded_http(Path(home) if home else Settings().home))

    @classmethod
    def from_env(cls) -> "Client":
        settings = Settings()
        return cls(settings.api_url, token=settings.token) if settings.api_url else cls.local(settings.home)

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self.headers)
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, str(detail), _retry_after(response))
        return response

    def _get(self, model, path: str, **params: Any):
        return _parse(model, self.request("GET", path, params=_drop_none(params)).json())

    def _send(self, method: str, model, path: str, body: Any = None, **params: Any):
        response = self.request(method, path, json=body, params=_drop_none(params))
        return _parse(model, response.json())

    # Projects

    def create_project(
        self, name: str, owner: str | None = None, visibility: str = "团队可见", **fields: Any
    ) -> models.Project:
        """`owner` may be left out when the API authenticates (the caller owns it); `visibility` 团队可见 or 私有."""
        if owner is not None:
            fields["owner"] = owner
        body = models.ProjectCreate(name=name, visibility=visibility, **fields).model_dump(
            mode="json", exclude_unset=True
        )
        return self._send("POST", models.Project, "/projects", body)

    def list_projects(
        self, owner: str | None = None, status: str | None = None, tag: str | None = None, q: str | None = None
    ) -> list[models.ProjectListItem]:
        return self._get(list[models.ProjectListItem], "/projects", owner=owner, status=status, tag=tag, q=q)

    def get_project(self, project_id: str, runs: bool = True) -> models.Project:
        """With `runs=False` the project comes without its runs list (use `search_runs` for pages of them)."""
        if runs:
            return self._get(models.Project, f"/projects/{_segment(project_id)}")
        return self._get(models.Project, f"/projects/{_segment(project_id)}", runs="false")

    def update_project(self, project_id: str, **changes: Any) -> models.Project:
        body = models.ProjectUpdate(**changes).model_dump(mode="json", exclude_unset=True)
        return self._send("PATCH", models.Project, f"/projects/{_segment(project_id)}", body)

    def list_versions(self, project_id: str) -> list[models.ProjectVersion]:
        return self._get(list[models.ProjectVersion], f"/projects/{_segment(project_id)}/versions")

    # Runs

    def create_run(self, project_id: str, model: str, dataset: str, **fields: Any) -> models.Run:
        body = models.RunCreate(model=model, dataset=dataset, **fields).model_dump(mode="json", exclude_none=True)
        return self._send("POST", models.Run, f"/projects/{_segment(project_id)}/runs", body)

    def preview_run(self, project_id: str, **fields: Any) -> models.RunPreview:
        """What `create_run(project_id, **fields)` would run (trainer, each hyperparameter with its value and
        source, resources), storing nothing; model and dataset may be left out. A hyperparameter set to None
        removes the project default of that name."""
        body = models.RunDraft(**fields).model_dump(mode="json", exclude_none=True)
        return self._send("POST", models.RunPreview, f"/projects/{_segment(project_id)}/runs/preview", body)

    def list_runs(self, project_id: str) -> list[models.RunOverview]:
        return self._get(list[models.RunOverview], f"/projects/{_segment(project_id)}/runs")

    def search_runs(
        self,
        project_id: str,
        status: list[str] | None = None,
        q: str | None = None,
        hyperparameters: dict[str, Any] | None = None,
        sort: str = "created_at",
        limit: int | None = 50,
        offset: int = 0,
        tag: str | None = None,
        parent: str | None = None,
    ) -> models.RunPage:
        """One page of a project's runs: filtered by status, name and hyperparameter values, sorted by a column or
        `metric:<name>[:last|min|max]` (`-` first for descending), with the number that match in all. `tag` keeps runs
        with a checkpoint tagged 候选, 发布 or 归档; `parent` keeps the runs resumed from that run."""
        hp = [
            f"{key}={json.dumps(value) if not isinstance(value, str) else value}"
            for key, value in (hyperparameters or {}).items()
        ]
        params = _drop_none(
            {
                "status": status,
                "q": q,
                "hp": hp or None,
                "tag": tag,
                "parent": parent,
                "sort": sort,
                "limit": limit,
                "offset": offset,
            }
        )
        response = self.request("GET", f"/projects/{_segment(project_id)}/runs", params=params)
        items = _parse(list[models.RunOverview], response.json())
        return models.RunPage(items=items, total=int(response.headers["X-Total-Count"]))

    def get_run(self, project_id: str, run_id: str) -> models.Run:
        return self._get(models.Run, f"/projects/{_segment(project_id)}/runs/{_segment(run_id)}")

    def find_run(self, run_id: str) -> models.Run:
        return self._get(models.Run, f"/runs/{_segment(run_id)}")

    def cancel_run(self, project_id: str, run_id: str) -> models.Run:
        return self._send("POST", models.Run, f"/projects/{_segment(project_id)}/runs/{_segment(run_id)}/cancel")

    def resume_run(self, project_id: str, run_id: str, source_artifact_id: str, **overrides: Any) -> models.Run:
        body = models.RunResume(**overrides).model_dump(mode="json", exclude_none=True)
        return self._send(
            "POST",
            models.Run,
            f"/projects/{_segment(project_id)}/runs/{_segment(run_id)}/resume",
            body,
            source_artifact_id=source_artifact_id,
        )

    def resume_fidelity(self, project_id: str, run_id: str) -> models.ResumeFidelity:
        """A resumed run compared with its parent at every step both trained after the checkpoint: 一致, 不一致 (the
        first differing point), 无重叠, 不是恢复的运行 or 原运行已删除, with the environment facts that differ."""
        return self._get(models.ResumeFidelity, f"/projects/{_segment(project_id)}/runs/{_segment(run_id)}/fidelity")

    def report(self, project_id: str, run_id: str, **values: Any) -> models.Run:
        body = models.RunUpdate(**values).model_dump(mode="json", exclude_unset=True)
        return self._send("PATCH", models.Run, f"/projects/{_segment(project_id)}/runs/{_segment(run_id)}", body)

    # Sweeps

    def create_sweep(
        self,
        project_id: str,
        name: str,
        template: dict,
        space: dict,
        objective: dict,
        max_trials: int,
        **fields: Any,
    ) -> models.Sweep:
        """A search over `template` (a create-run body); `space` maps hyperparameters to {"type": "float" | "int",
        "low", "high", "log"} or {"type": "choice", "values": [...]}; `objective` is {"metric", "direction"}.
        Further fields: sampler, pruner, parallelism, reduction_factor, min_epochs, seed."""
        body = models.SweepCreate(
            name=name, template=template, space=space, objective=objective, max_trials=max_trials, **fields
        ).model_dump(mode="json", exclude_none=True)
        return self._send("POST", models.Sweep, f"/projects/{_segment(project_id)}/sweeps", body)

    def list_sweeps(self, project_id: str) -> list[models.SweepSummary]:
        return self._get(list[models.SweepSummary], f"/projects/{_segment(project_id)}/sweeps")

    def get_sweep(self, project_id: str, sweep_id: str) -> models.Sweep:
        return self._get(models.Sweep, self._sweep_path(project_id, sweep_id))

    def cancel_sweep(self, project_id: str, sweep_id: str) -> models.Sweep:
        """Start no more trials and cancel the active ones, each keeping its checkpoint."""
        return self._send("POST", models.Sweep, self._sweep_path(project_id, sweep_id) + "/cancel")

    def update_sweep(self, project_id: str, sweep_id: str, **values: Any) -> models.Sweep:
        body = models.SweepUpdate(**values).model_dump(mode="json", exclude_unset=True)
        return self._send("PATCH", models.Sweep, self._sweep_path(project_id, sweep_id), body)

    def read_sweep_journal(self, project_id: str, sweep_id: str, start: int = 0) -> models.JournalEntries:
        return self._get(models.JournalEntries, self._sweep_path(project_id, sweep_id) + "/journal", start=start)

    def append_sweep_journal(self, project_id: str, sweep_id: str, entries: list[dict]) -> models.JournalPosition:
        body = models.JournalAppend(entries=entries).model_dump(mode="json")
        return self._send("POST", models.JournalPosition, self._sweep_path(project_id, sweep_id) + "/journal", body)

    def start_trial(self, project_id: str, sweep_id: str, number: int, params: dict) -> models.Run:
        """The first run of trial `number` (the existing one when asked again)."""
        body = models.TrialCreate(number=number, params=params).model_dump(mode="json")
        return self._send("POST", models.Run, self._sweep_path(project_id, sweep_id) + "/trials", body)

    def promote_trial(self, project_id: str, sweep_id: str, number: int, rung: int) -> models.Run:
        """Trial `number`'s run for `rung`, resumed from its previous rung's checkpoint (the existing one when
        asked again)."""
        body = models.TrialPromote(rung=rung).model_dump(mode="json")
        path = f"{self._sweep_path(project_id, sweep_id)}/trials/{number}/promote"
        return self._send("POST", models.Run, path, body)

    def end_trial(
        self,
        project_id: str,
        sweep_id: str,
        number: int,
        state: str,
        objective: float | None = None,
        reason: str | None = None,
    ) -> models.TrialOutcome:
        body = models.TrialUpdate(state=state, objective=objective, reason=reason).model_dump(mode="json")
        path = f"{self._sweep_path(project_id, sweep_id)}/trials/{number}"
        return self._send("PATCH", models.TrialOutcome, path, body)

    @staticmethod
    def _sweep_path(project_id: str, sweep_id: str) -> str:
        return f"/projects/{_segment(project_id)}/sweeps/{_segment(sweep_id)}"

    # Logs and metrics

    def get_logs(
        self,
        project_id: str,
        run_id: str,
        page: int = 1,
        page_size: int = 50,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        level: str | None = None,
        q: str | None = None,
        order: str | None = None,
    ) -> models.LogPage:
        """`order="desc"` puts the newest lines first (page 1 = the latest lines)."""
        return self._get(
            models.LogPage,
            f"/projects/{_segment(project_id)}/runs/{_segment(run_id)}/logs",
            page=page,
            page_size=page_size,
            start_time=_iso(start_time),
            end_time=_iso(end_time),
            level=level,
            q=q,
            order=order,
        )

    def get_metrics(
        self, project_id: str, run_id: str, names: list[str] | None = None, max_points: int = 1000
    ) -> models.MetricSeriesList:
        return self._get(
            models.MetricSeriesList,
            f"/projects/{_segment(project_id)}/runs/{_segment(run_id)}/metrics",
            names=",".join(names) if names else None,
            max_points=max_points,
        )

    def send_logs(self, project_id: str, run_id: str, batch: models.LogBatch) -> models.IngestResult:
        return self.send_table(project_id, run_id, "logs", batch.batch_id, arrow_batches.lines_table(batch.lines))

    def send_metrics(self, project_id: str, run_id: str, batch: models.MetricBatch) -> models.IngestResult:
        return self.send_table(project_id, run_id, "metrics", batch.batch_id, arrow_batches.points_table(batch.points))

    def send_table(self, project_id: str, run_id: str, kind: str, batch_id: str, table) -> models.IngestResult:
        """Send a log or metric batch built with `ltm.arrow_batches` as one Arrow stream."""
        response = self.request(
            "POST",
            f"/projects/{_segment(project_id)}/runs/{_segment(run_id)}/{kind}",
            content=arrow_batches.encode(table, batch_id),
            headers={**self.headers, "Content-Type": arrow_batches.MEDIA_TYPE},
        )
        return _parse(models.IngestResult, response.json())

    def send_report(
        self, project_id: str, run_id: str, progress: dict, logs: bytes | None = None, metrics: bytes | None = None
    ) -> models.ReportResult:
        """A log batch, a metric batch (Arrow streams from `arrow_batches.encode`, or None) and progress fields in
        one request, stored together or not at all; the answer carries the run's status."""
        response = self.request(
            "POST",
            f"/projects/{_segment(project_id)}/runs/{_segment(run_id)}/report",
            content=arrow_batches.encode_report(progress, logs, metrics),
            headers={**self.headers, "Content-Type": arrow_batches.REPORT_MEDIA_TYPE},
        )
        return _parse(models.ReportResult, response.json())

    # Artifacts

    def list_artifacts(self, project_id: str, run_id: str) -> list[models.Artifact]:
        return self._get(
            models.ArtifactList, f"/projects/{_segment(project_id)}/runs/{_segment(run_id)}/artifacts"
        ).items

    def register_artifact(
        self,
        project_id: str,
        run_id: str,
        type: str,
        name: str,
        path: str,
        size_bytes: int | None = None,
        step: int | None = None,
        checksums: dict[str, str] | None = None,
    ) -> models.Artifact:
        """`checksums`: the SHA-256 of each file of a checkpoint as it was written (see ltm.checksums)."""
        body = models.ArtifactCreate(
            type=type, name=name, path=path, size_bytes=size_bytes, step=step, checksums=checksums
        )
        return self._send(
            "POST",
            models.Artifact,
            f"/projects/{_segment(project_id)}/runs/{_segment(run_id)}/artifacts",
            body.model_dump(mode="json"),
        )

    def verify_artifact(self, project_id: str, run_id: str, artifact_id: str) -> models.Artifact:
        """Compare a checkpoint's files with the SHA-256 recorded as they were written; ApiError 409 (and the
        checkpoint marked 已损坏) when they differ."""
        path = f"/projects/{_segment(project_id)}/runs/{_segment(run_id)}/artifacts/{_segment(artifact_id)}/verify"
        return self._send("POST", models.Artifact, path)

    def checkpoint_manifest(self, project_id: str, run_id: str, artifact_id: str) -> models.CheckpointManifest:
        """What a checkpoint is and what produced it: its files' SHA-256, the run, its lineage, the dataset
        fingerprint, the environment and the final evaluation metrics (ApiError 422 for another kind of artifact)."""
        path = f"/projects/{_segment(project_id)}/runs/{_segment(run_id)}/artifacts/{_segment(artifact_id)}/manifest"
        return self._get(models.CheckpointManifest, path)

    def tag_artifact(
        self,
        project_id: str,
        run_id: str,
        artifact_id: str,
        tag: str,
        notes: str | None = None,
        replaces: str | None = None,
    ) -> models.Artifact:
        """`replaces`: when tagging 发布, the current release the caller confirmed replacing (409 if it changed)."""
        body = models.TagRequest(tag=tag, notes=notes, replaces=replaces).model_dump(mode="json", exclude_none=True)
        path = f"/projects/{_segment(project_id)}/runs/{_segment(run_id)}/artifacts/{_segment(artifact_id)}/tag"
        return self._send("POST", models.Artifact, path, body)

    def list_releases(self, project_id: str) -> models.ProjectReleases:
        return self._get(models.ProjectReleases, f"/projects/{_segment(project_id)}/releases")

    def create_release(
        self, project_id: str, artifact_id: str, notes: str | None = None, replaces: str | None = None
    ) -> models.Release:
        """Make a checkpoint the project's current release (its files checked and frozen first); when the project
        asks for a second person (release_approval) the release is 待批准 until another member approves it.
        `replaces`: the current release's checkpoint the caller confirmed replacing (ApiError 409 if it changed)."""
        body = models.ReleaseRequest(artifact_id=artifact_id, notes=notes, replaces=replaces)
        path = f"/projects/{_segment(project_id)}/releases"
        return self._send("POST", models.Release, path, body.model_dump(mode="json", exclude_none=True))

    def rollback_release(self, project_id: str, release_id: str, notes: str | None = None) -> models.Release:
        """Make an earlier (superseded or withdrawn) release current again from its frozen copy, as a new 回滚."""
        body = models.RollbackRequest(release_id=release_id, notes=notes).model_dump(mode="json", exclude_none=True)
        return self._send("POST", models.Release, f"/projects/{_segment(project_id)}/releases/rollback", body)

    def approve_release(self, project_id: str, release_id: str, notes: str | None = None) -> models.Release:
        """Approve a pending release (a project member other than the requester); it becomes current."""
        return self._decide_release(project_id, release_id, "approve", notes)

    def reject_release(self, project_id: str, release_id: str, notes: str | None = None) -> models.Release:
        return self._decide_release(project_id, release_id, "reject", notes)

    def _decide_release(self, project_id: str, release_id: str, decision: str, notes: str | None) -> models.Release:
        body = models.ReleaseDecision(notes=notes).model_dump(mode="json", exclude_none=True)
        path = f"/projects/{_segment(project_id)}/releases/{_segment(release_id)}/{decision}"
        return self._send("POST", models.Release, path, body)

    def withdraw_release(self, project_id: str, notes: str | None = None) -> models.Release:
        """Leave the project without a current release (admins only); the release stays in the history as 已撤销."""
        body = models.ReleaseDecision(notes=notes).model_dump(mode="json", exclude_none=True)
        return self._send("POST", models.Release, f"/projects/{_segment(project_id)}/releases/withdraw", body)

    def release_manifest(self, project_id: str, release_id: str) -> models.CheckpointManifest:
        """The manifest recorded when the release was made (it outlives the run); ApiError 409 for a release made
        before releases recorded one."""
        path = f"/projects/{_segment(project_id)}/releases/{_segment(release_id)}/manifest"
        return self._get(models.CheckpointManifest, path)

    def download_release(self, project_id: str, release_id: str, target: str | Path) -> Path:
        """Stream a release's frozen copy (a folder as a tar) to the file `target`, or into the existing folder
        `target` under the name the API gives it; ApiError 409 when the copy no longer matches its SHA-256."""
        target = Path(target)
        path = f"/projects/{_segment(project_id)}/releases/{_segment(release_id)}/download"
        with self.http.stream("GET", path, headers=self.headers) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError(response.status_code, _error_detail(response))
            if target.is_dir():
                disposition = response.headers.get("content-disposition", "")
                target = target / (unquote(disposition.partition("filename*=UTF-8''")[2]) or f"{release_id}.tar")
            with target.open("wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
        return target

    def download_links(self, project_id: str, run_id: str) -> models.DownloadLinks:
        """Short-lived signed download URLs (relative to the API) for every artifact of a run."""
        path = f"/projects/{_segment(project_id)}/runs/{_segment(run_id)}/artifacts/download-links"
        return self._send("POST", models.DownloadLinks, path)

    def download_artifact(
        self, project_id: str, run_id: str, artifact_id: str, target: str | Path, file: str | None = None
    ) -> Path:
        """Stream an artifact to the file `target`: a single file as it is, a folder checkpoint as a tar (or only its
        `file`). The bytes go to `<target>.part` first; a download interrupted before it finished resumes from there
        (an HTTP Range request), unless the artifact changed meanwhile, when it starts over."""
        target = Path(target)
        partial, etag_file = target.with_name(target.name + ".part"), target.with_name(target.name + ".part.etag")
        have = partial.stat().st_size if partial.exists() else 0
        etag = etag_file.read_text() if have and etag_file.exists() else ""
        headers = {**self.headers, **({"Range": f"bytes={have}-", "If-Range": etag} if etag else {})}
        path = f"/projects/{_segment(project_id)}/runs/{_segment(run_id)}/artifacts/{_segment(artifact_id)}/download"
        with self.http.stream("GET", path, params=_drop_none({"file": file}), headers=headers) as response:
            whole = response.headers.get("content-range", "").endswith(f"/{have}")
            if not (response.status_code == 416 and etag and whole):
                if response.status_code >= 400:
                    response.read()
                    raise ApiError(response.status_code, _error_detail(response))
                etag_file.write_text(response.headers.get("etag", ""))
                with partial.open("ab" if response.status_code == 206 else "wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        out.write(chunk)
        partial.replace(target)
        etag_file.unlink(missing_ok=True)
        return target

    def get_webhooks(self, project_id: str) -> models.ProjectWebhooks:
        return self._get(models.ProjectWebhooks, f"/projects/{_segment(project_id)}/webhooks")

    def set_webhooks(self, project_id: str, hooks: list[dict]) -> models.ProjectWebhooks:
        """Replace the project's webhooks with `hooks`, each {"url", "format", "events"} (an empty list: none)."""
        body = models.WebhooksUpdate(hooks=hooks).model_dump(mode="json")
        return self._send("PUT", models.ProjectWebhooks, f"/projects/{_segment(project_id)}/webhooks", body)

    def webhook_deliveries(self, project_id: str, limit: int = 50) -> list[models.WebhookDelivery]:
        """The latest deliveries first: event, url, state (待发送/已送达/失败), attempts, last_error and times."""
        path = f"/projects/{_segment(project_id)}/webhooks/deliveries"
        return self._get(list[models.WebhookDelivery], path, limit=limit)

    def list_trainers(self) -> list[models.TrainerInfo]:
        return self._get(list[models.TrainerInfo], "/trainers")

    # GPU resources

    def register_host(
        self, host: str, devices: list[models.GpuDeviceDeclaration], work_queue: str = "default"
    ) -> models.GpuHost:
        """Register or refresh `host` (a heartbeat): `devices` replaces the device list it registered before."""
        body = models.HostRegistration(work_queue=work_queue, devices=devices).model_dump(mode="json")
        return self._send("PUT", models.GpuHost, f"/hosts/{_segment(host)}", body)

    def remove_host(self, host: str) -> models.GpuHost:
        """Forget `host` and its devices (admin); leases on them end. Answers the host as it was registered."""
        return self._send("DELETE", models.GpuHost, f"/hosts/{_segment(host)}")

    def list_resources(self) -> models.ResourceOverview:
        return self._get(models.ResourceOverview, "/resources")

    def resource_usage(self, group_by: str = "project", since: datetime | None = None) -> models.ResourceUsage:
        """GPU-hours allocated and used, and queue wait, per project, user or GPU type since `since`."""
        return self._get(
            models.ResourceUsage, "/resources/usage", group_by=group_by, since=since.isoformat() if since else None
        )

    # Access control

    def whoami(self) -> models.Identity:
        return self._get(models.Identity, "/whoami")

    def issue_run_token(self, project_id: str, run_id: str) -> models.RunToken:
        """A token scoped to a queued run that the caller (a project member) trains themselves."""
        path = f"/projects/{_segment(project_id)}/runs/{_segment(run_id)}/token"
        return self._send("POST", models.RunToken, path)

    def exchange_launch_code(self, run_id: str, code: str) -> models.RunToken:
        """The run token for a flow the launcher started with `code`; works once, sends no token of its own."""
        response = self.request("POST", f"/runs/{_segment(run_id)}/token", json={"code": code}, headers={})
        return _parse(models.RunToken, response.json())

    def create_token(self, user: str, role: str) -> models.TokenCreated:
        return self._send("POST", models.TokenCreated, "/tokens", {"user": user, "role": role})

    def list_tokens(self) -> list[models.TokenInfo]:
        return self._get(list[models.TokenInfo], "/tokens")

    def revoke_token(self, token_id: str) -> models.TokenInfo:
        return self._send("DELETE", models.TokenInfo, f"/tokens/{_segment(token_id)}")

    def list_members(self, project_id: str) -> models.ProjectMembers:
        return self._get(models.ProjectMembers, f"/projects/{_segment(project_id)}/members")

    def set_members(self, project_id: str, members: list[str]) -> models.ProjectMembers:
        path = f"/projects/{_segment(project_id)}/members"
        return self._send("PUT", models.ProjectMembers, path, {"members": members})

    def audit_trail(self, project_id: str, limit: int = 100) -> list[models.AuditEvent]:
        return self._get(list[models.AuditEvent], f"/projects/{_segment(project_id)}/audit", limit=limit)

    def health(self) -> models.Health:
        return self._get(models.Health, "/health")

    # Data lifecycle

    def get_retention(self, project_id: str) -> models.RetentionPolicy:
        return self._get(models.RetentionPolicy, f"/projects/{_segment(project_id)}/retention")

    def set_retention(self, project_id: str, keep_last: int | None) -> models.RetentionPolicy:
        return self._send(
            "PUT", models.RetentionPolicy, f"/projects/{_segment(project_id)}/retention", {"keep_last": keep_last}
        )

    def retention_preview(self, project_id: str) -> models.RetentionPreview:
        return self._get(models.RetentionPreview, f"/projects/{_segment(project_id)}/retention/preview")

    def delete_artifact(
        self, project_id: str, run_id: str, artifact_id: str, dry_run: bool = True
    ) -> models.ArtifactDeletion:
        path = f"/projects/{_segment(project_id)}/runs/{_segment(run_id)}/artifacts/{_segment(artifact_id)}"
        return self._send("DELETE", models.ArtifactDeletion, path, dry_run=dry_run)

    def delete_run(self, project_id: str, run_id: str, dry_run: bool = True) -> models.DeletionReport:
        path = f"/projects/{_segment(project_id)}/runs/{_segment(run_id)}"
        return self._send("DELETE", models.DeletionReport, path, dry_run=dry_run)

    def delete_project(self, project_id: str, dry_run: bool = True) -> models.DeletionReport:
        return self._send("DELETE", models.DeletionReport, f"/projects/{_segment(project_id)}", dry_run=dry_run)

    def backup(self, target: str | Path) -> models.BackupResult:
        """Export the whole store into `target`, a folder on the API's machine that is missing or empty."""
        response = self.request("POST", "/admin/backup", json={"target": str(target)}, timeout=None)
        return _parse(models.BackupResult, response.json())

    def compact(self) -> models.CompactionResult:
        """Rewrite the store so deleted runs give their space back (sizes before and after, rows per table)."""
        return _parse(models.CompactionResult, self.request("POST", "/admin/compact", timeout=None).json())


def _error_detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


def _segment(item_id: str) -> str:
    """An id as one URL path segment: a '/', '?' or '..' in it cannot reach another endpoint."""
    quoted = quote(item_id, safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@functools.cache
def _adapter(model) -> TypeAdapter:
    return TypeAdapter(model)


def _parse(model, data: Any):
    return _adapter(model).validate_python(data)
