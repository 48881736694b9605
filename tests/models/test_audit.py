"""The audit trail is append-only (SPEC §4): the database itself refuses to update or delete an
audit event, whatever code path tries, while new events are still appended. SQLite here;
tests/flows/test_engine_postgres.py checks the same on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from flows import lifecycle, tasks
from flows.runtime import Runtime
from models.audit import AuditEvent
from models.db import create_schema, read_session, session_scope
from models.task import StepInstance


def trail(rt: Runtime) -> list[tuple[int | None, str, str, str | None]]:
    with read_session(rt.db) as session:
        rows = session.exec(select(AuditEvent).order_by(AuditEvent.id)).all()
    return [(e.id, e.actor, e.action, e.to_state) for e in rows]


@pytest.fixture
def run_id(rt: Runtime) -> int:
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "x"}, actor="s1-commander")
    with read_session(rt.db) as session:
        receive = session.exec(select(StepInstance).where(
            StepInstance.run_id == run.id, StepInstance.step_key == "receive")).one()
    tasks.complete(rt, step_id=receive.id or 0, actor="s1-duty", note="已登记")
    return run.id or 0


@pytest.mark.parametrize("statement", [
    "UPDATE audit_event SET actor = 'mallory'",
    "UPDATE audit_event SET to_state = 'done' WHERE action = 'run_started'",
    "UPDATE audit_event SET detail = '{}'",
    "DELETE FROM audit_event",
    "DELETE FROM audit_event WHERE action = 'done'",
])
def test_sql_update_or_delete_of_audit_events_is_refused(
    rt: Runtime, run_id: int, statement: str
) -> None:
    before = trail(rt)
    assert len(before) >= 3
    with pytest.raises(DBAPIError, match="append-only"), rt.db.begin() as conn:
        conn.execute(text(statement))
    assert trail(rt) == before


def test_orm_update_or_delete_of_an_audit_event_is_refused(rt: Runtime, run_id: int) -> None:
    before = trail(rt)
    with pytest.raises(DBAPIError, match="append-only"), session_scope(rt.db) as session:
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "done")).first()
        assert event is not None
        event.actor = "mallory"
        session.add(event)
    with pytest.raises(DBAPIError, match="append-only"), session_scope(rt.db) as session:
        event = session.exec(select(AuditEvent)).first()
        session.delete(event)
    assert trail(rt) == before


def test_audit_events_are_still_appended(rt: Runtime, run_id: int) -> None:
    before = trail(rt)
    lifecycle.cancel_run(rt, run_id=run_id, actor="s1-commander", reason="演练结束")
    after = trail(rt)
    assert after[:len(before)] == before
    assert after[-1][1:] == ("s1-commander", "run_cancelled", "cancelled")


def test_guards_survive_a_restart(rt: Runtime, run_id: int) -> None:
    """create_schema runs at every start; the triggers stay in place (and are not doubled)."""
    create_schema(rt.db)
    create_schema(rt.db)
    with rt.db.connect() as conn:
        names = sorted(r[0] for r in conn.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_event'")))
    assert names == ["audit_no_delete", "audit_no_update"]
    with pytest.raises(DBAPIError, match="append-only"), rt.db.begin() as conn:
        conn.execute(text("DELETE FROM audit_event"))


def test_a_database_of_an_older_version_gains_new_indexes(tmp_path: Path) -> None:
    from sqlalchemy import inspect as sa_inspect

    from models.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    create_schema(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_step_inbox")
    create_schema(engine)  # a new index is added to an existing file
    assert "ix_step_inbox" in {i["name"] for i in sa_inspect(engine).get_indexes("step_instance")}
    engine.dispose()
