"""叫应 of a raised warning signal: one row per person told of a raise (typhoon-633's `signal`
with `ack:`), answered by that person, chased once by the sweeper when it is not answered in
time (flows/signal_acks.py).

`settled_at` is set once nothing more is owed on the row (answered, superseded by a newer
raise, chased, or its run ended): the sweeper reads only unsettled rows past their due time,
through a partial index, so its cost follows what is due, not every raise ever recorded."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from models.base import json_column, utc_column


class SignalAck(SQLModel, table=True):
    __tablename__ = "signal_ack"
    __table_args__ = (
        # A replayed change writes no second row for the same person.
        UniqueConstraint("run_id", "change_seq", "person_id", name="ux_signal_ack_once"),
        Index(
            "ix_signal_ack_due",
            "due_at",
            sqlite_where=text("settled_at IS NULL"),
            postgresql_where=text("settled_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(index=True)
    # Which change of the run's changeable params this answers: the n-th `param_changed`
    # event of the run (0-based), as the change's messages are keyed.
    change_seq: int
    param: str = Field(max_length=80)
    value: str = Field(max_length=120)  # the value raised to (红色)
    person_id: str = Field(max_length=120)
    # The task of the stage the person held first when told: its unit and its first `escalate`
    # level say who chases a missed 叫应 (the street head and commander for a community head).
    step_id: int
    told_at: datetime = utc_column()
    due_at: datetime = utc_column()
    acked_at: datetime | None = utc_column(default=None)
    superseded_at: datetime | None = utc_column(default=None)
    escalated_at: datetime | None = utc_column(default=None)
    escalated_to: list[str] | None = json_column()  # who the chase reached
    settled_at: datetime | None = utc_column(default=None)
