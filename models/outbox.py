"""The notification outbox: written in the same transaction as the state change that causes it,
delivered afterwards by flows/notify.py through Apprise, each attempt recorded."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from models.base import utc_column

# Status of a notification in the outbox.
PENDING = "pending"  # waiting for its next attempt (next_attempt_at)
DELIVERED = "delivered"
DEAD = "dead"  # gave up after the last retry; stays visible for the record

# The in-app inbox is a channel of its own: delivered the moment it is written, needs nothing
# outside the process, so a demo (or an offline intranet) always shows what was sent.
INBOX_URL = "inbox://"


class Notification(SQLModel, table=True):
    __tablename__ = "notification"
    __table_args__ = (
        Index(
            "ix_notification_due",
            "next_attempt_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_notification_inbox", "recipient", "created_at"),
        # Given-up deliveries are rare: /healthz counts the recent ones from this alone.
        Index(
            "ix_notification_dead",
            "created_at",
            sqlite_where=text("status = 'dead'"),
            postgresql_where=text("status = 'dead'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    # One notification per (cause, recipient, url): the unique key makes re-running a segment or
    # a sweeper tick after a crash write nothing twice.
    dedupe_key: str = Field(unique=True, max_length=300)
    # Sent with every delivery (flows/notify MESSAGE_ID_HEADER): random, so ids of two
    # installations (or of a database started afresh) never collide at the receiving office.
    message_id: str | None = Field(default=None, max_length=64)
    run_id: int | None = Field(default=None, index=True)
    step_id: int | None = Field(default=None)
    escalation_id: int | None = Field(default=None)
    kind: str = Field(max_length=30)  # assigned | remind | escalate | ack | notify | ...
    recipient_kind: str = Field(max_length=10)  # person | channel
    recipient: str = Field(max_length=120)  # person id or channel name
    url: str = Field(max_length=1000)  # Apprise URL, or INBOX_URL
    title: str = Field(max_length=300)
    body: str
    status: str = Field(default=PENDING, max_length=12)
    attempts: int = 0
    next_attempt_at: datetime | None = utc_column(default=None)
    created_at: datetime = utc_column()
    delivered_at: datetime | None = utc_column(default=None)
    last_error: str | None = None


class DeliveryAttempt(SQLModel, table=True):
    __tablename__ = "delivery_attempt"

    id: int | None = Field(default=None, primary_key=True)
    notification_id: int = Field(index=True)
    at: datetime = utc_column()
    ok: bool
    error: str | None = None
    duration_ms: int = 0
