"""Keyword-only write helpers shared by flows/ and api/: audit events, wakes, bulk inserts that
tolerate replays. Callers own the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, SQLModel, select

from models.audit import SYSTEM, AuditEvent
from models.documents import Document
from models.drill import mark_rows
from models.hazard import REQUEST_LAPSED, REQUEST_PENDING, ExtensionRequest
from models.outbox import Notification
from models.wake import Wake


def add_event(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    run_id: int | None = None,
    step_id: int | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEvent(
            run_id=run_id,
            step_id=step_id,
            at=at,
            actor=actor,
            action=action,
            from_state=from_state,
            to_state=to_state,
            detail=detail or {},
        )
    )


def add_wake(session: Session, *, run_id: int, reason: str, now: datetime) -> None:
    session.add(Wake(run_id=run_id, reason=reason, created_at=now, not_before=now))


def insert_rows(session: Session, model: type[SQLModel], rows: Sequence[dict[str, Any]]) -> None:
    """Plain executemany insert (one statement for all rows)."""
    if rows:
        session.execute(insert(model.__table__), list(rows))  # type: ignore[attr-defined]


def insert_ignoring_duplicates(
    session: Session, model: type[SQLModel], rows: Sequence[dict[str, Any]]
) -> None:
    """Insert, silently skipping rows that hit a unique key: replaying a segment or a sweep
    after a crash writes nothing twice. Messages and documents of a drill are marked 【演练】
    here (models/drill.py), the one place all of them are written."""
    if not rows:
        return
    if model is Notification or model is Document:  # every message and document of a run
        rows = mark_rows(session, rows, document=model is Document)
    table = model.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        stmt = sqlite_insert(table).on_conflict_do_nothing()
    elif dialect == "postgresql":
        stmt = pg_insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database {dialect}")
    session.execute(stmt, list(rows))


def lapse_extension_requests(
    session: Session, *, run_id: int, now: datetime, step_id: int | None = None
) -> int:
    """Requests for more time still pending on work that ended (done, or its run cancelled)
    lapse: there is nothing left to extend, and nobody should be chased to decide them."""
    conds = [ExtensionRequest.run_id == run_id, ExtensionRequest.status == REQUEST_PENDING]
    if step_id is not None:
        conds.append(ExtensionRequest.step_id == step_id)
    rows = session.exec(select(ExtensionRequest.id, ExtensionRequest.step_id).where(*conds)).all()
    if not rows:
        return 0
    session.execute(
        update(ExtensionRequest)
        .where(ExtensionRequest.id.in_([r[0] for r in rows]),  # type: ignore[union-attr]
               ExtensionRequest.status == REQUEST_PENDING)
        .values(status=REQUEST_LAPSED, decided_at=now, decided_by=SYSTEM))
    for request_id, on_step in rows:
        add_event(session, at=now, actor=SYSTEM, action="extension_lapsed", run_id=run_id,
                  step_id=on_step, detail={"request": request_id})
    return len(rows)
