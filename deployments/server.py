"""A local Prefect server for deployments: the settings it needs, started and stopped cleanly.

Flows run without any of this (Prefect starts a temporary server per process). A deployment
needs a server that outlives the command that made it, so that a worker can pick up runs that
the UI, a schedule or `prefect deployment run` create. `prefect server start` binds where
`PREFECT_SERVER_API_HOST/PORT` say and every client finds it through `PREFECT_API_URL`; keeping
the three in one object is what stops them from drifting apart.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from falconer_core.errors import ConfigError, FalconerError

#: Where `falconer serve` listens unless told otherwise (Prefect's own default port).
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200

#: Settings every Falconer-started Prefect process gets unless the environment says otherwise.
QUIET_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
}


class ServerError(FalconerError, RuntimeError):
    """A local Prefect server did not start, or a deployment step against it failed."""


@dataclass(frozen=True)
class LocalServer:
    """Where a local Prefect server listens and keeps its database.

    `home=None` keeps `PREFECT_HOME` as the environment has it (Prefect's default is
    `~/.prefect`): flow runs made earlier with the temporary server live in the same database,
    so they show up in the UI of this one.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    home: Path | None = None
    ui: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be between 1 and 65535, got {self.port}")

    @property
    def url(self) -> str:
        """The UI's address."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The API address clients put in `PREFECT_API_URL`."""
        return f"{self.url}/api"

    def client_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a process that talks to this server (deploy, worker, CLI)."""
        env = {**QUIET_DEFAULTS, **(os.environ if base is None else base)}
        env["PREFECT_API_URL"] = self.api_url
        if self.home is not None:
            env["PREFECT_HOME"] = str(self.home)
        return env

    def server_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for `prefect server start`: host and port set to match `api_url`.

        `PREFECT_API_URL` is dropped: a server does not talk to another server, and a stale
        value pointing elsewhere confuses its own UI.
        """
        env = self.client_env(base)
        env.pop("PREFECT_API_URL")
        env["PREFECT_SERVER_API_HOST"] = self.host
        env["PREFECT_SERVER_API_PORT"] = str(self.port)
        env["PREFECT_UI_API_URL"] = self.api_url
        env["PREFECT_SERVER_UI_ENABLED"] = "true" if self.ui else "false"
        return env

    def command(self) -> list[str]:
        """The `prefect server start` command line for this server."""
        args = [prefect_executable(), "server", "start", "--host", self.host, "--port", str(self.port)]
        return args + ([] if self.ui else ["--no-ui"])

    def start(self, log: IO[bytes] | int | None = None) -> subprocess.Popen:
        """Start the server in its own process group (so stopping it reaches all of it)."""
        if port_in_use(self.host, self.port):
            raise ServerError(
                f"{self.host}:{self.port} is already in use; if a Prefect server runs there, "
                f"use it (PREFECT_API_URL={self.api_url}), or pick another --port"
            )
        if self.home is not None:
            self.home.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(
            self.command(),
            env=self.server_env(),
            stdout=log,
            stderr=subprocess.STDOUT if log is not None else None,
            start_new_session=True,
        )

    def wait_ready(self, process: subprocess.Popen | None = None, timeout: float = 120.0) -> None:
        """Block until the API answers its health check; fail early if `process` exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise ServerError(
                    f"prefect server exited with code {process.returncode} before answering on "
                    f"{self.api_url}; see its log"
                )
            if is_healthy(self.api_url):
                return
            time.sleep(0.5)
        raise ServerError(f"prefect server did not answer on {self.api_url} within {timeout:.0f} s")


def is_healthy(api_url: str, timeout: float = 2.0) -> bool:
    """Whether a Prefect API answers its health check at `api_url`."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on host:port."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = DEFAULT_HOST) -> int:
    """A port nothing listens on right now (for tests and side-by-side servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stop a process this module started, and its process group: SIGTERM, then SIGKILL.

    Only ever called on processes started with `start_new_session=True`, so the group is the
    process's own and nothing else is signalled.
    """
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def prefect_executable() -> str:
    """The `prefect` executable next to this interpreter (the project's venv), else on PATH."""
    beside = Path(sys.executable).with_name("prefect")
    return str(beside) if beside.exists() else "prefect"
