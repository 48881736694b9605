"""信息报送考核: how timely every report was, per unit and month, ranked, with the late and
missed ones each linked to its run (flows/reporting.py has the definitions), and its export.

A manager's, like the monthly ranking (api/routes/hazards.py manager_scope): `manager` (or
admin) over the requested `unit`, the whole district when not given; a street's manager asks
for `unit=<their street>` and gets 403 for anything wider. Bad input is a 422 naming the field,
Chinese first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from api.deps import CurrentPerson, RuntimeDep
from api.downloads import check_format, download
from api.routes.hazards import (
    LEVEL_NAMES,
    LEVEL_ZH,
    Format,
    LevelQ,
    MonthQ,
    UnitQ,
    manager_scope,
)
from flows import exports
from flows.ranking import LEVELS, previous_month, ranked_units
from flows.reporting import (
    Figures,
    Report,
    Reporting,
    ReportingRow,
    monthly_reporting,
    ordered_kinds,
)
from flows.runtime import Runtime
from flows.spec import REPORT_KINDS
from models.db import read_session
from models.errors import InvalidInput, clipped
from models.task import STATUS_ZH

router = APIRouter(tags=["registers"])


class FiguresPublic(BaseModel):
    due: int = Field(description="应报数: reports whose deadline fell in the month (the current "
                     "month: before now)")
    on_time: int = Field(description="按时报送: done by the deadline")
    late: int = Field(description="迟报: done after the deadline")
    missed: int = Field(description="漏报: not done (still open past the deadline, or its run "
                        "cancelled or ended after it)")
    on_time_rate: float | None = Field(description="on_time / due (0..1); none when none due")
    mean_late_minutes: float | None = Field(description="Mean lateness of the late ones, "
                                            "minutes, 1 decimal")
    max_late_minutes: float | None = Field(description="The latest one's lateness, minutes")


class KindFiguresPublic(FiguresPublic):
    kind: str = Field(description="报告类别 (首报, 续报, ...)")


class ReportingRowPublic(FiguresPublic):
    rank: int
    unit_id: str
    unit_name: str
    kinds: list[KindFiguresPublic] = Field(description="By kind of report, those with any due")
    unsure: int = Field(default=0, description="待核实: the unit's reports (all kinds) never "
                        "handed out whose deadline passed, whether owed depending on a step "
                        "never done; listed in `unsure`, not counted in any figure nor the rank")


class ReportPublic(BaseModel):
    step_id: int | None = Field(description="The report's task (GET /api/tasks/{step_id}); "
                                "none for a report never handed out (handed_out false)")
    run_id: int = Field(description="Its run (GET /api/runs/{run_id}, the page /runs/{run_id})")
    run_title: str
    playbook: str
    title: str
    kind: str
    unit_id: str = Field(description="Where the event is")
    unit_name: str
    counted_for: str | None = Field(description="The ranked unit it counts for (none: above "
                                    "the level, in the total only)")
    due_at: datetime
    due_at_local: str
    done_at: datetime | None = Field(description="Done (迟报), or called off (漏报 of a run "
                                     "cancelled or ended)")
    done_at_local: str | None
    outcome: str = Field(description="迟报 | 漏报 | 待核实 (in `unsure` only)")
    late_minutes: float | None = Field(description="迟报: how late, minutes, 1 decimal")
    status: str
    status_zh: str = Field(description="The task's status as people read it; 未派发 for a "
                           "report never handed out")
    step: str = Field(default="", description="The playbook step (verbal, system-report, ...)")
    handed_out: bool = Field(default=True, description="False: never handed out, a step it "
                             "waits on never done; its deadline counted from the alert "
                             "(`from: run`) has passed (flows/report_owed.py)")
    held_up_by: str | None = Field(default=None, description="Never handed out: the step it "
                                   "waits on (初步研判事件等级和影响范围)")
    depends_on: str | None = Field(default=None, description="待核实: the step never done "
                                   "whose result says whether the report was owed")


class ReportingPublic(BaseModel):
    month: str
    level: str
    unit: str = Field(description="The scope: its units of `level` are ranked")
    timezone: str
    start: datetime
    start_local: str
    end: datetime
    end_local: str
    as_of: datetime = Field(description="The figures' cut-off: the month's end, or now")
    as_of_local: str
    order: list[str] = Field(description="What the rank compares, in turn")
    kinds: list[str] = Field(description="Every kind of report, in order")
    total: ReportingRowPublic = Field(description="Every report in the scope (rank 0), those "
                                      "of units above the level too")
    data: list[ReportingRowPublic]
    reports: list[ReportPublic] = Field(description="The late and missed reports, by deadline "
                                        "(those never handed out too: handed_out false)")
    unsure: list[ReportPublic] = Field(
        default_factory=list, description="待核实: reports never handed out whose deadline "
        "passed but whether they were owed depends on a step never done (a leak alerted as 一般 "
        "never judged: was it 重大?). Not counted in any figure; listed so none vanishes")


NOT_HANDED_OUT = "未派发"
REPORTING_ORDER = ["on_time_rate desc", "missed asc", "late asc", "mean_late_minutes asc"]


def _figures(f: Figures) -> dict[str, int | float | None]:
    return {"due": f.due, "on_time": f.on_time, "late": f.late, "missed": f.missed,
            "on_time_rate": f.on_time_rate, "mean_late_minutes": f.mean_late_minutes,
            "max_late_minutes": f.max_late_minutes}


def row_view(r: ReportingRow) -> ReportingRowPublic:
    return ReportingRowPublic(
        rank=r.rank, unit_id=r.unit_id, unit_name=r.unit_name, **_figures(r.all),
        unsure=r.unsure,
        kinds=[KindFiguresPublic(kind=k, **_figures(f)) for k, f in ordered_kinds(r)])


def report_view(rt: Runtime, r: Report) -> ReportPublic:
    return ReportPublic(
        step_id=r.step_id, run_id=r.run_id, run_title=r.run_title, playbook=r.playbook_id,
        title=r.title, kind=r.kind, unit_id=r.unit_id, unit_name=rt.org.unit_name(r.unit_id),
        counted_for=r.owner_id, due_at=r.due_at, due_at_local=rt.renderer.deadline(r.due_at),
        done_at=r.done_at,
        done_at_local=rt.renderer.local(r.done_at) if r.done_at is not None else None,
        outcome=r.outcome,
        late_minutes=None if r.late_seconds is None else round(r.late_seconds / 60, 1),
        status=r.status,
        status_zh=STATUS_ZH.get(r.status, r.status) if r.handed_out else NOT_HANDED_OUT,
        step=r.step_key, handed_out=r.handed_out, held_up_by=r.held_up_by,
        depends_on=r.depends_on)


def _reporting(rt: Runtime, person: str, month: str | None, level: str, unit: str | None
               ) -> tuple[ReportingPublic, Reporting]:
    scope, _ = manager_scope(rt, person, unit)
    if level not in LEVELS:
        shown = clipped(level, 80)
        raise InvalidInput("level", f"未知的统计层级“{shown}”（可选：{LEVEL_NAMES}）/ unknown "
                           f"level '{shown}' (known: {', '.join(LEVELS)})")
    if not ranked_units(rt.org, level=level, within=scope):
        raise InvalidInput("level", f"{rt.org.unit_name(scope)}（{scope}）下没有"
                           f"{LEVEL_ZH.get(level, level)}级单位（可选层级：{LEVEL_NAMES}）/ no "
                           f"{level}-level units within '{scope}' (levels: {', '.join(LEVELS)})")
    now = rt.clock.now()
    with read_session(rt.db) as session:
        found = monthly_reporting(session, org=rt.org, month=month or previous_month(now, rt.tz),
                                  tz=rt.tz, now=now, level=level, within=scope, rt=rt)
    total = row_view(found.total).model_copy(update={"rank": 0})
    view = ReportingPublic(
        month=found.month, level=level, unit=scope, timezone=rt.settings.timezone,
        start=found.start, start_local=rt.renderer.local(found.start), end=found.end,
        end_local=rt.renderer.deadline(found.end), as_of=found.as_of,
        as_of_local=rt.renderer.deadline(found.as_of), order=REPORTING_ORDER,
        kinds=list(REPORT_KINDS), total=total, data=[row_view(r) for r in found.rows],
        reports=[report_view(rt, r) for r in found.reports],
        unsure=[report_view(rt, r) for r in found.unsure])
    return view, found


@router.get("/api/reporting", response_model=ReportingPublic)
def reporting(rt: RuntimeDep, person: CurrentPerson, month: MonthQ = None,
              level: LevelQ = "street", unit: UnitQ = None) -> ReportingPublic:
    """信息报送考核 (manager): per unit of `level` within `unit`, the month's reports (steps a
    playbook marks `report:`, each round and item one report) due, on time, late (迟报, mean
    and worst lateness), missed (漏报) and the on-time rate, by kind too, ranked; and each
    late or missed report with its run. A report due from the alert that was never handed out
    (a step before it never done) is 漏报 once its deadline passes where the run's facts make
    it owed (`handed_out` false, `held_up_by`); where they cannot tell, it is in `unsure`
    (待核实), not counted. Definitions: flows/reporting.py, flows/report_owed.py."""
    return _reporting(rt, person, month, level, unit)[0]


DetailQ = Annotated[bool, Query(description="true: the 迟报、漏报明细 alone (each late, missed "
                               "or 待核实 report with its run and task), as CSV or XLSX")]


@router.get("/api/reporting/export")
def export_reporting(rt: RuntimeDep, person: CurrentPerson, month: MonthQ = None,
                     level: LevelQ = "street", unit: UnitQ = None,
                     format: Format = "xlsx", detail: DetailQ = False) -> StreamingResponse:
    """信息报送考核 as CSV or XLSX (manager): each unit's row for all its reports (报告类别
    全部), then one per kind it had due; last the 合计 rows of the whole scope, as the page
    ends with (those of units above the level counted too). XLSX adds a second sheet, 明细:
    every late or missed report (those never handed out too), then the 待核实, each with its
    deadline and times (the bureau's zone), its run and task. `detail=true` gives the 明细
    alone (a CSV holds one table)."""
    fmt = check_format(format)
    view, found = _reporting(rt, person, month, level, unit)
    listed = exports.reporting_detail_rows(rt, [*found.reports, *found.unsure], view.month,
                                           status_zh=STATUS_ZH)
    details = exports.Table(f"信息报送考核明细{view.month}" if detail
                            else exports.REPORTING_DETAIL_TITLE,
                            exports.REPORTING_DETAIL_COLUMNS, listed)
    if detail:
        return download(rt, fmt, details)
    basis = f"实时统计（截至 {view.as_of_local}）"
    rows = exports.reporting_rows(found.rows, view.month, basis, total=found.total)
    return download(rt, fmt, exports.Table(f"信息报送考核{view.month}",
                                            exports.REPORTING_COLUMNS, rows, more=(details,)))
