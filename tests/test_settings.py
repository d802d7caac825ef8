"""Where a Falconer installation keeps its state."""

from __future__ import annotations

from falconer_core.settings import Settings


def test_settings_put_everything_under_home(monkeypatch, tmp_path):
    monkeypatch.setenv("FALCONER_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("FALCONER_MODEL_NAME", "tweets-model")
    settings = Settings()
    assert settings.store_path == tmp_path / "h" / "falconer.duckdb"
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'h' / 'mlflow.db'}"
    assert settings.results_dir == tmp_path / "h" / "results" and settings.model_name == "tweets-model"
    monkeypatch.setenv("FALCONER_STORE_PATH", str(tmp_path / "elsewhere.duckdb"))
    assert Settings().store_path == tmp_path / "elsewhere.duckdb"
