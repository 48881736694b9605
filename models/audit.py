"""The audit trail: every state change, who made it, when, from which state. A run's timeline
is its audit events. No route updates or deletes them, and the database refuses to."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, text
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from models.base import json_column, utc_column

SYSTEM = "system"  # actor for the engine's own moves (sweeper, segments)
CLI = "cli"  # actor for `closeloop start` without --as: the operator console, no person
SIGHUP = "sighup"  # actor for a reload asked by a signal to `closeloop serve` (api/reloading.py)
# How the product names its own actors to people (a person is named by the org chart).
ACTOR_NAMES = {SYSTEM: "系统", CLI: "运维命令行", SIGHUP: "运维信号（SIGHUP）"}


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_run", "run_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int | None = None
    step_id: int | None = None
    at: datetime = utc_column()
    actor: str = Field(max_length=80)
    action: str = Field(max_length=40)
    from_state: str | None = Field(default=None, max_length=20)
    to_state: str | None = Field(default=None, max_length=20)
    detail: dict[str, Any] = json_column(default_factory=dict)


def install_audit_guards(engine: Engine) -> None:
    """Triggers that make the trail append-only, whatever code path tries otherwise."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            for op in ("UPDATE", "DELETE"):
                conn.execute(text(
                    f"CREATE TRIGGER IF NOT EXISTS audit_no_{op.lower()} BEFORE {op} ON "
                    f"audit_event BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END"
                ))
        elif engine.dialect.name == "postgresql":
            conn.execute(text(
                "CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'audit events are append-only'; END $$ LANGUAGE plpgsql"
            ))
            conn.execute(text("DROP TRIGGER IF EXISTS audit_append_only ON audit_event"))
            conn.execute(text(
                "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_event "
                "FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
            ))
