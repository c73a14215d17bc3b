"""Small reads and writes of Prefect flow-run state used by the flow and the launcher."""

from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType


def tag_flow_run(flow_run_id: str, tags: list[str]) -> None:
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(UUID(flow_run_id))
        client.update_flow_run(UUID(flow_run_id), tags=sorted(set(current.tags) | set(tags)))


def flow_run_is_cancelling(flow_run_id: str | None) -> bool:
    if not flow_run_id:
        return False
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(flow_run_id)).state
    return state is not None and state.type in (StateType.CANCELLING, StateType.CANCELLED)
