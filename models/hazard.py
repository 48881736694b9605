"""Registers (台账) of the hazard loop: one row per hazard run (隐患清单/整改清单), risk points
(风险清单), import batches and requests for more time. The run and its steps remain the source
of truth for what happened; a hazard row is the register view of it, kept in step by
flows/registers.py inside the same transactions, and indexed for the lists, exports and the
monthly ranking at a district's scale (~400,000 hazards a year)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from models.base import json_column, utc_column


class Hazard(SQLModel, table=True):
    __tablename__ = "hazard"
    __table_args__ = (
        Index("ix_hazard_unit_found", "unit_id", "found_at"),
        Index("ix_hazard_street_found", "street_id", "found_at"),
        # The monthly ranking reads its four counts from these two alone (covering: no row is
        # read), which keeps it under a second at 1,000,000 hazards; closed_at leading the
        # second serves "closed in the month" and "open and overdue" alike.
        Index("ix_hazard_found_rank", "found_at", "closed_at", "status", "street_id", "unit_id"),
        Index("ix_hazard_due_rank", "closed_at", "due_at", "found_at", "status", "street_id",
              "unit_id"),
        # Most hazards belong to no campaign: only those that do are indexed (one B-tree insert
        # less per imported hazard); `campaign_run_id = ?` implies the condition.
        Index("ix_hazard_campaign", "campaign_run_id", "status",
              sqlite_where=text("campaign_run_id IS NOT NULL"),
              postgresql_where=text("campaign_run_id IS NOT NULL")),
    )

    run_id: int = Field(primary_key=True, foreign_key="run.id")
    code: str = Field(max_length=60, unique=True)  # 隐患编号
    playbook_id: str = Field(max_length=80)
    unit_id: str = Field(max_length=80)  # the responsible unit (the run's unit)
    street_id: str | None = Field(default=None, max_length=80)  # ranked level (街道/镇)
    source: str = Field(max_length=20)  # 检查发现 | 群众举报 | 执法检查 | 事故调查
    grade: str = Field(max_length=10)  # 一般 | 重大
    category: str | None = Field(default=None, max_length=60)
    location: str = Field(max_length=300)
    description: str | None = None
    enterprise: str | None = Field(default=None, max_length=200)
    found_at: datetime = utc_column()
    found_by: str | None = Field(default=None, max_length=80)
    due_at: datetime | None = utc_column(default=None)  # the rectification deadline
    original_due_at: datetime | None = utc_column(default=None)  # before any extension
    status: str = Field(default="登记", max_length=30)  # the run's phase label
    closed_at: datetime | None = utc_column(default=None)  # 销号
    plan: dict[str, Any] = json_column(default_factory=dict)  # 五落实 from the plan step
    campaign_run_id: int | None = None
    import_id: int | None = None
    updated_at: datetime = utc_column()


class RiskPoint(SQLModel, table=True):
    __tablename__ = "risk_point"
    __table_args__ = (Index("ix_risk_unit_level", "unit_id", "level"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=60, unique=True)
    unit_id: str = Field(max_length=80)
    name: str = Field(max_length=200)
    category: str | None = Field(default=None, max_length=60)
    location: str | None = Field(default=None, max_length=300)
    level: str = Field(max_length=10)  # 重大 | 较大 | 一般 | 低
    controls: str | None = None  # 管控措施
    responsible: str | None = Field(default=None, max_length=80)
    import_id: int | None = None
    updated_at: datetime = utc_column()


class ImportBatch(SQLModel, table=True):
    __tablename__ = "import_batch"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)  # hazards | risks
    filename: str = Field(max_length=255)
    sha256: str = Field(max_length=64)
    # The rows as read (unit and checked values, file order), for a file without a code on
    # every row: opened and saved again (GBK → UTF-8, CSV → XLSX) it is new bytes but the same
    # hazards, and without codes nothing else would refuse them a second time.
    rows_sha256: str | None = Field(default=None, max_length=64)
    rows: int
    imported_by: str = Field(max_length=80)
    imported_at: datetime = utc_column()
    # A large hazard file on SQLite is written in chunks, each its own short transaction, so
    # other writers are not held up for the whole file: `written` rows so far, the compiled
    # playbook the runs pinned, the file kept under the data dir until `finished_at`, so that
    # a restart finishes what a crash interrupted.
    written: int = 0
    playbook_sha: str | None = Field(default=None, max_length=64)
    # The order the rows are written in (flows/hazard_import.in_found_order): "found_at", or
    # None for a batch begun by an earlier version in the file's order, which a resume after
    # an upgrade must keep to go on where it stopped.
    write_order: str | None = Field(default=None, max_length=20)
    stored_file: str | None = Field(default=None, max_length=500)
    finished_at: datetime | None = utc_column(default=None)
    # person -> step title -> [tasks given, earliest due (ISO)], summed over the chunks written,
    # for the one summary note each person gets when the import finishes.
    assigned: dict[str, Any] = json_column(default_factory=dict)


class CodeClaim(SQLModel, table=True):
    """A hazard code held by a chunked import (SQLite, flows/hazard_import.py) from its first
    chunk's transaction to its last: the file's codes are claimed at once, so a code registered
    by hand (or by another import) in between is refused at its own door instead of stopping
    the import half-way. Only running imports have claims; the last chunk (or a stop) drops
    them."""

    __tablename__ = "hazard_code_claim"

    code: str = Field(primary_key=True, max_length=60)
    import_id: int


REQUEST_PENDING = "pending"
# A request still pending when its work ended (done, or the run cancelled): nothing to decide.
REQUEST_LAPSED = "lapsed"


class ExtensionRequest(SQLModel, table=True):
    __tablename__ = "extension_request"
    __table_args__ = (
        Index("ix_extension_step", "step_id", "status"),
        # The sweeper's chase reads only pending requests whose decision is due.
        Index("ix_extension_decide", "status", "decide_by"),
    )

    id: int | None = Field(default=None, primary_key=True)
    step_id: int
    run_id: int = Field(index=True)
    requested_by: str = Field(max_length=80)
    requested_at: datetime = utc_column()
    reason: str
    old_due_at: datetime | None = utc_column(default=None)
    new_due_at: datetime = utc_column()
    status: str = Field(default=REQUEST_PENDING, max_length=10)  # pending | approved | refused
    # | lapsed
    decided_by: str | None = Field(default=None, max_length=80)
    decided_at: datetime | None = utc_column(default=None)
    # When the decision is due (the step's `extension.decide_within`), and when an undecided
    # request was chased (once).
    decide_by: datetime | None = utc_column(default=None)
    chased_at: datetime | None = utc_column(default=None)
    note: str | None = None
