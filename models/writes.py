"""Keyword-only write helpers shared by flows/ and api/: audit events, wakes, bulk inserts that
tolerate replays. Callers own the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, SQLModel

from models.audit import AuditEvent
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
    after a crash writes nothing twice."""
    if not rows:
        return
    table = model.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        stmt = sqlite_insert(table).on_conflict_do_nothing()
    elif dialect == "postgresql":
        stmt = pg_insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database {dialect}")
    session.execute(stmt, list(rows))
