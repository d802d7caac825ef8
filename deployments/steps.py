"""Custom `prefect.yaml` steps.

`project_directory` runs as a build step when `prefect deploy` runs; the pull step
`set_working_directory` then takes its output, so a worker's flow run starts in this
checkout wherever it lives (no absolute path written into `prefect.yaml`).
"""

from __future__ import annotations

from pathlib import Path


def project_directory() -> dict[str, str]:
    """The directory `prefect deploy` runs in: the one holding `prefect.yaml` and `flows/`."""
    return {"directory": str(Path.cwd().resolve())}
