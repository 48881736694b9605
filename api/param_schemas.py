"""The shapes of a run's changeable params (flows/param_changes.py): the current values a run
carries everywhere it is shown, and their history on the run's page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from flows.param_changes import changeable, param_history
from flows.runtime import Runtime
from flows.signal_acks import latest_answers
from flows.spec import Playbook
from models.audit import AuditEvent
from models.db import read_session
from models.run import Run


class ParamNow(BaseModel):
    name: str
    title: str
    value: Any = Field(description="The current value (null: never given)")
    values: list[str] | None = Field(default=None, description="An enum's values, lowest first")


class ParamChangePublic(BaseModel):
    param: str
    title: str
    value: Any
    previous: Any = None
    direction: str = Field(description="start (the value it started with), raised, lowered or "
                           "changed")
    at: datetime
    at_local: str
    by: str
    by_name: str
    stage: str | None = None
    stage_title: str | None = None
    note: str | None = None


def params_now(rt: Runtime, run: Run, playbook: Playbook | None) -> list[ParamNow]:
    """The run's changeable params with their current values (typhoon-633: 台风预警信号). Only
    a run with params reads its pinned playbook (held in memory once read)."""
    if not run.params:
        return []
    book = playbook or rt.catalog.pinned(rt.db, run.playbook_sha)
    return [ParamNow(name=name, title=spec.title or name, value=run.params.get(name),
                     values=spec.values) for name, spec in changeable(book).items()]


def history_view(rt: Runtime, run: Run, playbook: Playbook,
                 events: list[AuditEvent]) -> list[ParamChangePublic]:
    return [ParamChangePublic(**entry) for entry in param_history(rt, playbook, run, events)]


class SignalAnswerPublic(BaseModel):
    """One person called at a raise of the signal (叫应) and their answer."""

    id: int = Field(description="The ack id: POST /api/runs/{id}/signal-acks/{ack_id}/ack")
    param: str
    value: str = Field(description="The value raised to (红色)")
    person: str
    person_name: str
    unit_name: str = Field(description="The unit of the task the person holds")
    task: str = Field(description="That task's title")
    told_at: datetime
    told_at_local: str
    due_at: datetime
    due_at_local: str
    acked_at: datetime | None = Field(default=None, description="null: not answered yet")
    acked_at_local: str | None = None
    late: bool = Field(default=False, description="Answered after due_at")
    escalated_at: datetime | None = Field(default=None, description="When the miss was "
                                          "chased (once) to the person's superiors")
    escalated_to_names: list[str] = Field(default_factory=list)


def answers_view(rt: Runtime, run_id: int,
                 playbook: Playbook) -> list[SignalAnswerPublic] | None:
    """The latest raise's 叫应; None (not read) for a playbook none of whose params asks one."""
    if not any(spec.ack is not None for spec in changeable(playbook).values()):
        return None
    with read_session(rt.db) as session:
        return [SignalAnswerPublic(**row) for row in latest_answers(session, rt, run_id)]
