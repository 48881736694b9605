"""Prefect without a separately started server: on the embedded default closeloop launches
Prefect's API server as its own child process on a loopback port, with its database under the
data dir, so Prefect's history survives restarts and other processes (tests, `closeloop`
commands, an operator's `prefect` CLI) can read it at the URL written to data/prefect/api-url.

This module only prepares the environment and the process; it imports nothing from Prefect so
that `closeloop validate` and `closeloop token` stay fast."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from models.settings import Settings


def prefect_home(settings: Settings) -> Path:
    return (settings.data_dir / "prefect").resolve()


def configure_environment(settings: Settings) -> None:
    """Settings Prefect reads at import: offline (a bureau's intranet has no internet), quiet,
    and its files under our data dir. Must run before the first `import prefect`."""
    home = prefect_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    defaults = {
        "PREFECT_HOME": str(home),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    if settings.prefect_api_url:
        # Scale-out: a real server is configured; never fall back to a temporary one.
        os.environ["PREFECT_API_URL"] = settings.prefect_api_url
        os.environ["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "false"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # If closeloop is killed (even SIGKILL), its Prefect server goes too instead of lingering.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class PrefectServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None
        self.api_url: str | None = settings.prefect_api_url

    @property
    def url_file(self) -> Path:
        return prefect_home(self.settings) / "api-url"

    def start(self, *, timeout: float = 90.0) -> str:
        """Start the server (unless one is configured) and wait until it answers. Called again
        after the server died (killed, crashed), it starts a new one: the segment runner does
        so when Prefect stops answering."""
        configure_environment(self.settings)
        if self.settings.prefect_api_url:
            return self.settings.prefect_api_url
        if self.api_url and self.process is not None and self.process.poll() is None:
            return self.api_url
        self.stop()  # reap a dead one
        port = _free_port()
        url = f"http://127.0.0.1:{port}/api"
        log = (prefect_home(self.settings) / "server.log").open("ab")
        env = {**os.environ, "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        env.pop("PREFECT_API_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "error", "--lifespan", "on"],
            env=env, stdout=log, stderr=log, preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"Prefect server exited with {self.process.returncode}; see "
                    f"{prefect_home(self.settings) / 'server.log'}"
                )
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError(f"Prefect server did not answer within {timeout:.0f} s")
        self.api_url = url
        os.environ["PREFECT_API_URL"] = url
        self.url_file.write_text(url)
        return url

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
