"""Register the training and sweep deployments on a process work pool (what `prefect deploy --all` does with
prefect.yaml)."""

from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists

from ltm.flows.automations import ensure_automations
from ltm.flows.sweep import sweep_controller
from ltm.flows.training import training_run

WORK_POOL = "ltm-process"
DEPLOYMENT = "ltm-training"
SWEEP_DEPLOYMENT = "ltm-sweep"
SOURCE_DIR = Path(__file__).resolve().parent.parent


def ensure_work_pool(name: str = WORK_POOL) -> None:
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            pass


def deploy(work_pool: str = WORK_POOL) -> list[str]:
    """Deploy the flows from this source tree; returns the deployments' `flow/deployment` names."""
    ensure_work_pool(work_pool)
    deployed = []
    for flow, entrypoint, name in (
        (training_run, "flows/training.py:training_run", DEPLOYMENT),
        (sweep_controller, "flows/sweep.py:sweep_controller", SWEEP_DEPLOYMENT),
    ):
        source = flow.from_source(source=str(SOURCE_DIR), entrypoint=entrypoint)
        source.deploy(name=name, work_pool_name=work_pool, build=False, push=False, print_next_steps=False)
        deployed.append(f"{flow.name}/{name}")
    ensure_automations()  # ready automations on ltm's events (flows/automations.py)
    return deployed


if __name__ == "__main__":
    print("\n".join(deploy()))
