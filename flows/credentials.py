"""The token a training flow reports with: one scoped to its own run, never the token of whoever started it."""

from ltm.client import Client
from ltm.models import RunStatus
from ltm.settings import Settings

_run_tokens: dict[str, str] = {}  # flow run id → run token, for the hooks that finalise that flow run in-process


def run_client(run_id: str, flow_run_id: str | None) -> Client:
    """A client holding run `run_id`'s own token: exchanged for the launch code the launcher gave this flow, or for
    the caller's own token when someone calls the flow directly; no token where the API asks for none."""
    settings = Settings()
    if not settings.api_url:
        return Client.local(settings.home)
    with Client(settings.api_url, token=settings.token) as caller:
        token = _run_token(caller, run_id, settings)
    if token and flow_run_id:
        _run_tokens[flow_run_id] = token
    return Client(settings.api_url, token=token or settings.token)


def _run_token(caller: Client, run_id: str, settings: Settings) -> str | None:
    if settings.launch_code:
        return caller.exchange_launch_code(run_id, settings.launch_code).token
    if not settings.token or caller.whoami().run_id == run_id:
        return None
    run = caller.find_run(run_id)
    if run.status != RunStatus.QUEUED:
        return None  # nothing left to train: the flow reads the run and says why
    return caller.issue_run_token(run.project_id, run_id).token


def hook_client(flow_run_id: str) -> Client:
    """For a hook finalising `flow_run_id`: the run token this process got for it, else what the environment gives.
    A worker process has no run token; the API's reconciler then records the end from the orchestrator's state."""
    settings = Settings()
    token = _run_tokens.get(flow_run_id)
    if token and settings.api_url:
        return Client(settings.api_url, token=token)
    return Client.from_env()


def forget(flow_run_id: str | None) -> None:
    """The flow ended without handing its end to a hook."""
    if flow_run_id:
        _run_tokens.pop(flow_run_id, None)
