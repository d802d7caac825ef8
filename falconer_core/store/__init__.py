"""The DuckDB store: the `Store` itself (`database`: open, migrate, close), its collaborators
over one shared `connection` (`corpora`, `annotations`, `outputs`, `runs`), the pandera schemas
of its tables (`schemas`), and the short write sessions a pipeline run opens (`sessions`)."""

from falconer_core.store.database import Store
from falconer_core.store.outputs import ExportFormat
from falconer_core.store.schemas import (
    ANNOTATION_COLUMNS,
    OUTPUT_COLUMNS,
    RUN_STATUSES,
    AnnotationsSchema,
    CorporaSchema,
    OutputsSchema,
    PlansSchema,
    RunsSchema,
    RunStatus,
)

__all__ = [
    "ANNOTATION_COLUMNS",
    "OUTPUT_COLUMNS",
    "RUN_STATUSES",
    "AnnotationsSchema",
    "CorporaSchema",
    "ExportFormat",
    "OutputsSchema",
    "PlansSchema",
    "RunStatus",
    "RunsSchema",
    "Store",
]
