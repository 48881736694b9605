"""Step instances: one row per step of a run (per item, for a fan-out step).

A human step waiting for 30 days is just this row: no process, no paused Prefect run.
`next_check_at` is the one timer the sweeper looks at (reminder, ack deadline, due time,
next escalation, whichever comes first), so a sweep reads only what is due.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from models.base import json_column, utc_column

PENDING = "pending"  # waiting for `needs`, a stage, or the run
READY = "ready"  # assigned and counting down (or, for automatic steps, queued to execute)
ACKED = "acked"
SUBMITTED = "submitted"  # completed by the assignee, waiting for the verifier
DONE = "done"
REJECTED = "rejected"  # the verifier sent it back; the assignee works it again
SKIPPED = "skipped"  # `when` was false (counts as finished for `needs`)
CANCELLED = "cancelled"

STEP_STATUSES = (PENDING, READY, ACKED, SUBMITTED, DONE, REJECTED, SKIPPED, CANCELLED)
# What a user reads for each status (messages are Chinese first).
STATUS_ZH = {PENDING: "未开始", READY: "待办理", ACKED: "已签收", SUBMITTED: "已提交待复查",
             DONE: "已完成", REJECTED: "已退回", SKIPPED: "无需办理", CANCELLED: "已撤销"}
OPEN_STATUSES = (READY, ACKED, SUBMITTED, REJECTED)  # a person still has to act
FINISHED_STATUSES = (DONE, SKIPPED, CANCELLED)
ACTIONABLE_STATUSES = (READY, ACKED, REJECTED)  # the assignee may complete


class StepInstance(SQLModel, table=True):
    __tablename__ = "step_instance"
    __table_args__ = (
        Index(
            "ix_step_next_check",
            "next_check_at",
            sqlite_where=text("next_check_at IS NOT NULL"),
            postgresql_where=text("next_check_at IS NOT NULL"),
        ),
        # The inbox: (role, unit) pairs and open statuses, counted and paged by deadline from
        # the index alone (an inspector of a busy street holds ~60,000 open close steps).
        Index("ix_step_inbox", "assignee_unit_id", "role", "status", "action",
              "assignee_person_id", "due_at"),
        # Only tasks handed to a named person (reassigned) are indexed by person.
        Index("ix_step_person", "assignee_person_id", "status",
              sqlite_where=text("assignee_person_id IS NOT NULL"),
              postgresql_where=text("assignee_person_id IS NOT NULL")),
        Index("ix_step_unit_status", "unit_id", "status"),
        # The few steps an `at:` moved away from where their event is (see origin_unit_id):
        # sparse, so it costs nothing for the ~all steps that stay where they are.
        Index("ix_step_origin_status", "origin_unit_id", "status",
              sqlite_where=text("origin_unit_id IS NOT NULL"),
              postgresql_where=text("origin_unit_id IS NOT NULL")),
        # 信息报送考核 (flows/reporting.py): a month's reports by deadline. Sparse: only the few
        # report steps' rows (a gas leak's five or so) are in it, never a hazard's.
        Index("ix_step_report_due", "due_at",
              sqlite_where=text("report_kind IS NOT NULL"),
              postgresql_where=text("report_kind IS NOT NULL")),
        # Replaying a segment after a crash must not fan a step out twice; also every read of
        # a run's steps (run_id, step_key) is a prefix of it.
        Index("ux_step_item", "run_id", "step_key", "item_index", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id")
    step_key: str = Field(max_length=120)
    item_index: int = 0  # position in a fan-out; 0 for ordinary steps
    item: Any = json_column()  # the fan-out item (a unit, a person, a value)
    title: str = Field(max_length=300)
    action: str = Field(max_length=12)
    role: str | None = Field(default=None, max_length=60)
    unit_id: str = Field(max_length=80)  # the unit the instance is for (where it is held)
    # Where the event is, when a playbook's `at:` holds the step elsewhere: the run's (or the
    # fan-out item's) unit before `at` moved the step up, e.g. community liuhe for the gas
    # leak's duty-room steps held at the district. None when it is unit_id (almost every
    # step). Roles, escalations and rights follow unit_id; a list by unit finds the step by
    # either, so filtering by where the event is finds its tasks (models.queries.list_steps).
    origin_unit_id: str | None = Field(default=None, max_length=80)
    # Where the role resolved (the unit or its nearest ancestor with holders): together with
    # `role` this is the inbox key of every holder, so an inbox is one index range.
    assignee_unit_id: str | None = Field(default=None, max_length=80)
    assignee_person_id: str | None = Field(default=None, max_length=80)  # after reassign
    assignees: list[str] = json_column(default_factory=list)  # person ids, for display
    status: str = Field(default=PENDING, max_length=12)
    ready_at: datetime | None = utc_column(default=None)
    due_at: datetime | None = utc_column(default=None)
    original_due_at: datetime | None = utc_column(default=None)
    overdue: bool = False
    escalation_level: int = 0  # highest level fired, 1-based; 0 = none
    last_escalated_at: datetime | None = utc_column(default=None)
    reminders_sent: int = 0
    ack_missed: bool = False
    next_check_at: datetime | None = utc_column(default=None)
    acked_at: datetime | None = utc_column(default=None)
    acked_by: str | None = Field(default=None, max_length=80)
    submitted_at: datetime | None = utc_column(default=None)
    submitted_by: str | None = Field(default=None, max_length=80)
    verified_by: str | None = Field(default=None, max_length=80)
    # The verifier's own ladder while the work awaits verification (verify.due, verify.escalate
    # in the playbook): its deadline for the latest submission, the level fired, and when.
    verify_due_at: datetime | None = utc_column(default=None)
    verify_level: int = 0
    verify_last_at: datetime | None = utc_column(default=None)
    done_at: datetime | None = utc_column(default=None)
    note: str | None = None
    outputs: dict[str, Any] = json_column(default_factory=dict)
    evidence: list[str] = json_column(default_factory=list)
    # What each handed-in photo shows, by evidence id (整改前, 整改后), where the step's
    # evidence has labels: the verifier compares the scene before and after.
    evidence_labels: dict[str, str] = json_column(default_factory=dict)
    reject_reason: str | None = None
    # Set once the step's Prefect task run has been recorded by a segment.
    prefect_recorded: bool = False
    # The called-off instance this one hands out again: a typhoon downgraded (its higher
    # stages' tasks called off, flows/call_off.py), then raised again into that stage
    # (flows/rehand.py). The called-off row stays as it was, with its `called_off` event; this
    # row is the item's work from now on. None for a first hand-out (almost every row).
    rehanded_from: int | None = None
    # The kind of report this instance is (首报, 续报, ...: the step's `report`), copied from
    # the playbook when the row is written so the monthly reporting figures read rows alone.
    # None for every other step.
    report_kind: str | None = Field(default=None, max_length=12)
    version: int = 0  # bumped on every change; conditional updates make races lose cleanly
