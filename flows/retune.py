"""`retune`: continual re-tuning. The current champion (or any registered version) is
fine-tuned on a new task's annotations and registered as its child, so lineage shows the
chain of tasks a checkpoint has learned."""

from __future__ import annotations

from prefect import flow
from pydantic import Field

from falconer_core.corpus import CorpusSource
from falconer_core.reporting import IncubationResult
from falconer_core.settings import Settings
from flows import parameters as p
from flows.incubate import incubate
from flows.parameters import IncubationSettings, TaskSpec


@flow(name="retune", validate_parameters=True)
def retune(
    corpus: CorpusSource = p.corpus(),
    task: TaskSpec = p.task(),
    model: str | None = Field(None, description="The registered version to continue from (default: the champion of FALCONER_MODEL_NAME); replaces `task.parent`."),
    incubation: IncubationSettings = p.incubation(),
) -> IncubationResult:
    """Retune `model` (default: the champion of the configured model name) on a new task,
    annotated in rounds when `incubation.active` asks for more than one (each round re-tunes
    from `model`)."""
    continued = task.model_copy(update={"parent": model or Settings().model_name})
    return incubate(corpus=corpus, task=continued, incubation=incubation)
