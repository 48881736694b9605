"""`closeloop serve` started before its PostgreSQL server (the machines coming back after a
power cut in no particular order): it waits, saying so, and serves once the database answers,
instead of exiting and leaving the duty room without the service. A wrong database name is
not waited for: it exits at once naming CLOSELOOP_DATABASE_URL. A real serve in a child
process and a real PostgreSQL server, paused and resumed; these fail (not skip) without the
PostgreSQL binaries."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from factories import REPO
from sqlalchemy.exc import OperationalError

from api.db_wait import DatabaseNotUp, once_reachable, server_not_up

try:
    from pg_server import PostgresServer
    from server_process import ServerProcess, wait_until
except ModuleNotFoundError:  # tests/ as a package
    from tests.pg_server import PostgresServer
    from tests.server_process import ServerProcess, wait_until

WAITING = "数据库暂不可达"


def test_serve_started_before_postgresql_waits_and_then_serves(tmp_path: Path) -> None:
    with PostgresServer() as pg:
        pg.pause()
        serve = ServerProcess(tmp_path / "data", env={
            "CLOSELOOP_DATABASE_URL": pg.url, "CLOSELOOP_PREFECT_ENABLED": "false"})
        serve.data_dir.mkdir(parents=True)

        def bring_the_database_up() -> None:
            wait_until(lambda: WAITING in serve.log_tail(), timeout=60, what="serve waiting")
            pg.resume()

        up = threading.Thread(target=bring_the_database_up)
        up.start()
        try:
            serve.start(wait_prefect=False, timeout=120)
            up.join(timeout=60)
            assert serve.get("/healthz")["status"] == "ok"
            said = serve.log_tail()
            assert WAITING in said and "retrying in" in said and "Traceback" not in said
            assert "closeloop 已启动" in said
        finally:
            serve.stop()
            up.join(timeout=60)


def test_a_database_that_does_not_exist_is_not_waited_for(tmp_path: Path) -> None:
    with PostgresServer() as pg:
        done = subprocess.run(
            [sys.executable, "-m", "api.cli", "serve", "--port", "0"], cwd=REPO,
            capture_output=True, text=True, timeout=120,
            env={"PATH": "/usr/bin:/bin", "CLOSELOOP_DATA_DIR": str(tmp_path),
                 "CLOSELOOP_DATABASE_URL": pg.url_for("no_such_db"),
                 "CLOSELOOP_PREFECT_ENABLED": "false", "HOME": str(tmp_path)})
    assert done.returncode == 2, done.stderr
    assert WAITING not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(
        "error: CLOSELOOP_DATABASE_URL: 无法连接数据库")


def test_the_wait_backs_off_and_gives_up_at_its_limit() -> None:
    """The loop itself, on an injected clock: 1, 2, 4, 8 s apart, capped by what is left of
    the wait, then the last failure goes up."""
    now = [0.0]
    said: list[str] = []

    def never_up() -> None:
        raise DatabaseNotUp("connection refused")

    def sleep(seconds: float) -> None:
        now[0] += seconds

    try:
        once_reachable(never_up, wait_s=10, say=said.append, sleep=sleep,
                       monotonic=lambda: now[0])
    except DatabaseNotUp as exc:
        assert exc.first == "connection refused"
    else:
        raise AssertionError("gave up without raising")
    assert [line.split("，")[0] for line in said] == [
        "数据库暂不可达", "数据库暂不可达", "数据库暂不可达", "数据库暂不可达"]
    assert [float(line.split(" 秒后")[0].split("，")[1]) for line in said] == [1, 2, 4, 3]
    assert now[0] == 10


def test_only_a_postgresql_server_not_answering_is_waited_for() -> None:
    def failed(text: str) -> OperationalError:
        return OperationalError("connect", {}, Exception(text))

    refused = failed('connection to server at "127.0.0.1", port 5 failed: Connection refused')
    assert server_not_up(refused, "postgresql+psycopg")
    assert server_not_up(failed("FATAL:  the database system is starting up"),
                         "postgresql+psycopg")
    assert not server_not_up(failed('FATAL:  password authentication failed for user "x"'),
                             "postgresql+psycopg")
    assert not server_not_up(refused, "sqlite")
