"""A real `closeloop serve` in a child process on a free loopback port, for end-to-end tests:
real HTTP, real Prefect server, real sweeper and outbox, and a real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    def __init__(self, data_dir: Path, *, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.env = {**os.environ, "CLOSELOOP_DATA_DIR": str(data_dir), **env}
        self.env.pop("PREFECT_API_URL", None)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, extra_env: dict[str, str] | None = None, wait_prefect: bool = True,
              timeout: float = 150.0) -> None:
        env = {**self.env, **(extra_env or {})}
        log = (self.data_dir / "server.out").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(self.port)],
            cwd=REPO, env=env, stdout=log, stderr=log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_tail()}")
            try:
                health = self.get("/healthz")
                if not wait_prefect or health.get("prefect", {}).get("ready"):
                    return
                if health.get("prefect", {}).get("error"):
                    raise RuntimeError(f"Prefect failed: {health['prefect']['error']}")
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server not ready in {timeout} s: {self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing; what a power cut does."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def log_tail(self) -> str:
        path = self.data_dir / "server.out"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def token(self, person: str) -> str:
        out = subprocess.run([sys.executable, "-m", "api.cli", "token", person], cwd=REPO,
                             env=self.env, capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def request(self, method: str, path: str, *, token: str | None = None,
                body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def get(self, path: str, token: str | None = None) -> Any:
        status, body = self.request("GET", path, token=token)
        if status != 200:
            raise OSError(f"GET {path}: {status} {body}")
        return body


def prefect_post(api_url: str, path: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(api_url + path, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def wait_until(check: Any, *, timeout: float, what: str, every: float = 0.25) -> Any:
    """Poll a condition on a live server (bounded); the server's own clock runs the deadlines."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")
