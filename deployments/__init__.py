"""Deployment definitions and their helpers: `prefect.yaml` at the checkout's root declares the
deployments; this package starts a local Prefect server (`server`), deploys and runs them
(`project`), and provides the custom `prefect.yaml` step they use (`steps`)."""

from deployments.project import (
    EXECUTE_DEPLOYMENT,
    MINE_DEPLOYMENT,
    PREFECT_FILE,
    PROJECT_ROOT,
    WORK_POOL,
    deploy,
    ensure_work_pool,
    prefect_cli,
    run_deployment,
    start_worker,
    worker_command,
)
from deployments.server import LocalServer, ServerError, free_port, is_healthy, stop_process

__all__ = [
    "EXECUTE_DEPLOYMENT",
    "MINE_DEPLOYMENT",
    "PREFECT_FILE",
    "PROJECT_ROOT",
    "WORK_POOL",
    "LocalServer",
    "ServerError",
    "deploy",
    "ensure_work_pool",
    "free_port",
    "is_healthy",
    "prefect_cli",
    "run_deployment",
    "start_worker",
    "stop_process",
    "worker_command",
]
