"""What the Prefect server does with a `prefect.yaml` trigger when an event arrives, without a
server: the trigger becomes the same automation `prefect deploy` creates, `covers` says whether
an event fires it, and its run-deployment parameters are rendered from the event with the
server's own templating (a single `{{ ... }}` keeps the value's type)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any


def automation(deployment: Mapping[str, Any], index: int = 0):
    """The server-side automation that `prefect deploy` makes of a deployment's trigger."""
    from prefect.cli.deploy._triggers import _initialize_deployment_triggers
    from prefect.server.events.schemas.automations import AutomationCore

    trigger = _initialize_deployment_triggers(deployment["name"], deployment["triggers"])[index]
    trigger.set_deployment_id(uuid.uuid4())
    return AutomationCore.model_validate(trigger.as_automation().model_dump(mode="json"))


def received(event: str, resource: Mapping[str, str], payload: Mapping[str, Any]):
    """An event as the server holds it once received."""
    from prefect.server.events.schemas.events import ReceivedEvent

    return ReceivedEvent(id=uuid.uuid4(), event=event, resource=dict(resource), payload=dict(payload),
                         occurred=datetime.now(timezone.utc))


def run_parameters(deployment: Mapping[str, Any], event) -> dict[str, Any]:
    """The parameters a run started by the deployment's first trigger gets for `event`: the
    deployment's own, updated with the trigger's, rendered (as the server merges them)."""
    from prefect.server.events.actions import RunDeployment
    from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate

    parameters = copy.deepcopy(automation(deployment).actions[0].parameters or {})
    RunDeployment._upgrade_v1_templates(parameters)
    rendered = hydrate(parameters, HydrationContext(raise_on_error=True, render_jinja=True, jinja_context={"event": event}))
    return {**deployment.get("parameters", {}), **rendered}
