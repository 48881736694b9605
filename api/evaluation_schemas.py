"""The answer of GET/POST /api/runs/{id}/evaluation (演练评估 of a drill, 复盘 of a real event),
field by field, so /docs shows them. The keys are flows/evaluation.py's, unchanged; times
are UTC, each with its `_local` twin in the bureau's time zone as the pages show it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from flows.evaluation import ENDED_HOW_ZH, OUTCOME_ZH

Outcome = Literal["on_time", "late", "missed", "open", "no_deadline", "called_off",
                  "ended_not_due"]
EndedHow = Literal["drill_end", "response_end", "cancelled", "finished"]


class EvaluationStep(BaseModel):
    id: int | None
    step: str = Field(description="The playbook's step id")
    title: str
    action: str = Field(description="task, notify, document, …")
    unit_name: str = Field(description="单位: the unit of whoever did the task (finished it, "
                           "else signed for it); the step's unit where nobody held it")
    step_unit_name: str = Field(description="The unit the step was handed to")
    status: str
    status_zh: str
    ready_at: datetime | None
    ready_at_local: str | None
    acked_at: datetime | None
    acked_at_local: str | None
    finished_at: datetime | None = Field(description="Handed in (a report: signed off)")
    finished_at_local: str | None
    done_at: datetime | None
    done_at_local: str | None
    due_at: datetime | None
    due_at_local: str | None
    taken_minutes: int | None = Field(description="From handed out to finished")
    outcome: Outcome = Field(description="; ".join(f"{k}: {v}" for k, v in OUTCOME_ZH.items()))
    outcome_zh: str
    late_minutes: int | None = Field(description="Late: minutes past the deadline when "
                                     "finished; missed: when the run ended (or now)")
    escalation_level: int = Field(description="The ladder level it reached (0: none)")
    acked_by_name: str | None
    finished_by_name: str | None
    verified_by_name: str | None


class EvaluationDelay(BaseModel):
    id: int | None
    title: str
    unit_name: str
    late_minutes: int | None
    outcome_zh: str


class EvaluationEnd(BaseModel):
    how: EndedHow = Field(description="; ".join(f"{k}: {v}" for k, v in ENDED_HOW_ZH.items()))
    how_zh: str
    at: datetime
    at_local: str | None
    by: str = Field(description="Person id (or system, cli) who ended it")
    by_name: str | None
    note: str | None = Field(description="The note or the reason given")
    called_off: int | None = Field(description="结束演练: the tasks it called off")


class EvaluationSummary(BaseModel):
    on_time: int
    late: int
    missed: int
    open: int = Field(description="Open and not yet due, while the run runs")
    ended_not_due: int = Field(description="Called off by 结束演练 before they were due "
                               "(演练结束时未到期): not a failure")
    escalated: int
    first_report_at_local: str | None
    first_report_minutes: int | None = Field(description="首报 minutes from the start (接报)")
    longest_delays: list[EvaluationDelay]
    ended: EvaluationEnd | None = Field(description="How the run ended, when and by whom; "
                                        "null while it runs")


class EvaluationDrill(BaseModel):
    kind: str
    title: str | None


class EvaluationAssessment(BaseModel):
    id: int | None
    at: datetime
    at_local: str | None
    by: str
    by_name: str | None
    assessment: str


class EvaluationPublic(BaseModel):
    run_id: int | None
    title: str
    unit_name: str
    drill: EvaluationDrill | None = Field(description="A drill's kind and name; null for a "
                                          "real event (复盘)")
    heading: str = Field(description="演练评估报告, or 复盘报告 for a real event")
    status: str
    started_at_local: str | None
    finished_at_local: str | None
    now_local: str | None
    started_by_name: str | None
    steps: list[EvaluationStep]
    summary: EvaluationSummary
    assessment: EvaluationAssessment | None = Field(description="The latest assessment")
    assessments: list[EvaluationAssessment] = Field(description="Every one, oldest first")
    report: str = Field(description="演练评估报告 as Markdown")
    html: str = Field(description="The report as the page shows it")
