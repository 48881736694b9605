"""A bug reached by a request (not bad input: that is a 4xx) answers JSON in the product's
words, so a phone shows what happened and what to do, not Starlette's bare English text; and
whatever the request wrote in its transaction is gone with it."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import func, select

from api.main import create_app
from flows.runtime import Runtime
from models.audit import AuditEvent
from models.db import read_session, session_scope
from models.writes import add_event


def test_an_unexpected_error_is_a_json_500_in_chinese_and_rolls_its_writes_back(
        rt: Runtime) -> None:
    app = create_app(rt, background=False, prefect=False)

    @app.post("/api/test-only/half-written")
    def half_written() -> None:
        with session_scope(rt.db) as session:
            add_event(session, at=rt.clock.now(), actor="system", action="probe")
            session.flush()
            raise RuntimeError("a bug after the first write")

    with read_session(rt.db) as session:
        before = session.exec(select(func.count()).select_from(AuditEvent)).one()
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/api/test-only/half-written")
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"] == "internal_error"
    assert r.json()["detail"].startswith("服务器内部错误")
    assert "RuntimeError" not in r.text and "a bug" not in r.text  # no internals
    with read_session(rt.db) as session:
        assert session.exec(select(func.count()).select_from(AuditEvent)).one() == before
