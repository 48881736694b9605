"""The segment queue: a run that needs the engine (started, a step finished, a stage moved, a
timer fired) gets a wake row in the same transaction; the segment runner turns pending wakes
into Prefect flow runs. A crash leaves the row pending, so a restart carries on."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from models.base import utc_column


class Wake(SQLModel, table=True):
    __tablename__ = "wake"
    __table_args__ = (
        Index(
            "ix_wake_pending",
            "not_before",
            sqlite_where=text("done_at IS NULL"),
            postgresql_where=text("done_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(index=True)
    reason: str = Field(max_length=40)
    created_at: datetime = utc_column()
    not_before: datetime = utc_column()
    attempts: int = 0
    last_error: str | None = None
    done_at: datetime | None = utc_column(default=None)


class Lease(SQLModel, table=True):
    """A named lease (the sweeper's): only its holder works until it expires or is renewed."""

    __tablename__ = "lease"

    name: str = Field(primary_key=True, max_length=40)
    holder: str = Field(max_length=120)
    expires_at: datetime = utc_column()
