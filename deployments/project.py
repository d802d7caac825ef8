"""Deploying the flows of `prefect.yaml` to a running Prefect server, and running them.

Each helper drives Prefect's own command line in a subprocess with an explicit environment
(`LocalServer.client_env`), so what it does is exactly what a user would type, and the calling
process's Prefect settings (cached when `prefect` is first imported) never leak into it.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from deployments.server import ServerError, prefect_executable

#: The checkout that holds `prefect.yaml`, `flows/` and `tasks/`.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
PREFECT_FILE = PROJECT_ROOT / "prefect.yaml"
#: The process work pool every deployment in `prefect.yaml` uses.
WORK_POOL = "falconer-process"
#: Deployment names in `prefect.yaml`, as `FLOW/DEPLOYMENT`.
MINE_DEPLOYMENT = "mine/mine"
EXECUTE_DEPLOYMENT = "execute/execute-nightly"

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def prefect_cli(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: Path = PROJECT_ROOT,
    timeout: float = 300.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run `prefect --no-prompt ARGS`; raise `ServerError` with its output when it fails."""
    command = [prefect_executable(), "--no-prompt", *args]
    try:
        done = subprocess.run(
            command, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise ServerError(f"`prefect {' '.join(args)}` did not finish within {timeout:.0f} s") from None
    if check and done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        raise ServerError(f"`prefect {' '.join(args)}` failed (exit {done.returncode}):\n{output[-3000:]}")
    return done


def ensure_work_pool(env: Mapping[str, str], name: str = WORK_POOL) -> bool:
    """Create the process work pool unless it exists; returns whether it was created."""
    found = prefect_cli(["work-pool", "inspect", name], env, check=False)
    if found.returncode == 0:
        return False
    prefect_cli(["work-pool", "create", name, "--type", "process"], env)
    return True


def deploy(
    env: Mapping[str, str],
    names: Sequence[str] = (),
    *,
    prefect_file: Path = PREFECT_FILE,
    work_pool: str = WORK_POOL,
) -> str:
    """`prefect deploy` the named deployments of `prefect_file` (all when none are named),
    after making sure their work pool exists; returns Prefect's output."""
    if not prefect_file.is_file():
        raise ServerError(
            f"{prefect_file} not found; run from a Falconer checkout or pass --prefect-file"
        )
    ensure_work_pool(env, work_pool)
    selection = [arg for name in names for arg in ("--name", name)] or ["--all"]
    done = prefect_cli(
        ["deploy", *selection, "--prefect-file", str(prefect_file)], env, cwd=prefect_file.parent
    )
    return done.stdout


def run_deployment(
    env: Mapping[str, str],
    name: str = MINE_DEPLOYMENT,
    parameters: Mapping[str, Any] | None = None,
    *,
    watch_timeout: float | None = None,
) -> str:
    """`prefect deployment run NAME` with JSON parameters; returns the new flow run's id.

    With `watch_timeout`, waits (up to that many seconds) for the run to finish and raises
    `ServerError` unless it completed — a worker on the deployment's pool must be running.
    """
    args = ["deployment", "run", name]
    if parameters:
        args += ["--params", json.dumps(dict(parameters))]
    timeout = 120.0
    if watch_timeout is not None:
        args += ["--watch", "--watch-timeout", str(int(watch_timeout))]
        timeout += watch_timeout
    done = prefect_cli(args, env, timeout=timeout)
    # Prefect prints the new run's id on a "UUID:" line; the first UUID in the output is the fallback.
    labelled = re.search(r"UUID:\s*(" + _UUID.pattern + ")", done.stdout)
    found = labelled.group(1) if labelled else next(iter(_UUID.findall(done.stdout)), None)
    if found is None:
        raise ServerError(f"`prefect deployment run {name}` printed no flow run id:\n{done.stdout[-2000:]}")
    return found


def start_worker(
    env: Mapping[str, str],
    pool: str = WORK_POOL,
    *,
    log: IO[bytes] | int | None = None,
) -> subprocess.Popen:
    """Start `prefect worker start --pool POOL` in its own process group; stop it with
    `deployments.server.stop_process`."""
    command = [prefect_executable(), "worker", "start", "--pool", pool, "--type", "process"]
    return subprocess.Popen(
        command,
        env=dict(env),
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        start_new_session=True,
    )


def worker_command(pool: str = WORK_POOL) -> str:
    """The worker command to show users."""
    return f"prefect worker start --pool {pool}"
