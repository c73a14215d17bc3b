"""The wire contract: the seed's JSON shapes plus the endpoints the flows and console need."""

import json
import math
import re
import shlex
import unicodedata
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from ltm.limits import (
    MAX_BATCH_ID_LENGTH,
    MAX_BATCH_ITEMS,
    MAX_CHECKSUM_FILES,
    MAX_HOST_DEVICES,
    MAX_HOST_NAME_LENGTH,
    MAX_JSON_DEPTH,
    MAX_JSON_OBJECT_BYTES,
    MAX_LOG_MESSAGE,
    MAX_MEMBERS,
    MAX_NAME_LENGTH,
    MAX_PATH_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    MAX_TEXT_LENGTH,
    MAX_TRAINER_NAME_LENGTH,
)
from ltm.vocabulary import (
    ACTIVE_RUN_STATUSES,
    TERMINAL_RUN_STATUSES,
    USER_ROLES,
    ArtifactType,
    Direction,
    LogLevel,
    ProjectStatus,
    Pruner,
    ReleaseAction,
    ReleaseState,
    Role,
    RunStatus,
    Sampler,
    SweepStatus,
    TagValue,
    TrialState,
    UsageGrouping,
    Visibility,
)

USER_ROLE_NAMES = tuple(role.value for role in USER_ROLES)

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "MAX_BATCH_ITEMS",
    "MAX_JSON_DEPTH",
    "MAX_JSON_OBJECT_BYTES",
    "MAX_LOG_MESSAGE",
    "TERMINAL_RUN_STATUSES",
    "ArtifactType",
    "Direction",
    "LogLevel",
    "ProjectStatus",
    "Pruner",
    "ReleaseAction",
    "ReleaseState",
    "Role",
    "RunStatus",
    "Sampler",
    "SweepStatus",
    "TagValue",
    "TrialState",
    "UsageGrouping",
    "Visibility",
]


def _strip_nonempty(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("不能为空")
    return value


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON value, counted no further than `limit` + 1."""
    if limit < 0 or not isinstance(value, (dict, list)):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(child, limit - 1) for child in children), default=0)


def _bounded_json_object(value: dict[str, Any]) -> dict[str, Any]:
    if _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON 嵌套层数不能超过 {MAX_JSON_DEPTH}")
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise ValueError("不能包含 NaN 或 Infinity") from None
    try:
        size = len(encoded.encode())
    except UnicodeEncodeError:
        raise ValueError("不能包含无效的 Unicode 字符（单独的代理项）") from None
    if size > MAX_JSON_OBJECT_BYTES:
        raise ValueError(f"JSON 对象过大（上限 {MAX_JSON_OBJECT_BYTES // 1024} KB）")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("必须是有限数值")
    return value


def _utc_representable(value: datetime) -> datetime:
    """The store keeps naive UTC: a time whose UTC equivalent falls outside years 1–9999 cannot be stored."""
    if value.tzinfo is not None:
        try:
            value.astimezone(timezone.utc)
        except OverflowError:
            raise ValueError("换算为 UTC 后超出可表示的时间范围（公元 1–9999 年）") from None
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("不能包含 NUL 字符")
    return value


INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})  # controls, zero-width and bidi formats, separators


def nfkc(value: Any) -> Any:
    """One spelling per name: full-width letters, ligatures and composed/decomposed accents become the same text."""
    return unicodedata.normalize("NFKC", value).strip() if isinstance(value, str) else value


def _visible(value: str) -> str:
    for char in value:
        if unicodedata.category(char) in INVISIBLE_CATEGORIES:
            raise ValueError(f"不能包含控制字符或不可见的格式字符（U+{ord(char):04X}）")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"不是有效的正则表达式：{exc}") from None
    return value


def _entrypoint(value: str) -> str:
    """A command line starting with `python` (the worker's own interpreter runs it)."""
    value = value.strip()
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"无法按 shell 规则拆分（{exc}），请检查引号") from None
    if not words or words[0] not in ("python", "python3"):
        raise ValueError("必须以 python 开头，例如 python train.py --epochs 3（由 worker 自己的解释器运行）")
    if len(words) < 2:
        raise ValueError("python 之后需要脚本或 -m 模块，例如 python train.py")
    return value


def _source_folder(value: str) -> str:
    """A relative folder below LTM_SOURCE_DIR, written with /."""
    value = value.strip()
    parts = [part for part in value.split("/") if part not in ("", ".")]
    if value.startswith("/") or "\\" in value or any(part == ".." for part in parts) or ":" in value:
        raise ValueError("必须是 LTM_SOURCE_DIR 下的相对目录（用 / 分隔，不能含 ..、反斜杠或冒号）")
    return "/".join(parts)


NonBlank = Field(json_schema_extra={"pattern": r"\S"})  # documents what _strip_nonempty enforces
# Short text people type and others read (names, owners, tags): NFKC-normalised and stripped before the length
# check (a BeforeValidator runs before the constraint listed ahead of it), and free of characters that do not
# show. Long text (descriptions, log lines) is stored as sent.
Name = Annotated[
    str,
    StringConstraints(max_length=MAX_NAME_LENGTH),
    BeforeValidator(nfkc),
    AfterValidator(_visible),
    AfterValidator(_strip_nonempty),
    NonBlank,
]
ShortText = Annotated[
    str, StringConstraints(max_length=MAX_NAME_LENGTH), BeforeValidator(nfkc), AfterValidator(_visible)
]
LongText = Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH)]
Tag = Annotated[
    str,
    StringConstraints(max_length=MAX_TAG_LENGTH),
    BeforeValidator(nfkc),
    AfterValidator(_visible),
    AfterValidator(_strip_nonempty),
    NonBlank,
]
JsonObject = Annotated[dict[str, Any], AfterValidator(_bounded_json_object)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
TrainerName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TRAINER_NAME_LENGTH)]
BatchId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_BATCH_ID_LENGTH)]
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]  # fits the BIGINT columns
Priority = Annotated[int, Field(ge=-100, le=100)]
Entrypoint = Annotated[str, StringConstraints(max_length=MAX_PATH_LENGTH), AfterValidator(_entrypoint)]
SourceFolder = Annotated[str, StringConstraints(max_length=MAX_PATH_LENGTH), AfterValidator(_source_folder)]
ProcessCount = Annotated[int, Field(ge=1, le=64)]
Timestamp = Annotated[datetime, AfterValidator(_utc_representable)]


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Projects


class MetricThreshold(Contract):
    """A metric crossing a bound sends metric.threshold (once per run and rule)."""

    metric: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH), AfterValidator(_strip_nonempty)]
    above: Annotated[float, AfterValidator(_finite)] | None = Field(None, description="高于这个值时通知")
    below: Annotated[float, AfterValidator(_finite)] | None = Field(None, description="低于这个值时通知")

    @model_validator(mode="after")
    def _one_bound(self) -> "MetricThreshold":
        if self.above is None and self.below is None:
            raise ValueError("above 与 below 至少给出一个")
        return self


class LogRule(Contract):
    """A regular expression over a failed run's log lines, and what a match means for automatic restarts."""

    pattern: Annotated[str, StringConstraints(min_length=1, max_length=500), AfterValidator(_regex)]
    action: Annotated[
        str, Field(pattern="^(不重试|标注)$", description="不重试：匹配时不自动重试；标注：只给运行加标签")
    ]
    label: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TAG_LENGTH)] = Field(
        description="匹配时加在运行上的标签，例如 显存不足"
    )


MAX_PROJECT_RULES = 50
Restarts = Annotated[int, Field(ge=0, le=20)]
HangMinutes = Annotated[float, Field(gt=0, le=10_080)]


class ProjectCreate(Contract):
    name: Name
    description: LongText | None = None
    objective: LongText | None = None
    task_type: ShortText | None = None
    base_model: ShortText | None = None
    owner: Name = Field(
        None,
        description="负责人；开启认证时可省略（默认为调用者本人），只有管理员可以指定他人。未开启认证时必填",
    )
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    default_hyperparameters: JsonObject = Field(default_factory=dict)
    default_trainer: TrainerName | None = None
    visibility: Visibility = Field(
        Visibility.TEAM, description="团队可见：所有令牌可读；私有：只有负责人、项目成员和管理员可见"
    )
    default_priority: Priority = Field(0, description="项目中运行的默认优先级（-100–100，越大越先分配 GPU）")
    release_approval: bool = Field(False, description="发布须经第二人批准（申请后为待批准，另一位成员批准后才生效）")
    preemption: bool = Field(False, description="允许本项目优先级更高的等待运行抢占低优先级运行的 GPU（负责人设置）")
    max_restarts: Restarts = Field(0, description="失败的运行从最新检查点自动重试的次数（0–20）")
    hang_minutes: HangMinutes | None = Field(None, description="进程仍在但这么多分钟没有新步数即判为卡住；为空不检测")
    metric_thresholds: list[MetricThreshold] = Field(default_factory=list, max_length=MAX_PROJECT_RULES)
    log_rules: list[LogRule] = Field(
        default_factory=list,
        max_length=MAX_PROJECT_RULES,
        description="失败日志规则；显存不足（CUDA out of memory）规则总是生效",
    )


class ProjectUpdate(Contract):
    name: Name = Field(None, description="新的项目名称（不能与其他项目重名）；省略表示不变")
    owner: Name = Field(None, description="新的负责人（开启认证时只有负责人本人或管理员可以修改）；省略表示不变")
    description: LongText | None = None
    objective: LongText | None = None
    task_type: ShortText | None = None
    base_model: ShortText | None = None
    tags: list[Tag] | None = Field(None, max_length=MAX_TAGS)
    default_hyperparameters: JsonObject | None = None
    default_trainer: TrainerName | None = None
    status: Annotated[str, Field(pattern="^(已归档|未归档)$")] = Field(
        None, description="`已归档` 归档项目，`未归档` 恢复项目；省略表示不变"
    )
    visibility: Visibility = Field(None, description="团队可见 或 私有（只有负责人和管理员可以修改）；省略表示不变")
    default_priority: Priority = Field(None, description="运行的默认优先级（-100–100）；省略表示不变")
    release_approval: bool = Field(
        None, description="发布是否须经第二人批准（只有负责人或管理员可以修改）；省略表示不变"
    )
    preemption: bool = Field(None, description="是否允许抢占（只有负责人或管理员可以修改）；省略表示不变")
    max_restarts: Restarts = Field(None, description="失败后自动重试的次数；省略表示不变")
    hang_minutes: HangMinutes | None = Field(None, description="卡住判定的分钟数；null 表示不检测")
    metric_thresholds: list[MetricThreshold] | None = Field(None, max_length=MAX_PROJECT_RULES)
    log_rules: list[LogRule] | None = Field(None, max_length=MAX_PROJECT_RULES)


class FieldChange(BaseModel):
    old: Any = None
    new: Any = None


class ProjectVersion(BaseModel):
    version: int
    created_at: datetime
    changes: dict[str, FieldChange]
    snapshot: dict[str, Any]


class RunSummary(BaseModel):
    id: str
    name: str
    status: RunStatus
    progress: float
    created_at: datetime
    started_at: datetime | None = None
    updated_at: datetime | None = None


class ProjectListItem(BaseModel):
    id: str
    name: str
    status: ProjectStatus
    owner: str
    created_at: datetime
    updated_at: datetime
    task_type: str | None = None
    tags: list[str]
    run_count: int
    visibility: Visibility = Visibility.TEAM


class Project(BaseModel):
    id: str
    name: str
    description: str | None = None
    status: ProjectStatus
    objective: str | None = None
    task_type: str | None = None
    base_model: str | None = None
    owner: str
    created_at: datetime
    updated_at: datetime
    tags: list[str]
    default_hyperparameters: dict[str, Any]
    default_trainer: str | None = None
    visibility: Visibility = Visibility.TEAM
    default_priority: int = 0
    release_approval: bool = False
    preemption: bool = False
    max_restarts: int = 0
    hang_minutes: float | None = None
    metric_thresholds: list[MetricThreshold] = Field(default_factory=list)
    log_rules: list[LogRule] = Field(default_factory=list)
    version: int
    run_count: int
    runs: list[RunSummary]
    versions: list[ProjectVersion]


# Runs


class Resources(BaseModel):
    model_config = ConfigDict(extra="allow")

    gpu_type: ShortText | None = None
    gpu_count: int | None = Field(None, ge=0, le=4096)

    @model_validator(mode="after")
    def _bounded(self) -> "Resources":
        _bounded_json_object(self.model_extra or {})
        return self


class RunCreate(Contract):
    name: Name | None = None
    model: Name
    dataset: Annotated[str, StringConstraints(max_length=MAX_PATH_LENGTH), AfterValidator(_strip_nonempty), NonBlank]
    hyperparameters: JsonObject = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    trainer: TrainerName | None = Field(
        None, description="训练器名称，缺省为项目默认训练器或 simulated；见 GET /trainers"
    )
    priority: Priority | None = Field(
        None, description="GPU 排队优先级（-100–100，越大越先分配），缺省为项目的 default_priority"
    )
    entrypoint: Entrypoint | None = Field(
        None, description="脚本运行的命令行，如 `python train.py --epochs 3`；给出时这是脚本运行，不用训练器"
    )
    source: SourceFolder | None = Field(
        None, description="脚本代码所在目录：worker 上 LTM_SOURCE_DIR 下的相对目录，缺省为 LTM_SOURCE_DIR 本身"
    )
    max_restarts: Restarts | None = Field(
        None, description="失败后从最新检查点自动重试的次数；缺省为项目的 max_restarts"
    )
    processes: ProcessCount | None = Field(
        None, description="脚本的进程数（>1 时用 torchrun 启动）；缺省为租到的 GPU 数，没有 GPU 时为 1"
    )


class RunResume(Contract):
    name: Name | None = None
    model: Name | None = None
    dataset: (
        Annotated[str, StringConstraints(max_length=MAX_PATH_LENGTH), AfterValidator(_strip_nonempty), NonBlank] | None
    ) = None
    hyperparameters: JsonObject | None = None
    resources: Resources | None = None
    trainer: TrainerName | None = None
    priority: Priority | None = None
    entrypoint: Entrypoint | None = None
    source: SourceFolder | None = None
    processes: ProcessCount | None = None


class RunDraft(RunCreate):
    """A create body still being written: model and dataset may be left out; everything else is checked as on
    create."""

    model: Name | None = None
    dataset: (
        Annotated[str, StringConstraints(max_length=MAX_PATH_LENGTH), AfterValidator(_strip_nonempty), NonBlank] | None
    ) = None


class EffectiveHyperparameter(BaseModel):
    name: str
    value: Any = None
    source: str = Field(description="取值来自哪里：运行、项目默认、原运行 或 训练器默认")
    description: str = ""
    default: Any = Field(None, description="训练器默认值；null 表示训练器自己决定")


class RunPreview(BaseModel):
    """What a create body would run, stored nowhere."""

    trainer: str = Field(description="实际使用的训练器；脚本运行为 script")
    model: str | None = None
    dataset: str | None = None
    hyperparameters: dict[str, Any] = Field(description="运行上将保存的超参数：项目默认值与运行值合并，null 已去掉")
    effective_hyperparameters: list[EffectiveHyperparameter] = Field(
        description="训练时生效的每个超参数及其来源；脚本运行只列出给出的键"
    )
    resources: dict[str, Any]
    priority: int
    total_steps: int | None = Field(None, description="训练总步数（训练器声明了 num_epochs 与 steps_per_epoch 时）")


class TagEvent(BaseModel):
    value: TagValue
    notes: str | None = None
    applied_at: datetime
    applied_by: str | None = None


class Artifact(BaseModel):
    id: str
    run_id: str
    name: str
    type: ArtifactType
    path: str
    created_at: datetime
    size_bytes: int | None = None
    step: int | None = None
    tags: list[TagEvent] = Field(default_factory=list)
    checksums: dict[str, str] | None = Field(None, description="每个文件写入时的 SHA-256；为空表示写入时没有记录")
    corrupted_at: datetime | None = Field(None, description="发现文件与写入时不符的时间；为空表示没有发现损坏")
    corruption: str | None = Field(None, description="已损坏：哪个文件与写入时不符")


class RunOverview(BaseModel):
    id: str
    project_id: str
    name: str
    status: RunStatus
    progress: float
    model: str
    dataset: str
    trainer: str = "simulated"
    hyperparameters: dict[str, Any]
    resources: dict[str, Any]
    metrics: dict[str, float]
    gpu_utilization: float | None = None
    created_at: datetime
    started_at: datetime | None = None
    updated_at: datetime
    finished_at: datetime | None = None
    cancelled_at: datetime | None = None
    resumed_from: str | None = None
    parent_run_id: str | None = None
    start_step: int = 0
    current_step: int = 0
    total_steps: int | None = None
    project_version: int
    message: str | None = None
    flow_run_id: str | None = None
    priority: int = Field(0, description="GPU 排队优先级，越大越先分配")
    created_by: str | None = Field(None, description="创建运行的用户")
    devices: list[str] = Field(
        default_factory=list, description="租给运行的 GPU 设备 ID（按 CUDA 序号）；未分配过 GPU 时为空"
    )
    gpu_host: str | None = Field(None, description="运行所在的 GPU 主机；未分配过 GPU 时为空")
    leased_at: datetime | None = Field(None, description="分到 GPU 的时间")
    released_at: datetime | None = Field(None, description="归还 GPU 的时间；仍占用时为空")
    entrypoint: str | None = Field(None, description="脚本运行的命令行；训练器运行为空")
    source: str | None = Field(None, description="脚本代码目录（LTM_SOURCE_DIR 下的相对目录，空为其本身）")
    processes: int | None = Field(None, description="脚本的进程数；缺省由 GPU 数决定")
    code_version: str | None = Field(
        None, description="脚本代码的版本：git:<提交>（有未提交修改时加 +dirty）或 sha256:<目录内容哈希>"
    )
    queue_position: int | None = Field(None, description="在同一 GPU 型号等待队列中的位置（从 1 开始）；不在等待时为空")
    queue_reason: str | None = Field(None, description="还在等待 GPU 的原因；不在等待时为空")
    sweep_id: str | None = Field(None, description="运行所属的调参；不属于调参时为空")
    trial_number: int | None = Field(None, description="在调参中的试验编号（从 0 开始）")
    rung: int | None = Field(None, description="试验的第几段（0 起）：ASHA 等剪枝器每晋升一层就从检查点续训一段")
    stop_at_step: int | None = Field(None, description="训练到这一步就保存检查点并结束，等待调参决定；为空表示训练到底")
    environment: dict[str, Any] | None = Field(None, description="训练进程上报的环境（版本、设备类型、已安装的包）")
    max_restarts: int | None = Field(None, description="运行自己的自动重试次数；为空取项目设置")
    restart_of: str | None = Field(None, description="这是对哪个失败运行的自动重试（或被抢占运行的重新排队）")
    restarts: int = Field(0, description="这一串重试中的第几次（原运行为 0）")
    labels: list[str] = Field(default_factory=list, description="日志规则加上的标签，例如 显存不足")
    preempted_by: str | None = Field(None, description="抢占了这个运行的 GPU 的运行")
    preempted_at: datetime | None = None
    progressed_at: datetime | None = Field(None, description="最近一次步数前进的时间")
    hung_at: datetime | None = Field(None, description="判定卡住的时间")


class RunPage(BaseModel):
    """A page of `GET /projects/{id}/runs` with the number of runs that match in all (its X-Total-Count)."""

    items: list[RunOverview]
    total: int


class Run(RunOverview):
    artifacts: list[Artifact] = Field(default_factory=list)


class RunUpdate(Contract):
    """What a training flow reports about its run; a field left out stays as it is (null is refused where the
    run always has a value)."""

    status: RunStatus = Field(None, description="新状态；省略表示不变")
    progress: Fraction = Field(None, description="进度（0–1）；省略表示不变")
    gpu_utilization: Fraction | None = None
    current_step: Count = Field(None, description="当前步数；省略表示不变")
    total_steps: Count | None = None
    message: LongText | None = None
    flow_run_id: ShortText | None = None
    code_version: ShortText | None = None
    environment: JsonObject | None = Field(
        None, description="训练进程的环境：Python、ltm、torch、CUDA 版本，设备类型，已安装的包"
    )


# Logs and metrics


class LogEntry(BaseModel):
    timestamp: datetime
    level: LogLevel
    message: str


class LogPage(BaseModel):
    page: int
    page_size: int
    total: int
    items: list[LogEntry]


class LogLine(Contract):
    timestamp: Timestamp
    level: LogLevel = LogLevel.INFO
    message: Annotated[str, StringConstraints(max_length=MAX_LOG_MESSAGE)]


class LogBatch(Contract):
    batch_id: BatchId
    lines: list[LogLine] = Field(max_length=MAX_BATCH_ITEMS)


class MetricPoint(Contract):
    name: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH)]
    step: Count
    value: Annotated[float, AfterValidator(_finite)]
    timestamp: Timestamp


class MetricBatch(Contract):
    batch_id: BatchId
    points: list[MetricPoint] = Field(max_length=MAX_BATCH_ITEMS)


class IngestResult(BaseModel):
    batch_id: str
    accepted: int
    duplicate: bool


class ProgressReport(Contract):
    """Progress fields of a report; a field left out or null stays as it is."""

    progress: Fraction | None = Field(None, description="进度（0–1）")
    current_step: Count | None = None
    total_steps: Count | None = None
    gpu_utilization: Fraction | None = None


class RunReport(Contract):
    """One reporter flush: a log batch, a metric batch and progress, stored together or not at all."""

    logs: LogBatch | None = None
    metrics: MetricBatch | None = None
    progress: ProgressReport | None = None


class ReportResult(BaseModel):
    logs: IngestResult | None = None
    metrics: IngestResult | None = None
    status: RunStatus = Field(description="写入后运行的状态（训练流程据此得知运行是否正在取消）")


class MetricBucket(BaseModel):
    step: int
    min: float
    max: float
    last: float
    timestamp: datetime


class MetricSeries(BaseModel):
    name: str
    total_points: int
    points: list[MetricBucket]


class MetricSeriesList(BaseModel):
    series: list[MetricSeries]


# Artifacts


Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
RelativeFile = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATH_LENGTH), AfterValidator(_no_nul)]


class ArtifactCreate(Contract):
    type: ArtifactType
    name: Name
    path: Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATH_LENGTH), AfterValidator(_no_nul)]
    size_bytes: Count | None = None
    step: Count | None = None
    checksums: dict[RelativeFile, Sha256] | None = Field(
        None,
        max_length=MAX_CHECKSUM_FILES,
        description="检查点每个文件（相对路径，/ 分隔）写入时的 SHA-256；恢复、发布和下载前据此校验",
    )


class ArtifactList(BaseModel):
    items: list[Artifact]


class TagRequest(Contract):
    tag: TagValue
    notes: Annotated[str, StringConstraints(max_length=MAX_PATH_LENGTH)] | None = None
    replaces: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        None,
        description="标记发布时可选：调用者确认要取代的当前发布检查点 ID；当前发布已不是它时返回 409，不做任何修改",
    )


class Release(BaseModel):
    """One move of a project's current release: a checkpoint released (发布) or an earlier release restored (回滚)."""

    id: str
    number: int = Field(description="项目内的发布序号，从 1 起")
    action: ReleaseAction
    state: ReleaseState
    artifact_id: str
    artifact_name: str
    step: int | None = None
    run_id: str
    run_name: str | None = None
    tagged_by: str | None = Field(None, description="申请（或直接完成）这次发布的人")
    tagged_at: datetime = Field(description="申请的时间")
    notes: str | None = None
    decided_by: str | None = Field(None, description="批准或拒绝的人（项目要求第二人批准时）")
    decided_at: datetime | None = None
    decision_notes: str | None = None
    withdrawn_by: str | None = Field(None, description="撤销这次发布的管理员")
    withdrawn_at: datetime | None = None
    frozen: bool = Field(False, description="文件已冻结复制到发布目录：删除运行、保留策略与压缩都不会碰到它")
    frozen_note: str | None = Field(None, description="没有冻结副本时的原因（例如 API 读不到手工登记的检查点文件）")
    checksums: dict[str, str] | None = Field(None, description="冻结副本每个文件的 SHA-256")
    latest_tag: TagValue | None = Field(None, description="这个检查点现在的最新标签")


class ProjectReleases(BaseModel):
    project_id: str
    approval_required: bool = Field(False, description="发布是否须经第二人批准")
    current: Release | None = Field(description="当前发布（状态为生效的那一次）；没有时为空")
    pending: list[Release] = Field(default_factory=list, description="等待批准的发布申请")
    history: list[Release] = Field(description="项目全部发布与回滚，最新的在前")


class ReleaseRequest(Contract):
    artifact_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    notes: Annotated[str, StringConstraints(max_length=MAX_PATH_LENGTH)] | None = None
    replaces: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = Field(
        None, description="调用者确认要取代的当前发布检查点 ID；当前发布已不是它时 409"
    )


class RollbackRequest(Contract):
    release_id: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        description="要恢复为当前发布的那一次较早的发布"
    )
    notes: Annotated[str, StringConstraints(max_length=MAX_PATH_LENGTH)] | None = None


class ReleaseDecision(Contract):
    notes: Annotated[str, StringConstraints(max_length=MAX_PATH_LENGTH)] | None = None


class DownloadLink(BaseModel):
    artifact_id: str
    url: str = Field(description="下载地址（相对于 API 根地址），带有限时签名，无需再带访问令牌")


class DownloadLinks(BaseModel):
    expires_at: datetime
    items: list[DownloadLink]


# Trainers


class TrainerHyperparameter(BaseModel):
    name: str
    type: str
    default: Any = None
    description: str
    minimum: float | None = None
    maximum: float | None = None
    minimum_exclusive: bool = False


class TrainerInfo(BaseModel):
    name: str
    description: str
    hyperparameters: list[TrainerHyperparameter]


# Access control


class Identity(BaseModel):
    user: str
    role: str
    run_id: str | None = None


class TokenCreate(Contract):
    user: Name
    role: Annotated[str, Field(pattern=f"^({'|'.join(USER_ROLE_NAMES)})$", description="、".join(USER_ROLE_NAMES))]


class TokenInfo(BaseModel):
    id: str
    user: str
    role: str
    created_by: str | None = None
    created_at: datetime
    revoked_at: datetime | None = None


class TokenCreated(TokenInfo):
    token: str = Field(description="令牌本身，只在创建时返回一次")


class LaunchCode(Contract):
    code: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="API 交给启动器、写在编排流程作业变量里的一次性启动码"
    )


class RunToken(BaseModel):
    run_id: str
    token: str = Field(description="只属于这个运行的令牌，只在签发时返回一次；运行结束即吊销")


class MembersUpdate(Contract):
    members: list[Name] = Field(max_length=MAX_MEMBERS)


class ProjectMembers(BaseModel):
    project_id: str
    members: list[str] = Field(description="项目成员的用户名（负责人不在其中）")


class AuditEvent(BaseModel):
    occurred_at: datetime
    actor: str
    action: str
    run_id: str | None = None
    run_name: str | None = None
    target: str | None = None
    details: str | None = None


# Data lifecycle


class IngestWindow(BaseModel):
    seconds: int = Field(description="统计最近多少秒内完成的组提交")
    commits: int = Field(description="这段时间的组提交次数")
    batches: int = Field(description="这些组提交写入的批次与报告")
    commit_ms_p50: float | None = Field(
        description="一次组提交（检查、写入、落盘）耗时的中位数，毫秒；没有提交时为 null"
    )
    commit_ms_p99: float | None = Field(description="一次组提交耗时的 99 分位，毫秒")
    wait_ms_p50: float | None = Field(
        description="每组里等得最久的批次从进入队列到开始写入的时间的中位数，毫秒；应答时间约为它加上组提交耗时"
    )
    wait_ms_p99: float | None = Field(description="同上，99 分位，毫秒")


class IngestQueue(BaseModel):
    queued_batches: int = Field(description="等待写入的日志与指标批次")
    committed_batches: int = Field(description="本进程启动以来写入的批次")
    commits: int = Field(description="这些批次用了多少次存储事务（组提交：并发的批次共用一次）")
    last_minute: IngestWindow | None = Field(
        None, description="最近一分钟的组提交：次数与耗时。组提交耗时或等待持续上升说明 API 跟不上写入"
    )


class Health(BaseModel):
    status: str
    schema_version: int
    ingest: IngestQueue | None = None


class RetentionPolicy(BaseModel):
    project_id: str
    keep_last: int | None = Field(description="每个运行保留步数最新的检查点个数；null 表示全部保留")
    updated_at: datetime | None = Field(None, description="策略最近一次修改的时间；从未设置时为 null")


class RetentionUpdate(Contract):
    keep_last: Annotated[int, Field(ge=1, le=1000)] | None = Field(
        description="每个运行保留步数最新的检查点个数（1–1000）；null 表示全部保留。带标签的检查点始终保留"
    )


class DeletableArtifact(BaseModel):  # an artifact that a deletion or the retention policy removes
    artifact_id: str
    run_id: str
    type: ArtifactType
    name: str
    path: str
    step: int | None = None
    size_bytes: int | None = None
    tags: list[str] = Field(default_factory=list, description="检查点带有的标签（候选/发布/归档）")


class RetentionPreview(BaseModel):
    project_id: str
    keep_last: int | None
    items: list[DeletableArtifact] = Field(description="按策略将删除的检查点（只含已结束运行中、未打标签的检查点）")
    count: int
    total_bytes: int


class DeletableRun(BaseModel):  # a run that a deletion removes
    id: str
    name: str
    status: RunStatus


class ArtifactDeletion(BaseModel):
    dry_run: bool
    deleted: bool
    artifact: DeletableArtifact


class DeletionReport(BaseModel):
    dry_run: bool = Field(description="true 表示只是预览，什么都没有删除")
    deleted: bool = Field(description="true 表示已经删除")
    project_id: str
    runs: list[DeletableRun]
    artifacts: list[DeletableArtifact]
    artifact_count: int
    artifact_bytes: int = Field(description="工件登记的大小之和（字节）")
    log_lines: int
    metric_points: int
    project_versions: int = Field(0, description="删除项目时一并删除的项目版本数")
    notes: list[str] = Field(default_factory=list, description="不影响结果的提示，例如未能清理的空目录")


class BackupRequest(Contract):
    target: Annotated[
        str,
        Field(
            min_length=1,
            max_length=4096,
            description="API 所在机器上、备份根目录（LTM_BACKUP_ROOT，默认 <LTM_HOME>/backups）之下"
            "的备份目录（绝对路径）；必须不存在或为空",
        ),
    ]


class BackupResult(BaseModel):
    folder: str
    tables: dict[str, int] = Field(description="每张表导出的行数")
    files: int
    bytes: int
    schema_version: int


class CompactionResult(BaseModel):
    bytes_before: int = Field(description="压缩前存储文件（含 WAL）的字节数")
    bytes_after: int = Field(description="压缩后存储文件的字节数")
    tables: dict[str, int] = Field(description="每张表的行数（压缩前后一致，已核对）")
    seconds: float = Field(description="用时（秒），含等待进行中的请求结束的时间")


# GPU resources

HOST_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
HostName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_HOST_NAME_LENGTH, pattern=HOST_NAME_PATTERN),
]


class GpuDevice(BaseModel):
    id: str = Field(
        description="设备的稳定 ID：真实 GPU 为 NVML UUID（GPU-…），声明的模拟设备为 sim-<主机>-<型号>-<序号>"
    )
    index: int = Field(description="设备在主机上的序号（CUDA 序号）")
    model: str = Field(description="GPU 型号，例如 A100")
    memory_mb: int = Field(description="显存（MiB）")
    gpu_type: str = Field("", description="运行在 resources.gpu_type 中请求的型号，例如 A100")
    run_id: str | None = Field(None, description="租用这块设备的运行；空闲或为调用者看不到的私有项目所用时为空")
    busy: bool = Field(False, description="是否已租给某个运行")
    project_id: str | None = Field(None, description="占用运行所在的项目（与 run_id 同时为空）")
    run_name: str | None = Field(None, description="占用运行的名称（与 run_id 同时为空）")


class GpuDeviceDeclaration(Contract):
    id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH, pattern=r"^[!-~]+$")] = Field(
        description="设备的稳定 ID（NVML UUID 或 sim-<主机>-<型号>-<序号>），可见 ASCII 字符"
    )
    index: Annotated[int, Field(ge=0, le=MAX_HOST_DEVICES - 1)] = Field(description="设备在主机上的序号（CUDA 序号）")
    model: Name = Field(description="GPU 型号，例如 A100")
    memory_mb: Annotated[int, Field(ge=0, le=2**40)] = Field(description="显存（MiB）")


class HostRegistration(Contract):
    work_queue: Name = Field(
        "default", description="这台主机的 Prefect worker 拉取的工作队列（训练部署所在工作池 ltm-process 中）"
    )
    devices: list[GpuDeviceDeclaration] = Field(
        default_factory=list,
        max_length=MAX_HOST_DEVICES,
        description="主机当前的全部 GPU；整体替换上一次登记的列表（不是合并）",
    )

    @model_validator(mode="after")
    def _distinct_devices(self) -> "HostRegistration":
        for key, label in (("id", "ID"), ("index", "序号")):
            seen = [getattr(device, key) for device in self.devices]
            repeated = sorted({str(value) for value in seen if seen.count(value) > 1})
            if repeated:
                raise ValueError(f"devices 中设备{label}重复：{'、'.join(repeated)}")
        return self


class GpuHost(BaseModel):
    name: str
    work_queue: str = Field(description="这台主机的 Prefect worker 拉取的工作队列；租到这台主机 GPU 的运行交到这里")
    online: bool = Field(description="最近 LTM_HOST_OFFLINE_SECONDS 秒内上报过；离线主机的设备不参与分配")
    registered_at: datetime = Field(description="首次登记的时间")
    last_seen_at: datetime = Field(description="最近一次上报的时间")
    devices: list[GpuDevice]


class QueuedRun(BaseModel):
    run_id: str | None = Field(description="运行 ID；调用者看不到的私有项目中的运行为空")
    project_id: str | None = None
    name: str
    gpu_type: str = Field(description="等待的 GPU 型号（未指定型号时为 任意型号）")
    gpu_count: int
    priority: int
    created_at: datetime
    queue_position: int = Field(description="在同一型号队列中的位置（从 1 开始）")
    queue_reason: str


class ResourceOverview(BaseModel):
    hosts: list[GpuHost] = Field(description="登记过的 GPU 主机（按名称排序）及其设备")
    queue: list[QueuedRun] = Field(
        default_factory=list, description="等待 GPU 的运行，按型号分队，队内按优先级、创建时间排序"
    )
    offline_after_seconds: float = Field(description="多久未上报即视为离线（LTM_HOST_OFFLINE_SECONDS）")


class UsageRow(BaseModel):
    key: str | None = Field(description="分组的值：项目 ID、用户名或 GPU 型号；调用者看不到的私有项目为空")
    label: str = Field(description="给人看的名称：项目名、用户名或 GPU 型号")
    runs: int = Field(description="期间占用过 GPU 或等待过 GPU 的运行数")
    gpu_hours_allocated: float = Field(description="分配的 GPU 小时：设备数 × 占用时长（限于统计期间）")
    gpu_hours_used: float = Field(description="按利用率加权的 GPU 小时：分配的 GPU 小时 × 设备平均利用率")
    queue_wait_hours: float = Field(description="这些运行等待 GPU 的总时长（小时）")


class ResourceUsage(BaseModel):
    group_by: UsageGrouping
    since: datetime | None = Field(None, description="统计起点；为空表示全部历史")
    until: datetime = Field(description="统计终点（请求时刻）")
    rows: list[UsageRow] = Field(description="按分配的 GPU 小时从多到少排序")


MAX_SEARCH_DIMENSIONS = 32
MAX_CHOICES = 100


class SearchDimension(Contract):
    """One hyperparameter of a sweep's search space: a float or int range (optionally on a log scale), or choices."""

    type: Annotated[str, Field(pattern="^(float|int|choice)$", description="float、int 或 choice")]
    low: Annotated[float, AfterValidator(_finite)] | None = Field(None, description="下限（含），float 与 int 必填")
    high: Annotated[float, AfterValidator(_finite)] | None = Field(None, description="上限（含），float 与 int 必填")
    log: bool = Field(False, description="在对数刻度上采样（下限须大于 0）")
    values: list[Any] | None = Field(
        None, min_length=1, max_length=MAX_CHOICES, description="choice 的候选值（JSON 标量），至少 1 个"
    )

    @model_validator(mode="after")
    def _consistent(self) -> "SearchDimension":
        if self.type == "choice":
            if self.values is None:
                raise ValueError("type 为 choice 时必须给出 values（候选值列表）")
            if self.low is not None or self.high is not None or self.log:
                raise ValueError("type 为 choice 时不能给出 low、high 或 log")
            if any(isinstance(value, (dict, list)) for value in self.values):
                raise ValueError("values 的每一项必须是数字、字符串、布尔值或 null")
            encoded = [json.dumps(value, sort_keys=True) for value in self.values]
            if len(set(encoded)) != len(encoded):
                raise ValueError("values 中有重复的候选值")
            return self
        if self.values is not None:
            raise ValueError(f"type 为 {self.type} 时不能给出 values（values 只用于 choice）")
        if self.low is None or self.high is None:
            raise ValueError(f"type 为 {self.type} 时必须给出 low 与 high")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("type 为 int 时 low 与 high 必须是整数")
        if self.low >= self.high:
            raise ValueError(f"low（{self.low:g}）必须小于 high（{self.high:g}）")
        if self.log and self.low <= 0:
            raise ValueError(f"log 为 true 时 low 必须大于 0，当前为 {self.low:g}")
        return self


class SweepObjective(Contract):
    metric: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH), AfterValidator(_strip_nonempty)]
    direction: Direction = Field(Direction.MINIMIZE, description="minimize 或 maximize")


class SweepCreate(Contract):
    name: Name
    template: RunCreate = Field(
        description="每个试验的运行配置（与创建运行的请求体相同）；搜索空间的超参数覆盖其中的值"
    )
    space: dict[Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH)], SearchDimension] = Field(
        min_length=1, max_length=MAX_SEARCH_DIMENSIONS, description="超参数名 → 取值范围"
    )
    objective: SweepObjective
    sampler: Sampler = Field(Sampler.TPE, description="random、tpe 或 grid")
    pruner: Pruner = Field(Pruner.ASHA, description="none、median、asha 或 hyperband")
    max_trials: int = Field(ge=1, le=1000, description="最多试验数（1–1000）")
    parallelism: int = Field(1, ge=1, le=64, description="同时进行的试验数（1–64）")
    reduction_factor: int = Field(3, ge=2, le=8, description="每层保留约 1/reduction_factor 的试验（ASHA、Hyperband）")
    min_epochs: int = Field(1, ge=1, le=1000, description="第一层训练的轮数；之后每层乘以 reduction_factor")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="采样器的随机种子；相同种子得到相同的试验参数序列")


class SweepTrial(BaseModel):
    number: int
    state: TrialState
    params: dict[str, Any]
    objective: float | None = Field(None, description="目标指标的最终值；被剪枝的试验为剪枝时的值")
    run_id: str | None = Field(None, description="试验最新的一段运行")
    run_status: RunStatus | None = Field(None, description="最新一段运行的状态")
    run_ids: list[str] = Field(default_factory=list, description="试验的全部运行，从第一段起")
    rung: int = Field(0, description="试验到达的层（0 起）")
    step: int = Field(0, description="试验训练到的步数")
    pruned_reason: str | None = None
    message: str | None = Field(None, description="试验失败或取消的原因")
    steps_trained: int = Field(0, description="试验各段实际训练的步数之和")
    steps_saved: int = Field(0, description="晋升时从检查点续训而不必重新训练的步数")
    created_at: datetime
    updated_at: datetime = Field(description="最近一次状态变化（结束的试验即结束时间）")


class SweepBest(BaseModel):
    number: int
    run_id: str
    params: dict[str, Any]
    objective: float
    checkpoint_id: str | None = Field(None, description="最佳试验最新的检查点，可直接打标签或恢复")


class SweepSummary(BaseModel):
    id: str
    project_id: str
    name: str
    status: SweepStatus
    objective: SweepObjective
    sampler: Sampler
    pruner: Pruner
    max_trials: int
    parallelism: int
    trial_count: int = Field(description="已开始的试验数")
    best_objective: float | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    created_by: str | None = None


class Sweep(SweepSummary):
    template: dict[str, Any]
    space: dict[str, SearchDimension]
    reduction_factor: int
    min_epochs: int
    seed: int | None = None
    rungs: list[int] = Field(description="每层结束的步数；最后一项是训练总步数。不剪枝时只有一项")
    total_steps: int | None = Field(None, description="一个试验训练到底的步数")
    message: str | None = None
    flow_run_id: str | None = Field(None, description="调参控制器的 Prefect 流程运行")
    controller_starts: int = Field(0, description="控制器启动过的次数（意外退出后由 API 重新启动）")
    trials: list[SweepTrial] = Field(default_factory=list, description="按目标指标从好到差排序，没有目标值的在后")
    best: SweepBest | None = None
    steps_trained: int = Field(0, description="所有试验实际训练的步数之和")
    steps_saved: int = Field(0, description="晋升时从检查点续训省下的步数之和")
    steps_if_complete: int | None = Field(None, description="同样数量的试验都训练到底需要的步数")


class SweepUpdate(Contract):
    """What the controller reports about the sweep as a whole."""

    status: SweepStatus = Field(None, description="新状态；省略表示不变")
    message: LongText | None = None
    flow_run_id: ShortText | None = None


class JournalEntries(BaseModel):
    entries: list[dict[str, Any]]
    next: int = Field(description="下一次读取的起点")


class JournalPosition(BaseModel):
    next: int = Field(description="追加之后，下一次读取的起点")


class TrialOutcome(BaseModel):
    number: int
    state: TrialState
    objective: float | None = None


class JournalAppend(Contract):
    entries: list[dict[str, Any]] = Field(min_length=1, max_length=1000)


class TrialCreate(Contract):
    number: int = Field(ge=0, le=1_000_000)
    params: JsonObject


class TrialPromote(Contract):
    rung: int = Field(ge=1, le=64, description="晋升到的层（1 起）；从上一层运行的检查点续训")


class TrialUpdate(Contract):
    state: TrialState
    objective: Annotated[float, AfterValidator(_finite)] | None = None
    reason: LongText | None = Field(None, description="剪枝、失败或取消的原因；剪枝原因也写到试验最新运行的消息上")


# ---- resume fidelity (issue 15)

FIDELITY_STATUSES = ("一致", "不一致", "无重叠", "不是恢复的运行", "原运行已删除")


class FidelityDifference(BaseModel):
    metric: str
    step: int = Field(description="这个指标第一个不同的步")
    parent_value: float = Field(description="原运行在这一步的值")
    run_value: float = Field(description="恢复的运行在这一步的值")
    absolute_difference: float = Field(description="恢复的运行减去原运行")
    relative_difference: float | None = Field(None, description="差值除以原运行值的绝对值；原运行值为 0 时为空")


class EnvironmentDifference(BaseModel):
    key: str = Field(description="环境中的项，例如 torch、cuda、device_type；packages 为已安装的包")
    parent: Any = Field(None, description="原运行的值；packages 为前几个不同的包及其版本（没有该包为 null）")
    run: Any = Field(None, description="恢复的运行的值")
    summary: str = Field(description="例如 torch 2.13.0 → 2.14.1，或 3 个包版本不同：…")


class ResumeFidelity(BaseModel):
    """A resumed run compared with its parent at every step both trained after the checkpoint, from the store."""

    run_id: str
    parent_run_id: str | None = None
    resumed_from: str | None = None
    start_step: int = Field(0, description="检查点的步数：只比较这一步之后的步")
    status: Annotated[str, Field(json_schema_extra={"enum": list(FIDELITY_STATUSES)})] = Field(
        description="一致、不一致、无重叠（原运行没有训练到检查点之后，或没有共同的指标）、不是恢复的运行、原运行已删除"
    )
    summary: str = Field(description="一句话结论，例如 与原运行逐步一致（第 11–20 步）")
    first_step: int | None = Field(None, description="比较的第一步")
    last_step: int | None = Field(None, description="比较的最后一步（两个运行都有指标的最后一步）")
    points_compared: int = Field(0, description="比较的指标点数")
    metrics_compared: list[str] = Field(default_factory=list)
    metrics_skipped: list[str] = Field(
        default_factory=list, description="不比较的指标：GPU 监控（gpu/…）与吞吐（…_per_second）衡量机器而非模型"
    )
    first_difference: FidelityDifference | None = Field(None, description="最早的不同：步数最小，同一步按指标名")
    differences: list[FidelityDifference] = Field(default_factory=list, description="每个不同的指标第一个不同的点")
    environment_compared: bool = Field(False, description="两个运行都上报了环境")
    environment_differences: list[EnvironmentDifference] = Field(default_factory=list)
    run_active: bool = Field(False, description="恢复的运行仍在进行：结论只针对至今已有的步")


# ---- release manifest (issue 15)


class ManifestCheckpoint(BaseModel):
    id: str
    name: str
    step: int | None = None
    path: str
    size_bytes: int | None = None
    created_at: datetime
    checksums: dict[str, str] | None = Field(None, description="每个文件写入时记录的 SHA-256；为空表示写入时没有记录")
    corrupted_at: datetime | None = Field(None, description="发现文件与写入时不符的时间；为空表示没有发现损坏")
    corruption: str | None = None


class ManifestRun(BaseModel):
    id: str
    name: str
    status: RunStatus
    model: str
    dataset: str
    trainer: str | None = None
    entrypoint: str | None = Field(None, description="脚本运行的命令行；训练器运行为空")
    source: str | None = None
    processes: int | None = None
    hyperparameters: dict[str, Any]
    resources: dict[str, Any]
    code_version: str | None = Field(None, description="脚本代码的版本；训练器运行为空")
    environment: dict[str, Any] | None = Field(None, description="训练进程开始时上报的环境；为空表示没有上报")
    start_step: int = 0
    current_step: int = 0
    created_at: datetime
    finished_at: datetime | None = None


class ResumedCheckpoint(BaseModel):
    """The checkpoint a run was resumed from."""

    id: str
    name: str | None = None
    step: int | None = None
    missing: bool = Field(False, description="检查点已被删除：名称不再可知，步数取自续训运行的起始步")


class LineageRun(BaseModel):
    run_id: str
    missing: bool = Field(False, description="运行已被删除：其余字段为空，谱系在此中断")
    name: str | None = None
    status: RunStatus | None = None
    model: str | None = None
    dataset: str | None = None
    trainer: str | None = None
    start_step: int | None = None
    current_step: int | None = None
    code_version: str | None = None
    resumed_from: ResumedCheckpoint | None = Field(None, description="这个运行从上一个运行的哪个检查点续训")


class DatasetName(BaseModel):
    kind: str = Field(pattern=r"^name$", description="name：数据集只是一个名称，由训练器解释，没有文件可计算哈希")
    name: str


class DatasetFile(BaseModel):
    path: str = Field(description="相对数据集的路径；单个文件为文件名")
    size_bytes: int
    sha256: str | None = Field(None, description="为空：超出哈希上限，没有计算")


class DatasetFiles(BaseModel):
    kind: str = Field(pattern=r"^files$", description="files：数据集根目录下的文件或文件夹")
    dataset: str
    location: str = Field(description="解析后的位置（与训练时读取的相同）")
    files: list[DatasetFile]
    file_count: int
    total_bytes: int
    hashed_bytes: int
    sha256: str | None = Field(
        None,
        description="合并哈希：按路径排序、每个文件一行“<sha256>  <相对路径>”的文本的 SHA-256；有文件未计算时为空",
    )
    complete: bool = Field(description="每个文件都计算了 SHA-256")
    note: str | None = None


class DatasetUnavailable(BaseModel):
    kind: str = Field(pattern=r"^unavailable$", description="unavailable：数据集路径无法读取，reason 说明原因")
    dataset: str
    reason: str


class FinalMetrics(BaseModel):
    step: int | None = Field(None, description="取值截止的步数（检查点所在步）；为空表示取运行最后记录的值")
    values: dict[str, float]
    objective: str | None = Field(None, description="运行所属调参的目标指标")
    rule: str = Field(description="选取了哪些指标、取哪一步的值")


class CheckpointManifest(BaseModel):
    """What a checkpoint is and what produced it: the document a release keeps and `…/manifest` answers."""

    created_at: datetime = Field(description="生成清单的时间")
    ltm_version: str = Field(description="生成清单的 ltm 版本")
    project_id: str
    checkpoint: ManifestCheckpoint
    run: ManifestRun
    lineage: list[LineageRun] = Field(description="本运行在前，依次是它的上一个运行，直到第一个运行")
    dataset: DatasetName | DatasetFiles | DatasetUnavailable = Field(description="数据集指纹")
    final_metrics: FinalMetrics


# Notifications

WEBHOOK_FORMATS = ("json", "dingtalk", "feishu", "wecom")
WEBHOOK_EVENTS = (
    "run.completed",
    "run.failed",
    "run.cancelled",
    "run.preempted",
    "run.hung",
    "metric.nan",
    "metric.threshold",
    "release",
)
WEBHOOK_EVENT_TITLES = {
    "run.completed": "运行完成",
    "run.failed": "运行失败",
    "run.cancelled": "运行已取消",
    "run.preempted": "运行被抢占",
    "run.hung": "运行卡住",
    "metric.nan": "指标出现 NaN",
    "metric.threshold": "指标越过阈值",
    "release": "新的发布",
}
DELIVERY_STATES = ("待发送", "已送达", "失败")
MAX_WEBHOOKS = 20
# http or https, an ASCII host name or address (IDN hosts in their xn-- form), an optional port, then anything
# without spaces
_WEBHOOK_URL = re.compile(
    r"https?://(?:[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?(?:[/?#]\S*)?",
    re.IGNORECASE,
)


def _one_of(choices: tuple[str, ...]):
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"必须是 {'、'.join(choices)} 之一")
        return value

    return check


def _webhook_url(value: str) -> str:
    if not _WEBHOOK_URL.fullmatch(value):
        raise ValueError(
            "必须是 http:// 或 https:// 开头、带主机名的地址，且不含空白字符，例如 https://example.com/hook"
        )
    return value


def _distinct(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


WebhookEvent = Annotated[
    str, AfterValidator(_one_of(WEBHOOK_EVENTS)), Field(json_schema_extra={"enum": list(WEBHOOK_EVENTS)})
]


class Webhook(Contract):
    url: Annotated[str, StringConstraints(max_length=MAX_PATH_LENGTH), AfterValidator(_webhook_url)] = Field(
        description="接收通知的地址（http 或 https）；钉钉、飞书、企业微信填写群机器人的 Webhook 地址"
    )
    format: Annotated[str, AfterValidator(_one_of(WEBHOOK_FORMATS))] = Field(
        "json",
        description="json：通用 JSON；dingtalk、feishu、wecom：钉钉、飞书、企业微信群机器人的消息格式",
        json_schema_extra={"enum": list(WEBHOOK_FORMATS)},
    )
    events: Annotated[
        list[WebhookEvent], Field(min_length=1, max_length=len(WEBHOOK_EVENTS)), AfterValidator(_distinct)
    ] = Field(description="要通知的事件：" + "、".join(WEBHOOK_EVENTS))


class WebhooksUpdate(Contract):
    hooks: list[Webhook] = Field(max_length=MAX_WEBHOOKS, description=f"项目的全部 Webhook（最多 {MAX_WEBHOOKS} 个）")


class ProjectWebhooks(BaseModel):
    project_id: str
    hooks: list[Webhook]
    updated_by: str | None = Field(None, description="最近一次修改的人；从未设置时为 null")
    updated_at: datetime | None = None


class WebhookDelivery(BaseModel):
    id: str
    event: str = Field(description="事件：" + "、".join(WEBHOOK_EVENTS))
    run_id: str | None = None
    url: str
    format: str
    state: str = Field(description="、".join(DELIVERY_STATES))
    attempts: int = Field(description="已尝试发送的次数")
    last_error: str | None = Field(None, description="最近一次发送失败的原因")
    created_at: datetime
    next_attempt_at: datetime | None = Field(None, description="下次尝试的时间（待发送时）")
    delivered_at: datetime | None = None
    payload: dict[str, Any] = Field(description="发送的请求体")
