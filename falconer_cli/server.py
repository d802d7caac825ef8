"""`serve` and `deploy`: a local Prefect server with its UI, and the deployments of
`prefect.yaml` on it, so runs can be scheduled and triggered from the UI."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated, Optional

import typer

from falconer_cli.app import app, guarded
from falconer_cli.render import console, key_values, print_note


@app.command("serve")
@guarded
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 4200,
    ui: Annotated[bool, typer.Option("--ui/--no-ui", help="Serve the web UI.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server to answer.")] = 180.0,
) -> None:
    """Start a local Prefect server (UI and API) and say how to deploy and run flows on it."""
    from deployments.project import MINE_DEPLOYMENT, worker_command
    from deployments.server import LocalServer, stop_process

    server = LocalServer(host=host, port=port, ui=ui)
    process = server.start()
    # `kill` (SIGTERM) ends the command like Ctrl-C does, so the server never outlives it.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.wait_ready(process, timeout=timeout)
        console.print(key_values([
            ("Prefect UI", server.url),
            ("API", f"export PREFECT_API_URL={server.api_url}"),
            ("deploy", "falconer deploy            (prefect.yaml: mine, execute-nightly)"),
            ("worker", worker_command()),
            ("run", f"prefect deployment run {MINE_DEPLOYMENT}   (or Deployments -> mine -> Run in the UI)"),
            ("MLflow UI", _mlflow_ui_command()),
        ], title="Prefect server ready: in another shell"))
        print_note("Ctrl-C stops the server")
        code = process.wait()
    except KeyboardInterrupt:
        code = 0
    finally:
        stop_process(process)
    if code:
        raise typer.Exit(code)


@app.command("deploy")
@guarded
def deploy(
    name: Annotated[Optional[list[str]], typer.Option("--name", help="Deployment to deploy (repeatable; default: all in prefect.yaml).")] = None,
    api_url: Annotated[Optional[str], typer.Option("--api-url", envvar="PREFECT_API_URL", help="Prefect API (default: PREFECT_API_URL, else the `falconer serve` default).")] = None,
    prefect_file: Annotated[Optional[Path], typer.Option("--prefect-file", help="Deployment file (default: the checkout's prefect.yaml).")] = None,
) -> None:
    """Create or update the deployments of prefect.yaml on a running Prefect server.

    The process work pool they use is created first when it is missing.
    """
    from deployments.project import MINE_DEPLOYMENT, PREFECT_FILE, WORK_POOL, worker_command
    from deployments.project import deploy as run_deploy
    from deployments.server import LocalServer, ServerError, is_healthy

    url = (api_url or LocalServer().api_url).rstrip("/")
    if not is_healthy(url):
        raise ServerError(
            f"no Prefect server answers at {url}; start one with `falconer serve` (or point "
            "PREFECT_API_URL / --api-url at yours)"
        )
    env = {**os.environ, "PREFECT_API_URL": url}
    output = run_deploy(env, name or (), prefect_file=prefect_file or PREFECT_FILE)
    deployed = [line.split("'")[1] for line in output.splitlines() if "Deployment '" in line and "'" in line]
    console.print(key_values([
        ("deployed", ", ".join(dict.fromkeys(deployed)) or "(see prefect's output above)"),
        ("work pool", f"{WORK_POOL} (process)"),
        ("worker", f"PREFECT_API_URL={url} {worker_command()}"),
        ("run", f"PREFECT_API_URL={url} prefect deployment run {MINE_DEPLOYMENT}"),
        ("UI", url.removesuffix("/api") + "/deployments"),
    ], title="deployed"))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _mlflow_ui_command() -> str:
    from falconer_core.settings import Settings

    return f"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri {Settings().mlflow_tracking_uri} --workers 1"
