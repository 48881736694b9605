"""The shapes of a run's changeable params (flows/param_changes.py): the current values a run
carries everywhere it is shown, and their history on the run's page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from flows.param_changes import changeable, param_history
from flows.runtime import Runtime
from flows.spec import Playbook
from models.audit import AuditEvent
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
