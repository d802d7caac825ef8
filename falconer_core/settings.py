"""Runtime settings of a Falconer installation: where its state lives and which model it grows.

Everything defaults to one folder, `.falconer/` in the working directory (DuckDB file, MLflow
sqlite database and artifacts, Prefect results, checkpoints, LLM response cache), so a fresh
checkout runs with no setup. Each path or URI can be moved with a `FALCONER_*` variable, e.g.
`FALCONER_HOME=/data/falconer` or `FALCONER_MLFLOW_TRACKING_URI=http://mlflow:5000`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL_NAME = "falconer-metamodel"
#: Default seconds between two heartbeats of a running execution.
HEARTBEAT_SECONDS = 15.0


class Settings(BaseSettings):
    """Where Falconer keeps its state; read from `FALCONER_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="FALCONER_", extra="ignore")

    home: Path = Field(Path(".falconer"), description="Folder for every piece of local state.")
    store_path: Path | None = Field(None, description="DuckDB file (default: HOME/falconer.duckdb).")
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking URI (default: sqlite database HOME/mlflow.db)."
    )
    mlflow_artifact_location: str | None = Field(
        None, description="Where MLflow writes run artifacts (default: HOME/mlartifacts)."
    )
    model_name: str = Field(DEFAULT_MODEL_NAME, description="Registered model name of the metamodel.")
    base_model: str | None = Field(
        None, description="Base encoder to fine-tune from (default: the packaged all-MiniLM-L6-v2)."
    )
    results_dir: Path | None = Field(
        None, description="Prefect result storage for cached task results (default: HOME/results)."
    )
    checkpoints_dir: Path | None = Field(
        None, description="Fine-tuned checkpoints before registration (default: HOME/checkpoints)."
    )
    llm_cache_dir: Path | None = Field(
        None, description="Cached LLM responses, so re-runs cost nothing (default: HOME/llm-cache)."
    )
    corpora_dir: Path | None = Field(
        None, description="Parquet snapshots of the corpora runs read (default: HOME/corpora)."
    )
    runs_dir: str | None = Field(
        None, description="Where execution workers write shard parts before they are committed: a folder or "
        "fsspec URL (default: HOME/runs)."
    )
    artifacts_dir: Path | None = Field(
        None, description="Plots and tables the flows publish, also as files (default: HOME/artifacts)."
    )
    heartbeat_seconds: float = Field(
        HEARTBEAT_SECONDS, gt=0, description="How often a running execution says it is alive; a run silent for "
        "two of these and a half reads 'stale' in `falconer runs`.",
    )
    store_wait_seconds: float = Field(
        10.0, ge=0, description="How long a reader (`falconer outputs`, `runs`) waits for a run that is writing "
        "the store to let go of it before giving up.",
    )

    @property
    def stale_after_seconds(self) -> float:
        """Silence after which a running run is taken for dead: two missed heartbeats, and half
        an interval for a beat delayed by a busy store."""
        return 2.5 * self.heartbeat_seconds

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        """Derive every unset location from `home`; URIs get absolute paths so they do not
        depend on the directory a worker happens to start in."""
        home = self.home
        absolute = home.expanduser().resolve()
        self.store_path = self.store_path or home / "falconer.duckdb"
        self.mlflow_tracking_uri = self.mlflow_tracking_uri or f"sqlite:///{absolute / 'mlflow.db'}"
        self.mlflow_artifact_location = self.mlflow_artifact_location or (absolute / "mlartifacts").as_uri()
        self.results_dir = self.results_dir or home / "results"
        self.checkpoints_dir = self.checkpoints_dir or home / "checkpoints"
        self.llm_cache_dir = self.llm_cache_dir or home / "llm-cache"
        self.artifacts_dir = self.artifacts_dir or home / "artifacts"
        self.corpora_dir = self.corpora_dir or home / "corpora"
        self.runs_dir = self.runs_dir or str(absolute / "runs")
        return self


__all__ = ["DEFAULT_MODEL_NAME", "HEARTBEAT_SECONDS", "Settings"]
