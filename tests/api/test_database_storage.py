"""The database is there but cannot take a write: the disk under SQLite is full, or the
database is read-only (SQLite's file on a disk remounted read-only, a PostgreSQL that became a
standby or was set read-only for maintenance). A commander starting a response is told so in
Chinese first, with a 503 naming the cause, not "the database cannot be reached" (which sends
the operator looking for an outage, or a 500); nothing is written, and once the disk has room
or the database takes writes again the same request succeeds.

The conditions are SQLite's and PostgreSQL's own: SQLite's page limit (max_page_count) is
what a full disk returns (SQLITE_FULL) and query_only what a read-only file returns
(SQLITE_READONLY); PostgreSQL's default_transaction_read_only is a real read-only database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text

from api.auth import make_token
from api.main import create_app
from flows.runtime import Runtime

BODY = {"playbook": "quick-escalation", "unit": "c1", "params": {"location": "一社区3号楼"}}


@pytest.fixture
def served(make_rt: Callable[..., Runtime]) -> Iterator[tuple[Runtime, TestClient, dict[str, str]]]:
    rt = make_rt()
    token = make_token("s1-commander", rt.settings.signing_secret())
    with TestClient(create_app(rt, background=False, prefect=False),
                    raise_server_exceptions=False) as client:
        yield rt, client, {"Authorization": f"Bearer {token}"}


def runs(rt: Runtime) -> int:
    with rt.db.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM run")).scalar_one())


def with_pragma(rt: Runtime, pragma: Callable[[Any], str]) -> Callable[..., None]:
    """Every new connection of the engine runs the pragma; the pool starts afresh."""
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(pragma(cur))
        cur.close()
    event.listen(rt.db, "connect", on_connect)
    rt.db.dispose()
    return on_connect


def without(rt: Runtime, listener: Callable[..., None]) -> None:
    event.remove(rt.db, "connect", listener)
    rt.db.dispose()


def page_limit(cur: Any) -> str:
    cur.execute("PRAGMA page_count")
    return f"PRAGMA max_page_count = {cur.fetchone()[0]}"


def test_a_full_disk_under_sqlite_is_a_503_saying_so(served: Any) -> None:
    rt, client, auth = served
    assert client.post("/api/runs", json=BODY, headers=auth).status_code == 201
    full = with_pragma(rt, page_limit)
    # Starts fill the pages the file already has; the first that needs one more is refused.
    for _ in range(200):
        before = runs(rt)
        r = client.post("/api/runs", json=BODY, headers=auth)
        if r.status_code != 201:
            break
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "database_disk_full"
    assert r.json()["detail"].startswith("数据库所在磁盘已满，本次操作未保存")
    assert "retry-after" in r.headers
    assert runs(rt) == before  # nothing of the refused start
    without(rt, full)
    assert client.post("/api/runs", json=BODY, headers=auth).status_code == 201


def test_a_read_only_sqlite_database_is_a_503_saying_so(served: Any) -> None:
    rt, client, auth = served
    read_only = with_pragma(rt, lambda _cur: "PRAGMA query_only = ON")
    r = client.post("/api/runs", json=BODY, headers=auth)
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "database_read_only"
    assert r.json()["detail"].startswith("数据库当前只读，本次操作未保存")
    assert client.get("/api/runs", headers=auth).status_code == 200  # reading goes on
    without(rt, read_only)
    assert runs(rt) == 0
    assert client.post("/api/runs", json=BODY, headers=auth).status_code == 201


def test_a_read_only_postgresql_is_a_503_saying_so(
        pg_rt: Runtime) -> None:
    rt = pg_rt
    auth = {"Authorization": f"Bearer {make_token('s1-commander', rt.settings.signing_secret())}"}
    name = rt.db.url.database
    with TestClient(create_app(rt, background=False, prefect=False),
                    raise_server_exceptions=False) as client:
        with rt.db.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
            conn.commit()
        rt.db.dispose()
        r = client.post("/api/runs", json=BODY, headers=auth)
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "database_read_only"
        assert r.json()["detail"].startswith("数据库当前只读，本次操作未保存")
        with rt.db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SET default_transaction_read_only = off"))
            conn.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
        rt.db.dispose()
        assert runs(rt) == 0
        assert client.post("/api/runs", json=BODY, headers=auth).status_code == 201
