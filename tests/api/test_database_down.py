"""PostgreSQL going away under a serving closeloop (stopped for maintenance, its host cut
off): every request gets a 503 JSON that says the database cannot be reached (never a bare
500), /healthz says "down" with a 503, nothing is half-written, and once the server is back
the same requests succeed. A private server per test (it is stopped mid-test); these fail
(not skip) when the PostgreSQL binaries are missing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime
from fastapi.testclient import TestClient

from api.auth import make_token
from api.main import create_app
from flows.runtime import Runtime
from models.clock import ManualClock

try:
    from pg_server import PostgresServer
except ModuleNotFoundError:  # tests/ as a package
    from tests.pg_server import PostgresServer


@pytest.fixture
def served(tmp_path: Path, clock: ManualClock) -> Iterator[tuple[PostgresServer, Runtime]]:
    with PostgresServer() as server:
        rt = make_runtime(tmp_path / "pg", clock=clock, db_url=server.url,
                          playbooks=SHIPPED_PLAYBOOKS, org_path=DEMO_ORG)
        yield server, rt
        rt.db.dispose()


def test_a_database_gone_away_is_a_503_saying_so_and_comes_back(
        served: tuple[PostgresServer, Runtime]) -> None:
    server, rt = served
    app = create_app(rt, background=False, prefect=False)
    auth = {"Authorization": f"Bearer {make_token('wang-qiang', rt.settings.signing_secret())}"}
    body = {"playbook": "gas-leak", "unit": "liuhe", "params": {"location": "六和社区3栋"}}
    with TestClient(app, raise_server_exceptions=False) as client:
        first = client.post("/api/runs", json=body, headers=auth)
        assert first.status_code == 201, first.text
        assert client.get("/healthz").json()["status"] == "ok"

        server.pause()
        rt.db.dispose()  # pooled connections died with the server
        for method, path, payload in (
                ("GET", "/api/runs", None), ("GET", f"/api/runs/{first.json()['id']}", None),
                ("GET", "/api/tasks?mine=true", None), ("POST", "/api/runs", body)):
            r = client.request(method, path, json=payload, headers=auth)
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert r.json()["error"] == "database_unavailable", r.text
            assert r.json()["detail"].startswith("数据库暂时无法连接")
            assert r.headers["retry-after"] == "5"
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json() == {"status": "down", "database": "postgresql",
                                 "error": health.json()["error"]}
        assert "数据库暂时无法连接" in health.json()["error"]
        assert str(server.port) not in health.text  # no host or port to a probe

        server.resume()
        assert client.get("/healthz").json()["status"] == "ok"
        runs = client.get("/api/runs", headers=auth).json()
        assert runs["count"] == 1  # the start refused while down wrote nothing
        assert client.post("/api/runs", json=body, headers=auth).status_code == 201


def test_sqlite_held_by_another_writer_past_the_timeout_is_busy_not_gone(
        tmp_path: Path, clock: ManualClock) -> None:
    """SQLite's one write lock held by a long write (a sweep, an import) past the busy timeout:
    a 503 that says the database is busy, not that it cannot be reached."""
    import dataclasses
    import sqlite3

    from sqlalchemy import event

    from models.db import make_engine

    rt = make_runtime(tmp_path / "sqlite", clock=clock, playbooks=SHIPPED_PLAYBOOKS,
                      org_path=DEMO_ORG)
    rt.db.dispose()
    engine = make_engine(rt.settings.db_url)
    # The product waits 30 s for the lock; this test waits a fifth of a second.
    event.listen(engine, "connect",
                 lambda conn, _: conn.execute("PRAGMA busy_timeout=200"))
    quick = dataclasses.replace(rt, db=engine)
    auth = {"Authorization": f"Bearer {make_token('wang-qiang', rt.settings.signing_secret())}"}
    body = {"playbook": "gas-leak", "unit": "liuhe", "params": {"location": "六和社区3栋"}}
    holder = sqlite3.connect(tmp_path / "sqlite" / "closeloop.db", isolation_level=None)
    try:
        with TestClient(create_app(quick, background=False, prefect=False),
                        raise_server_exceptions=False) as client:
            holder.execute("BEGIN IMMEDIATE")
            r = client.post("/api/runs", json=body, headers=auth)
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "database_busy"
            assert r.json()["detail"].startswith("数据库正忙")
            holder.execute("ROLLBACK")
            assert client.post("/api/runs", json=body, headers=auth).status_code == 201
    finally:
        holder.close()
        engine.dispose()
