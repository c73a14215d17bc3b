"""Ready Prefect automations on ltm's events (the API emits `ltm.run.failed` and the like through the launcher).

Each one reacts to one event, for each run separately, and its action is Prefect's `do-nothing`: it needs no
configuration, and every time it fires Prefect records `prefect.automation.triggered` with the ltm event, so the
Automations page and the event feed show what happened. To be told, a team edits the automation in the Prefect UI
and swaps the action for "Send a notification" with a notification block of theirs (Slack, email, Microsoft Teams…);
the body can quote the event, e.g. `{{ event.payload.title }} {{ event.payload.message }} {{ event.payload.link }}`.
Automations are created only when missing, so `ltm up` never undoes such an edit.
"""

from prefect.automations import AutomationCore, DoNothing, EventTrigger
from prefect.client.orchestration import get_client

from ltm.models import WEBHOOK_EVENT_TITLES

READY = ("run.failed", "run.hung", "run.preempted", "metric.nan", "metric.threshold")
HOW_TO_NOTIFY = (
    "ltm 事件 ltm.{event}（{title}）发生时触发，按运行分别计算。默认动作 do-nothing 只在 Prefect 中留下触发记录；"
    "要收到通知，请在 Prefect UI 中编辑本自动化，把动作换成 Send a notification 并选择通知块，"
    "正文可写 {{{{ event.payload.title }}}} {{{{ event.payload.message }}}} {{{{ event.payload.link }}}}。"
    "ltm up 不会覆盖这里的修改。"
)


def automation_name(event: str) -> str:
    return f"ltm：{WEBHOOK_EVENT_TITLES[event]}"


def ready_automation(event: str) -> AutomationCore:
    return AutomationCore(
        name=automation_name(event),
        description=HOW_TO_NOTIFY.format(event=event, title=WEBHOOK_EVENT_TITLES[event]),
        tags=["ltm"],
        trigger=EventTrigger(
            expect={f"ltm.{event}"},
            match={"prefect.resource.id": "ltm.run.*"},
            for_each={"prefect.resource.id"},
            posture="Reactive",
            threshold=1,
        ),
        actions=[DoNothing()],
    )


def ensure_automations() -> list[str]:
    """Create the ready automations that do not exist yet; returns the names of those created."""
    created = []
    with get_client(sync_client=True) as client:
        for event in READY:
            name = automation_name(event)
            if not client.read_automations_by_name(name):
                client.create_automation(ready_automation(event))
                created.append(name)
    return created
