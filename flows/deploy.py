"""Register the training deployment on a process work pool (what `prefect deploy --all` does with prefect.yaml)."""

from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists

from ltm.flows.training import training_run

WORK_POOL = "ltm-process"
DEPLOYMENT = "ltm-training"
SOURCE_DIR = Path(__file__).resolve().parent.parent


def ensure_work_pool(name: str = WORK_POOL) -> None:
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            pass


def deploy(work_pool: str = WORK_POOL) -> str:
    """Deploy the flow from this source tree; returns the deployment's `flow/deployment` name."""
    ensure_work_pool(work_pool)
    source = training_run.from_source(source=str(SOURCE_DIR), entrypoint="flows/training.py:training_run")
    source.deploy(name=DEPLOYMENT, work_pool_name=work_pool, build=False, push=False, print_next_steps=False)
    return f"{training_run.name}/{DEPLOYMENT}"


if __name__ == "__main__":
    print(deploy())
