"""Stored artefacts: rendered documents (first report, supervision notice, closure form, and the
letters of an escalation ladder: 督办函, 约谈通知), evidence files, and the compiled playbook
versions runs are pinned to."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from models.base import json_column, utc_column


class Document(SQLModel, table=True):
    """A rendered document. A `document` step files one per step instance (`subject` empty);
    a level of an escalation ladder that has its own template (督办函, 约谈通知) files one
    letter each time it fires, under the firing's key (kind|step|level|scheduled_at, the key
    of its escalation row and of its 文号), served on `recipients` at `created_at`. The unique
    key makes a replayed segment or sweep file nothing twice."""

    __tablename__ = "document"
    __table_args__ = (Index("ux_document_subject", "step_id", "subject", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(index=True)
    step_id: int
    template: str = Field(max_length=200)
    title: str = Field(max_length=300)
    number: str | None = Field(default=None, max_length=60)  # 文号, when the step numbers it
    body: str
    created_at: datetime = utc_column()
    subject: str = Field(default="", max_length=200)  # "" for a step's own document
    level: int | None = None  # the ladder's level that sent a letter
    repeat: int = 0  # 0 for a level's first letter, then 1, 2, ... for its repeats
    recipients: list[str] = json_column(default_factory=list)  # person ids and channel names


class Evidence(SQLModel, table=True):
    __tablename__ = "evidence"

    id: str = Field(primary_key=True, max_length=40)
    # Indexed: evidence is found by content (one photo cited twice, flows/tasks.py).
    sha256: str = Field(max_length=64, index=True)
    size: int
    content_type: str = Field(max_length=100)
    filename: str = Field(max_length=255)
    stored_path: str = Field(max_length=500)
    uploaded_by: str = Field(max_length=80)
    uploaded_at: datetime = utc_column()
    step_id: int | None = Field(default=None, index=True)


class PlaybookVersion(SQLModel, table=True):
    """A compiled playbook as a run first used it; runs keep it even after the file changes."""

    __tablename__ = "playbook_version"

    sha256: str = Field(primary_key=True, max_length=64)
    playbook_id: str = Field(max_length=80, index=True)
    version: int
    compiled: dict[str, Any] = json_column(default_factory=dict)
    first_used_at: datetime = utc_column()


class ReceivedMessage(SQLModel, table=True):
    """What the built-in loopback receiver got: lets a demo show Apprise deliveries end to end
    without any outside service (the demo org's channels point at it)."""

    __tablename__ = "received_message"

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=80, index=True)
    received_at: datetime = utc_column()
    title: str | None = None
    body: str | None = None
    payload: dict[str, Any] = json_column(default_factory=dict)
