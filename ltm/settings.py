import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SAMPLE_DATASETS = Path(__file__).resolve().parent / "trainers" / "data"


class Settings(BaseSettings):
    """All configuration, read from LTM_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="LTM_")

    home: Path = Field(Path(".ltm"), description="Folder holding the store, artifacts and service state")
    api_url: str | None = Field(None, description="API base URL; unset means the embedded store under home")
    artifact_root: str | None = Field(None, description="fsspec URL for artifacts; default <home>/artifacts")
    auth: bool | None = Field(
        None, description="Require API tokens; unset means on only when listening beyond loopback"
    )
    token: str | None = Field(None, description="API token the SDK, console and flows send (LTM_TOKEN)")
    launch_code: str | None = Field(
        None, description="One-time code a launched flow exchanges for its run token (set by the API's launcher)"
    )
    launch_code_seconds: float = Field(
        600.0, gt=0, description="How long after a run is handed to the launcher its launch code can be exchanged"
    )
    dataset_roots: str | None = Field(
        None,
        description="Comma-separated folders or fsspec URLs runs may read "
        "datasets from; default: the bundled samples and <home>/datasets",
    )
    max_run_memory_gib: float = Field(
        80.0, gt=0, description="Largest training memory one run may need (trainers that estimate it refuse more)"
    )
    backup_root: Path | None = Field(None, description="Folder the API may write backups under; default <home>/backups")
    allowed_hosts: str | None = Field(
        None,
        description="Comma-separated host names or addresses the API answers to besides loopback and the address "
        "it listens on ('*': any); unset: requests that arrived over the network, which always need a token, may "
        "name any host",
    )
    listen_host: str | None = Field(None, description="Address `ltm api --host` listens on (set by the CLI)")
    launcher: str = Field("none", description="'none' (runs wait for a direct flow call) or 'prefect'")
    deployment: str = Field("training-run/ltm-training", description="Prefect deployment that trains a run")
    sweep_deployment: str = Field("sweep-controller/ltm-sweep", description="Prefect deployment that drives a sweep")
    sweep_poll_seconds: float = Field(1.0, gt=0, description="How often a sweep controller looks at its trials")
    sweep_controller_starts: int = Field(
        4,
        ge=1,
        description="How often the API starts a sweep's controller (again after it died) before the sweep fails",
    )
    preemption_grace_seconds: float = Field(
        600.0, ge=0, description="A run preempted (or requeued after preemption) is not preempted again for this long"
    )
    console_url: str = Field("http://127.0.0.1:8501", description="Console address, for links from Prefect")
    prefect_ui_url: str = Field("http://127.0.0.1:4200", description="Prefect UI address, for links from the console")
    cancel_wait_seconds: float = Field(15.0, ge=0, description="How long POST …/cancel waits for the run to stop")
    webhook_retry_seconds: list[float] = Field(
        [5.0, 30.0, 120.0, 600.0],
        max_length=20,
        description="Waits before each retry of a failed webhook delivery (a JSON list in LTM_WEBHOOK_RETRY_SECONDS); "
        "when the last retry fails too, the delivery ends 失败 with its error",
    )
    reconcile_seconds: float = Field(5.0, gt=0, description="How often the API syncs run status with Prefect")
    step_seconds: float = Field(
        0.2, ge=0, description="Simulated seconds per training step unless a run sets step_seconds"
    )
    stale_after_seconds: float = Field(45.0, gt=0, description="A running run silent this long is checked as lost")
    hang_grace_seconds: float = Field(
        120.0,
        gt=0,
        description="How long a run found hung (no new step for its project's hang_minutes) may take to save its "
        "checkpoint and end before the API ends it 失败 and cancels its orchestrator run",
    )
    source_dir: Path | None = Field(
        None, description="Where script runs' code lives on this worker (a run's source is a folder below it)"
    )
    script_stop_grace_seconds: float = Field(
        60.0,
        ge=0,
        description="How long a cancelled script run may take to save its checkpoint and exit before its processes "
        "are terminated (under a Prefect worker at most 20 s after the worker's SIGTERM)",
    )
    gpus: str | None = Field(
        None,
        description="GPUs this host declares instead of reading NVML, e.g. 'A100:4' or 'A100:4,H100:2' "
        "(simulated devices with stable ids); unset: NVML where it is available, else none",
    )
    host_name: str | None = Field(None, description="Name this host registers its GPUs under; default the hostname")
    host_work_queue: str = Field(
        "default", description="Prefect work queue (in the ltm-process pool) whose worker runs this host's flows"
    )
    host_report_seconds: float = Field(5.0, gt=0, description="How often `ltm host` reports this host's GPUs")
    host_offline_seconds: float = Field(
        30.0, gt=0, description="A GPU host that has not reported for this long is shown offline"
    )
    ingest_queue_rows: int = Field(
        1_000_000,
        ge=1,
        description="Log lines and metric points that may wait for the store; beyond it ingest answers 503 with "
        "Retry-After and the SDK's reporters wait and resend",
    )
    db_memory_limit: str = Field(
        "1GB",
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="Most memory DuckDB's buffer pool keeps in the API process (DuckDB's default is 80 % of RAM, "
        "held after a burst of work); larger sorts and aggregations spill to disk beyond it",
    )

    @property
    def host_label(self) -> str:
        return self.host_name or socket.gethostname()

    @property
    def db_path(self) -> Path:
        return self.home / "ltm.duckdb"

    @property
    def backup_root_path(self) -> Path:
        return self.backup_root or self.home / "backups"

    @property
    def dataset_root_urls(self) -> list[str]:
        if self.dataset_roots is not None:
            return [root.strip() for root in self.dataset_roots.split(",") if root.strip()]
        return [str(SAMPLE_DATASETS), str((self.home / "datasets").resolve())]

    @property
    def allowed_host_names(self) -> frozenset[str] | None:
        """The configured host names, lower-case; None when unset."""
        if self.allowed_hosts is None:
            return None
        return frozenset(host.strip().lower().strip("[]") for host in self.allowed_hosts.split(",") if host.strip())

    @property
    def artifact_root_url(self) -> str:
        return self.artifact_root or str((self.home / "artifacts").resolve())
