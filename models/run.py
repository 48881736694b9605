"""A run: one execution of a playbook for one unit (a response, a hazard, a typhoon season)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from models.base import json_column, utc_column

RUNNING = "running"
COMPLETED = "completed"
CANCELLED = "cancelled"
FAILED = "failed"
RUN_STATUSES = (RUNNING, COMPLETED, CANCELLED, FAILED)
# What a user reads for each status (messages are Chinese first).
STATUS_ZH = {RUNNING: "进行中", COMPLETED: "办结", CANCELLED: "撤销", FAILED: "失败"}


class Run(SQLModel, table=True):
    __tablename__ = "run"
    __table_args__ = (
        Index("ix_run_unit_status", "unit_id", "status"),
        Index("ix_run_playbook_status", "playbook_id", "status"),
        Index("ix_run_started", "started_at"),
        # A child run per parent step; only child runs are indexed (a hazard is no child).
        Index("ux_run_parent_step", "parent_step_id", unique=True,
              sqlite_where=text("parent_step_id IS NOT NULL"),
              postgresql_where=text("parent_step_id IS NOT NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    playbook_id: str = Field(max_length=80)
    playbook_version: int
    # The compiled playbook the run pinned when it started (a PlaybookVersion row).
    playbook_sha: str = Field(max_length=64)
    title: str = Field(max_length=300)
    unit_id: str = Field(max_length=80)
    status: str = Field(default=RUNNING, max_length=12)
    stage: str | None = Field(default=None, max_length=40)
    stage_entered_at: datetime | None = utc_column(default=None)
    params: dict[str, Any] = json_column(default_factory=dict)
    started_by: str = Field(max_length=80)
    started_at: datetime = utc_column()
    finished_at: datetime | None = utc_column(default=None)
    parent_step_id: int | None = None
    # Segments (Prefect flow runs) executed for this run so far; names the next one.
    segments: int = 0
    # Steps passed over without a row (`when` false, `for_each` empty), in the order they were
    # skipped: an ordinary hazard passes over the five steps of listed supervision, and
    # 400,000 hazards a year should not cost 2,000,000 rows that say "not this one".
    skipped: list[str] = json_column(default_factory=list)
    # How many of `skipped` are in Prefect's history (the list only grows).
    skipped_recorded: int = 0
    # Stages a forward jump passed over at the commander's word (the typhoon turned away after
    # people were moved: 解除 without 台风登陆's measures). Their steps are not handed out while
    # the run is above them; a run brought back down to one of them takes it off this list,
    # and entering it again hands its steps out (flows/passed_stages.py).
    passed_over_stages: list[str] = json_column(default_factory=list)
    # A drill (演练: 桌面推演, 实战演练, 盲演) runs the same playbook as a real event, and
    # NULL is a real event. Every message and document of a drill is marked 【演练】
    # (models/drill.py), and nothing that counts real work counts it.
    drill_kind: str | None = Field(default=None, max_length=12)
    drill_title: str | None = Field(default=None, max_length=120)
