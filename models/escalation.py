"""Fired timers: reminders, missed acknowledgements, escalation levels and their repeats.

The unique key (step, kind, level, scheduled_at) is what makes "none fires twice" hold even if
two sweepers ever raced: the second insert fails and its transaction rolls back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import json_column, utc_column

REMIND = "remind"
ACK = "ack"
ESCALATE = "escalate"


class Escalation(SQLModel, table=True):
    __tablename__ = "escalation"
    __table_args__ = (
        UniqueConstraint("step_id", "kind", "level", "scheduled_at", name="ux_escalation_once"),
        Index("ix_escalation_unrecorded", "run_id", "prefect_recorded"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(index=True)
    step_id: int = Field(index=True)
    step_key: str = Field(max_length=120)
    kind: str = Field(max_length=10)
    level: int  # 1-based escalation level; the reminder's index for reminders; 0 for ack
    repeat: int = 0  # 0 for the first firing of a level, then 1, 2, ... for its repeats
    scheduled_at: datetime = utc_column()
    fired_at: datetime = utc_column()
    recipients: list[str] = json_column(default_factory=list)
    prefect_recorded: bool = False
