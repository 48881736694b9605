"""The registers (三个清单) and the monthly ranking (综合评价月排名): the hazard list and one
hazard's register entry, the rectification list (整改清单), the risk points (风险清单), the
ranking, and each as a CSV or XLSX export.

Who sees what (SPEC §3): the hazard list and a hazard are read like runs (the caller's own
branch of the tree, flows.access.readable_units). The rectification and risk registers, the
ranking and every export are a manager's: `manager` (or admin) over the requested `unit`,
which is the whole district (the org's root) when not given, so a street's manager asks
for `unit=<their street>` and gets 403 for anything wider. A hazard whose unit is gone from
the org chart is in a list (and an export) only when it covers the whole district, so only
those who get such a list (admin, people of the root unit such as the district's manager)
may open it; anyone else gets 403.

Every filter is checked before a query runs (SPEC: bad input is a 422 naming the field, never
a 500 nor a silently empty answer): a status, source, grade or risk level must be one the
registers can hold (derived from the loaded register playbooks, see `register_vocabulary`),
a time must lie within 1900-01-01 … 2100-01-01 local time (api/deps.filter_time), a `sort`
takes at most one leading '-', and an export's `format` is csv or xlsx, lower case. Every
message is Chinese first, then English. (A parameter given twice is refused before any route:
api/deps.single_query_values.)"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, select

from api.deps import MAX_ROW, CurrentPerson, Offset, RowId, RuntimeDep, filter_time
from api.downloads import check_format, download
from api.schemas import Page
from flows import exports, registers
from flows.access import can_act_on, can_read_unit, listing_units, readable_units, require_right
from flows.holders import Holding, holdings
from flows.ranking import (
    LEVELS,
    RankingRow,
    month_bounds,
    monthly_ranking,
    previous_month,
    ranked_units,
)
from flows.ranking_publish import latest_publication, publish_ranking, published_ranking
from flows.runtime import Runtime
from flows.spec import Playbook
from models.db import read_session
from models.errors import Forbidden, InvalidInput, NotFound, clipped
from models.hazard import Hazard, RiskPoint
from models.ranking import RankingPublication
from models.register_queries import (
    CLOSED,
    HAZARD_SORTS,
    OPEN,
    RISK_LEVELS,
    RISK_SORTS,
    HazardFilter,
    RiskFilter,
    get_hazard,
    iter_hazards,
    iter_risks,
    list_hazards,
    list_risks,
)
from models.task import StepInstance

router = APIRouter(tags=["registers"])

Limit = Annotated[int, Query(ge=1, le=500)]
Format = Annotated[str, Query(description="csv (UTF-8 with BOM) or xlsx")]


# -- shapes ------------------------------------------------------------

class PlanElements(BaseModel):
    """五落实 of the rectification plan (from the plan step's outputs)."""

    measures: str | None = Field(description="措施")
    funds: str | None = Field(description="资金")
    deadline: str | None = Field(description="时限")
    responsible: str | None = Field(description="责任")
    contingency: str | None = Field(description="预案")


class HazardPublic(BaseModel):
    run_id: int = Field(description="The hazard's run (GET /api/runs/{run_id} for its steps)")
    code: str = Field(description="隐患编号")
    playbook: str
    unit_id: str
    unit_name: str
    street_id: str | None
    street_name: str | None
    source: str
    grade: str
    category: str | None
    location: str
    description: str | None
    enterprise: str | None
    found_at: datetime
    found_at_local: str
    found_by: str | None
    found_by_name: str | None
    due_at: datetime | None = Field(description="整改期限 (after any approved extension)")
    due_at_local: str | None
    original_due_at: datetime | None = Field(
        description="原整改期限: the deadline before an approved extension moved it; none when "
                    "the deadline was never extended")
    original_due_at_local: str | None = None
    status: str = Field(description="The run's phase (登记, 挂牌督办, 整改方案, 整改中, 复查中, "
                                    "验收销号, 回头看, 已销号, 已撤销, ...)")
    overdue: bool = Field(description="Not closed nor cancelled, and past the deadline")
    days_left: int | None = Field(description="Calendar days to the deadline (local); "
                                  "negative when overdue; none once closed or cancelled")
    overdue_days: int | None = Field(
        default=None, description="逾期天数 as the rectification register counts them: 0 until "
        "the deadline passes, then calendar days past its last day, at least 1; none once "
        "closed or cancelled")
    closed_at: datetime | None = Field(description="销号时间")
    closed_at_local: str | None
    campaign_run_id: int | None
    plan: PlanElements
    current_step: str | None = Field(
        default=None, description="当前环节: the open task the hazard waits on (its first in "
        "playbook order); none when closed, cancelled or waiting on the clock (回头看)")
    current_step_status: str | None = Field(
        default=None, description="That task's status: ready, acked, submitted (awaiting its "
        "verifier) or rejected (sent back)")
    current_holders: list[str] = Field(
        default_factory=list, description="当前办理人, person ids: the task's assignees, or "
        "once handed in the people who may verify it")
    current_holder_names: list[str] = Field(
        default_factory=list, description="`current_holders` as people read them")
    current_escalation: str | None = Field(
        default=None, description="督办级别: the rung that task's ladder has reached (第2级：挂牌"
        "督办超时督办; the verifier's ladder once handed in); none while nobody was chased")


class HazardsPublic(Page):
    data: list[HazardPublic]


class RiskPublic(BaseModel):
    id: int
    code: str
    unit_id: str
    unit_name: str
    street_id: str | None
    street_name: str | None
    name: str
    category: str | None
    location: str | None
    level: str = Field(description="重大 | 较大 | 一般 | 低")
    controls: str | None = Field(description="管控措施")
    responsible: str | None
    responsible_name: str | None
    updated_at: datetime
    updated_at_local: str


class RisksPublic(Page):
    data: list[RiskPublic]


class RankingRowPublic(BaseModel):
    rank: int
    unit_id: str
    unit_name: str
    found: int = Field(description="Hazards found in the month")
    closed: int = Field(description="Hazards closed (销号) in the month, whenever found")
    closed_of_found: int = Field(description="Of those found in the month, closed in it")
    closure_rate: float | None = Field(description="closed_of_found / found (0..1)")
    overdue: int = Field(description="Overdue and not closed at month end (the current "
                         "month: now)")
    mean_days_to_close: float | None = Field(description="Mean closed_at - found_at over "
                                             "the month's closed, days, 1 decimal")
    on_time: int = Field(description="Of the month's closed, closed by their deadline")
    on_time_rate: float | None = Field(description="on_time / closed (0..1)")


class PublicationPublic(BaseModel):
    id: int
    month: str
    published_at: datetime
    published_at_local: str
    published_by: str
    published_by_name: str
    reason: str | None = Field(description="Why the month was published again (a correction)")


class RankingPublic(BaseModel):
    month: str
    level: str
    unit: str = Field(description="The scope: units of `level` within it are ranked")
    timezone: str
    start: datetime = Field(description="First instant of the month (local midnight), UTC")
    start_local: str = Field(description="`start` in the bureau's time zone (`timezone`): "
                             "the month's first day, 00:00")
    end: datetime = Field(description="First instant of the next month, UTC (exclusive)")
    end_local: str = Field(description="`end` in the bureau's time zone, as a deadline is "
                           "printed: the month's last day, 24:00")
    as_of: datetime = Field(description="The figures' cut-off, UTC: `end`, or now for the "
                            "current month (counted up to now)")
    as_of_local: str = Field(description="`as_of` in the bureau's time zone (a finished "
                             "month: its last day, 24:00)")
    order: list[str] = Field(description="What the rank compares, in turn")
    live: bool = Field(description="true: counted now from the register; false: the figures "
                       "as published (`published`), which a later cancel or extension no "
                       "longer moves")
    published: PublicationPublic | None = Field(
        description="The month's latest publication, if it was published (with `live=true` "
                    "too, so a reader sees the recount beside what was announced)")
    data: list[RankingRowPublic]


class PublishRanking(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt `reson` must not publish unsaid

    month: str = Field(description="YYYY-MM, a finished month in the bureau's time zone")
    reason: str | None = Field(default=None, max_length=2000, description="Required to "
                               "publish a month again (a correction); kept with it")


RANK_ORDER = ["on_time_rate desc", "closure_rate desc", "overdue asc",
              "mean_days_to_close asc"]


# -- scope and filters --------------------------------------------------------------------------

def manager_scope(rt: Runtime, person: str, unit: str | None) -> tuple[str, list[str] | None]:
    """The unit a manager's register, ranking or export covers, and its units (None: all)."""
    unit = unit or rt.org.root_id
    if unit not in rt.org.units:
        name = clipped(unit, 80)
        raise InvalidInput("unit", f"没有单位 {name} / unknown unit '{name}'")
    require_right(rt.org, person, "manager", unit)
    return unit, None if unit == rt.org.root_id else rt.org.descendants(unit)


# -- what a filter may ask for ------------------------------------------------------------------

def _check_range(since_field: str, since: datetime | None, until_field: str,
                 until: datetime | None) -> None:
    """An `until` not after its `since` selects nothing: say so rather than answer empty."""
    if since is not None and until is not None and until <= since:
        raise InvalidInput(until_field, f"须晚于 {since_field} / must be after {since_field} "
                           f"('{until.isoformat()}' <= '{since.isoformat()}')")


@dataclass(frozen=True)
class Vocabulary:
    """The values a register row can hold, so a filter on any other is refused rather than
    answered with nothing. `None`: open (some register playbook takes free text there)."""

    statuses: tuple[str, ...]
    sources: tuple[str, ...] | None
    grades: tuple[str, ...] | None


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _param_values(playbook: Playbook, name: str, fallback: str) -> list[str] | None:
    """What `params.<name>` can leave in the register: an enum's values, plus the value the
    register writes when the param is not given (`fallback`); None when it is free text."""
    spec = playbook.params.get(name)
    if spec is None:
        return [fallback]
    if spec.type != "enum" or not spec.values:
        return None
    return [*spec.values, fallback]


def register_vocabulary(rt: Runtime) -> Vocabulary:
    """Derived from the loaded playbooks that keep a register, read at each request so a
    playbook reload is seen: the phases of their steps (and of their re-inspections) and the
    labels flows/registers.py writes itself; the enum values of `source` and `grade`."""
    playbooks = [pb for pb in rt.catalog.current.values() if pb.register_ is not None]
    phases: list[str] = [OPEN, CLOSED, registers.REGISTERED]
    for pb in playbooks:
        for step in pb.steps:
            checked = (step.verify.phase, step.verify.reject_phase) if step.verify else ()
            phases += [p for p in (step.phase, *checked) if p]
    phases += [registers.CLOSED, registers.FINISHED, registers.CANCELLED]
    sources: list[str] | None = []
    grades: list[str] | None = []
    for pb in playbooks:
        source_values = _param_values(pb, "source", registers.DEFAULT_SOURCE)
        grade_values = _param_values(pb, "grade", registers.DEFAULT_GRADE)
        sources = None if sources is None or source_values is None else sources + source_values
        grades = None if grades is None or grade_values is None else grades + grade_values
    return Vocabulary(statuses=_unique(phases),
                      sources=None if sources is None else _unique(sources),
                      grades=None if grades is None else _unique(grades))


def check_sort(sort: str, known: Iterable[str]) -> None:
    """A sort key, with at most one leading '-' (descending): `--found_at` is refused."""
    if sort.removeprefix("-") not in known:
        names = "、".join(known)
        shown = clipped(sort, 80)
        raise InvalidInput("sort", f"未知的排序“{shown}”（可选：{names}，前加 - 为倒序）/ "
                           f"unknown sort '{shown}' (known: {', '.join(known)}, each "
                           "optionally prefixed with one -)")


def check_known(field: str, value: str | None, known: Sequence[str] | None) -> None:
    if value is not None and known is not None and value not in known:
        raise InvalidInput(field, f"未知的取值“{value}”（可选：{'、'.join(known)}）/ unknown "
                           f"{field} '{value}' (known: {', '.join(known)})")


@dataclass
class HazardQuery:
    """The hazard filters every hazard endpoint takes, before scoping to units."""

    unit: str | None
    filters: HazardFilter
    sort: str | None


def hazard_query(
    rt: RuntimeDep,
    unit: Annotated[str | None, Query(description="This unit and the units below it")] = None,
    status: Annotated[str | None, Query(description="Comma list of phases (整改中, 已销号, "
                                        "...), or open / closed")] = None,
    grade: Annotated[str | None, Query(description="一般 | 重大")] = None,
    source: Annotated[str | None, Query(description="检查发现 | 群众举报 | 执法检查 | "
                                        "事故调查")] = None,
    category: str | None = None,
    overdue: Annotated[bool | None, Query(description="true: not closed and past the "
                                          "deadline; false: the others")] = None,
    overdue_at: Annotated[datetime | None, Query(
        description="Overdue at that moment: found and due before it, not closed by it (the "
        "月末逾期未销号数 of a month: give the first instant of the month after it)")] = None,
    found_since: datetime | None = None,
    found_until: Annotated[datetime | None, Query(description="exclusive")] = None,
    closed_since: datetime | None = None,
    closed_until: Annotated[datetime | None, Query(description="exclusive")] = None,
    campaign: Annotated[int | None, Query(ge=1, le=MAX_ROW,
                                          description="A 3030 campaign's run id")] = None,
    code: Annotated[str | None, Query(description="隐患编号, exact")] = None,
    q: Annotated[str | None, Query(max_length=200,
                                   description="隐患编号, location, description or "
                                   "enterprise contains")] = None,
    sort: Annotated[str | None, Query(description="found_at | due_at | closed_at | code; "
                                      "prefix - for descending. Default -found_at (the "
                                      "rectification register: due_at)")] = None,
) -> HazardQuery:
    if sort:
        check_sort(sort, HAZARD_SORTS)
    statuses = [s.strip() for s in status.split(",") if s.strip()] if status else None
    if statuses or source or grade:
        known = register_vocabulary(rt)
        for one in statuses or ():
            check_known("status", one, known.statuses)
        check_known("source", source or None, known.sources)
        check_known("grade", grade or None, known.grades)
    overdue_at = filter_time(rt, "overdue_at", overdue_at)
    found_since = filter_time(rt, "found_since", found_since)
    found_until = filter_time(rt, "found_until", found_until)
    closed_since = filter_time(rt, "closed_since", closed_since)
    closed_until = filter_time(rt, "closed_until", closed_until)
    _check_range("found_since", found_since, "found_until", found_until)
    _check_range("closed_since", closed_since, "closed_until", closed_until)
    return HazardQuery(unit=unit, sort=sort or None, filters=HazardFilter(
        statuses=statuses, grade=grade or None, source=source or None,
        category=category or None, overdue=overdue, overdue_at=overdue_at,
        found_since=found_since,
        found_until=found_until, closed_since=closed_since, closed_until=closed_until,
        campaign=campaign, code=code or None, q=q or None))


HazardQueryDep = Annotated[HazardQuery, Depends(hazard_query)]


def _whole_org(rt: Runtime, units: list[str] | None) -> list[str] | None:
    """Every unit is the same as no unit filter, and a cheaper query."""
    return None if units is None or len(set(units)) >= len(rt.org.units) else units


def _hazards_streamed(rt: Runtime, filters: HazardFilter, sort: str, now: datetime
                      ) -> Iterator[Hazard]:
    """Rows for an export, read in their own session while the response streams."""
    with read_session(rt.db) as session:
        yield from iter_hazards(session, filters=filters, now=now, sort=sort)


def _risks_streamed(rt: Runtime, filters: RiskFilter, sort: str) -> Iterator[RiskPoint]:
    with read_session(rt.db) as session:
        yield from iter_risks(session, filters=filters, sort=sort)


# -- views ------------------------------------------------------------

def _on_paper(render: Callable[[datetime | None], str], value: datetime | None) -> str:
    """A time as the renderer writes it (local). One within hours of datetime's ends, that a
    run's params may have carried into an older row, has no local time: it is shown as
    stored, in UTC, rather than fail the whole list."""
    try:
        return render(value)
    except OverflowError:
        return f"{value:%Y-%m-%d %H:%M} UTC" if value else ""


def hazard_view(rt: Runtime, h: Hazard, now: datetime, held: Holding | None = None
                ) -> HazardPublic:
    names = exports.Names(rt)

    def local(value: datetime | None) -> str:
        return _on_paper(rt.renderer.local, value)

    return HazardPublic(
        run_id=h.run_id, code=h.code, playbook=h.playbook_id, unit_id=h.unit_id,
        unit_name=names.unit(h.unit_id) or h.unit_id, street_id=h.street_id,
        street_name=names.unit(h.street_id), source=h.source, grade=h.grade,
        category=h.category, location=h.location, description=h.description,
        enterprise=h.enterprise, found_at=h.found_at, found_at_local=local(h.found_at),
        found_by=h.found_by, found_by_name=names.person(h.found_by), due_at=h.due_at,
        due_at_local=_on_paper(rt.renderer.deadline, h.due_at) or None,
        original_due_at=h.original_due_at,
        original_due_at_local=_on_paper(rt.renderer.deadline, h.original_due_at) or None,
        status=h.status, overdue=exports.is_overdue(h, now),
        days_left=exports.hazard_days_left(h, now, rt.tz),
        overdue_days=exports.overdue_days(h, now, rt.tz), closed_at=h.closed_at,
        closed_at_local=local(h.closed_at) or None, campaign_run_id=h.campaign_run_id,
        plan=PlanElements(**exports.plan_elements(h.plan)),
        current_step=held.step if held else None,
        current_step_status=held.status if held else None,
        current_holders=list(held.people) if held else [],
        current_holder_names=list(held.names) if held else [],
        current_escalation=held.escalation if held else None,
    )


def _page_view(rt: Runtime, session: Session, rows: list[Hazard], now: datetime
               ) -> list[HazardPublic]:
    """A page of a register: each hazard with who has it now (one lookup for the page)."""
    held = holdings(session, rt, [h.run_id for h in rows])
    return [hazard_view(rt, h, now, held.get(h.run_id)) for h in rows]


def _holders_of(rt: Runtime) -> Callable[[list[int]], dict[int, Holding]]:
    """Who has each hazard now, for an export as it streams: each lookup in a short session
    of its own (the rows come from another, held open while the file is written)."""
    def look(run_ids: list[int]) -> dict[int, Holding]:
        with read_session(rt.db) as session:
            return holdings(session, rt, run_ids)
    return look


def risk_view(rt: Runtime, r: RiskPoint) -> RiskPublic:
    names = exports.Names(rt)
    street = names.street_of(r.unit_id)
    return RiskPublic(
        id=r.id or 0, code=r.code, unit_id=r.unit_id,
        unit_name=names.unit(r.unit_id) or r.unit_id, street_id=street,
        street_name=names.unit(street), name=r.name, category=r.category,
        location=r.location, level=r.level, controls=r.controls, responsible=r.responsible,
        responsible_name=names.person(r.responsible), updated_at=r.updated_at,
        updated_at_local=rt.renderer.local(r.updated_at),
    )


def ranking_view(r: RankingRow) -> RankingRowPublic:
    return RankingRowPublic(
        rank=r.rank, unit_id=r.unit_id, unit_name=r.unit_name, found=r.found,
        closed=r.closed, closed_of_found=r.closed_of_found, closure_rate=r.closure_rate,
        overdue=r.overdue, mean_days_to_close=r.mean_days_to_close, on_time=r.on_time,
        on_time_rate=r.on_time_rate,
    )


# -- what the registers' filters may take ---------------------------------

@router.get("/api/registers/vocabulary")
def vocabulary(rt: RuntimeDep, person: CurrentPerson) -> dict[str, list[str] | None]:
    """The values the register filters accept, from the loaded register playbooks: statuses
    (`open` and `closed`, then the phases), sources and grades (null: free text), and the risk
    register's levels. The pages offer these; any other value is refused (422)."""
    known = register_vocabulary(rt)
    return {"statuses": list(known.statuses),
            "sources": None if known.sources is None else list(known.sources),
            "grades": None if known.grades is None else list(known.grades),
            "risk_levels": list(RISK_LEVELS)}


# -- 隐患清单 ------------------------------------------------------------

@router.get("/api/hazards", response_model=HazardsPublic)
def list_hazards_(rt: RuntimeDep, person: CurrentPerson, query: HazardQueryDep,
                  limit: Limit = 50, offset: Offset = 0) -> HazardsPublic:
    """The hazard register (隐患清单) as far as the caller may read it, newest found first."""
    units = _whole_org(rt, listing_units(rt.org, person, query.unit, above=False))
    now = rt.clock.now()
    with read_session(rt.db) as session:
        rows, total = list_hazards(session, filters=replace(query.filters, units=units),
                                   now=now, sort=query.sort or "-found_at", limit=limit,
                                   offset=offset)
        data = _page_view(rt, session, rows, now)
    return HazardsPublic(data=data, count=total,
                         limit=limit, offset=offset)


@router.get("/api/hazards/export")
def export_hazards(rt: RuntimeDep, person: CurrentPerson, query: HazardQueryDep,
                   format: Format = "xlsx") -> StreamingResponse:
    """The hazard register (隐患清单) as CSV or XLSX, same filters as the list (manager)."""
    fmt = check_format(format)
    _, units = manager_scope(rt, person, query.unit)
    now = rt.clock.now()
    rows = _hazards_streamed(rt, replace(query.filters, units=units),
                             query.sort or "-found_at", now)
    return download(rt, fmt, exports.Table("隐患清单", exports.HAZARD_COLUMNS,
                                            exports.hazard_rows(rt, rows, now)))


@router.get("/api/hazards/{run_id}", response_model=HazardPublic)
def read_hazard(run_id: RowId, rt: RuntimeDep, person: CurrentPerson) -> HazardPublic:
    """One hazard's register entry."""
    with read_session(rt.db) as session:
        h = get_hazard(session, run_id=run_id)
    if h is None:
        raise NotFound("hazard", run_id)
    if h.unit_id not in rt.org.units:
        # Its unit is gone from the org chart: only a list of the whole district shows it
        # (admin, or a person of the root unit such as the district's manager), so only they
        # may open it; can_read_unit would ask the chart about the missing unit (a 404).
        if _whole_org(rt, readable_units(rt.org, person, above=False)) is not None:
            raise Forbidden(f"无权查看该隐患（所属单位 {h.unit_id} 已不在组织架构中，仅区级可查看）"
                            f" / hazard belongs to unit '{h.unit_id}', no longer in the org "
                            "chart: only the whole district's readers may open it")
    elif not (can_read_unit(rt.org, person, h.unit_id, above=False)
              or _works_on(rt, person, run_id)):
        raise Forbidden(f"无权查看该隐患（属于{rt.org.unit_name(h.unit_id)}，{h.unit_id}）"
                        f"/ hazard belongs to unit "
                        f"'{h.unit_id}', outside your units")
    with read_session(rt.db) as session:
        held = holdings(session, rt, [h.run_id]).get(h.run_id)
    return hazard_view(rt, h, rt.clock.now(), held)


def _works_on(rt: Runtime, person: str, run_id: int) -> bool:
    """Whoever a task of the hazard is given to (reassigned from another unit: a street-level
    hazard's rectification handed to a community's safety officer) reads its entry, as they
    read its run and the task."""
    with read_session(rt.db) as session:
        steps = session.exec(select(StepInstance).where(StepInstance.run_id == run_id)).all()
    return any(can_act_on(rt.org, person, step) for step in steps)


# -- 整改清单 ------------------------------------------------------------

def _rectification(rt: Runtime, person: str, query: HazardQuery) -> tuple[HazardFilter, str]:
    _, units = manager_scope(rt, person, query.unit)
    return replace(query.filters, units=units, open_only=True), query.sort or "due_at"


@router.get("/api/registers/rectification", response_model=HazardsPublic)
def rectification(rt: RuntimeDep, person: CurrentPerson, query: HazardQueryDep,
                  limit: Limit = 50, offset: Offset = 0) -> HazardsPublic:
    """The rectification register (整改清单): hazards not closed, with their plan's five
    elements (五落实), deadline and days left, nearest deadline first (manager)."""
    filters, sort = _rectification(rt, person, query)
    now = rt.clock.now()
    with read_session(rt.db) as session:
        rows, total = list_hazards(session, filters=filters, now=now, sort=sort, limit=limit,
                                   offset=offset)
        data = _page_view(rt, session, rows, now)
    return HazardsPublic(data=data, count=total,
                         limit=limit, offset=offset)


@router.get("/api/registers/rectification/export")
def export_rectification(rt: RuntimeDep, person: CurrentPerson, query: HazardQueryDep,
                         format: Format = "xlsx") -> StreamingResponse:
    """The rectification register (整改清单) as CSV or XLSX (manager)."""
    fmt = check_format(format)
    filters, sort = _rectification(rt, person, query)
    now = rt.clock.now()
    rows = _hazards_streamed(rt, filters, sort, now)
    return download(rt, fmt, exports.Table("整改清单", exports.RECTIFICATION_COLUMNS,
                                            exports.rectification_rows(
                                                rt, rows, now, _holders_of(rt))))


# -- 风险清单 ------------------------------------------------------------

@dataclass
class RiskQuery:
    unit: str | None
    filters: RiskFilter
    sort: str


def risk_query(
    unit: Annotated[str | None, Query(description="This unit and the units below it")] = None,
    level: Annotated[str | None, Query(description="重大 | 较大 | 一般 | 低")] = None,
    category: str | None = None,
    q: Annotated[str | None, Query(max_length=200,
                                   description="Name or location contains")] = None,
    sort: Annotated[str, Query(description="level (重大 first) | code | name | updated_at; "
                               "prefix - for descending")] = "level",
) -> RiskQuery:
    check_sort(sort, RISK_SORTS)
    check_known("level", level or None, RISK_LEVELS)
    return RiskQuery(unit=unit, sort=sort, filters=RiskFilter(
        level=level or None, category=category or None, q=q or None))


RiskQueryDep = Annotated[RiskQuery, Depends(risk_query)]


@router.get("/api/risks", response_model=RisksPublic)
def list_risks_(rt: RuntimeDep, person: CurrentPerson, query: RiskQueryDep,
                limit: Limit = 50, offset: Offset = 0) -> RisksPublic:
    """The risk register (风险清单): risk points, highest level first (manager)."""
    _, units = manager_scope(rt, person, query.unit)
    with read_session(rt.db) as session:
        rows, total = list_risks(session, filters=replace(query.filters, units=units),
                                 sort=query.sort, limit=limit, offset=offset)
    return RisksPublic(data=[risk_view(rt, r) for r in rows], count=total, limit=limit,
                       offset=offset)


@router.get("/api/risks/export")
def export_risks(rt: RuntimeDep, person: CurrentPerson, query: RiskQueryDep,
                 format: Format = "xlsx") -> StreamingResponse:
    """The risk register (风险清单) as CSV or XLSX (manager)."""
    fmt = check_format(format)
    _, units = manager_scope(rt, person, query.unit)
    rows = _risks_streamed(rt, replace(query.filters, units=units), query.sort)
    return download(rt, fmt, exports.Table("风险清单", exports.RISK_COLUMNS,
                                            exports.risk_rows(rt, rows)))


# -- 综合评价月排名 ------------------------------------------------------------

def _ranking(rt: Runtime, person: str, month: str | None, level: str, unit: str | None,
             live: bool = False) -> tuple[RankingPublic, list[RankingRow]]:
    scope, _ = manager_scope(rt, person, unit)
    if level not in LEVELS:
        shown = clipped(level, 80)
        raise InvalidInput("level", f"未知的排名层级“{shown}”（可选：{LEVEL_NAMES}）/ unknown "
                           f"level '{shown}' (known: {', '.join(LEVELS)})")
    month = month or previous_month(rt.clock.now(), rt.tz)
    targets = ranked_units(rt.org, level=level, within=scope)
    if not targets:
        raise InvalidInput("level", f"{rt.org.unit_name(scope)}（{scope}）下没有"
                           f"{LEVEL_ZH.get(level, level)}级单位（可选层级：{LEVEL_NAMES}）/ no "
                           f"{level}-level units within '{scope}' (levels: {', '.join(LEVELS)})")
    with read_session(rt.db) as session:
        month_bounds(month, rt.tz)  # a malformed month is refused before any lookup
        publication = latest_publication(session, month)
        found = None if live or publication is None else published_ranking(
            session, month=month, level=level, tz=rt.tz,
            # The whole district reads every unit published, one since removed included.
            units=None if scope == rt.org.root_id else targets, publication=publication)
        ranking = found[0] if found is not None else monthly_ranking(
            session, org=rt.org, month=month, tz=rt.tz, now=rt.clock.now(), units=targets,
            level=level)
    view = RankingPublic(month=ranking.month, level=level, unit=scope,
                         timezone=rt.settings.timezone, start=ranking.start,
                         start_local=rt.renderer.local(ranking.start), end=ranking.end,
                         end_local=rt.renderer.deadline(ranking.end), as_of=ranking.as_of,
                         as_of_local=rt.renderer.deadline(ranking.as_of), order=RANK_ORDER,
                         live=found is None,
                         published=publication_view(rt, publication) if publication else None,
                         data=[ranking_view(r) for r in ranking.rows])
    return view, ranking.rows


def publication_view(rt: Runtime, p: RankingPublication) -> PublicationPublic:
    return PublicationPublic(id=p.id or 0, month=p.month, published_at=p.published_at,
                             published_at_local=rt.renderer.local(p.published_at),
                             published_by=p.published_by,
                             published_by_name=rt.org.person_name(p.published_by),
                             reason=p.reason)


# The ranking levels (flows.ranking.LEVELS) as a bureau calls them.
LEVEL_ZH = {"street": "街道/镇", "community": "社区/村"}
LEVEL_NAMES = "、".join(f"{k}（{LEVEL_ZH.get(k, k)}）" for k in LEVELS)

MonthQ = Annotated[str | None, Query(description="YYYY-MM, a calendar month in the bureau's "
                                     "time zone, 2000-01 to the current month (counted up to "
                                     "now); default the previous month")]
LevelQ = Annotated[str, Query(description="street (街道/镇) | community (社区/村)")]
UnitQ = Annotated[str | None, Query(description="Rank the units of `level` within this unit; "
                                    "default the whole district")]


LiveQ = Annotated[bool, Query(description="Count a published month afresh from the register "
                              "instead of reading what was published")]


@router.get("/api/ranking", response_model=RankingPublic)
def ranking(rt: RuntimeDep, person: CurrentPerson, month: MonthQ = None,
            level: LevelQ = "street", unit: UnitQ = None, live: LiveQ = False
            ) -> RankingPublic:
    """The monthly ranking of units (综合评价月排名) in hazard closure (manager). Definitions:
    flows/ranking.py. A published month reads its published figures (flows/ranking_publish.py)
    unless `live=true`."""
    return _ranking(rt, person, month, level, unit, live)[0]


@router.post("/api/ranking/publish", status_code=201, response_model=PublicationPublic)
def publish(rt: RuntimeDep, person: CurrentPerson, body: PublishRanking) -> PublicationPublic:
    """Publish a finished month's ranking (通报), both levels, for the whole district (a
    manager of the district). From then on the month reads the published figures. Publishing
    a month again needs a `reason` (409 without one); the earlier publication is kept."""
    return publication_view(rt, publish_ranking(rt, month=body.month, actor=person,
                                                reason=body.reason))


@router.get("/api/ranking/export")
def export_ranking(rt: RuntimeDep, person: CurrentPerson, month: MonthQ = None,
                   level: LevelQ = "street", unit: UnitQ = None, live: LiveQ = False,
                   format: Format = "xlsx") -> StreamingResponse:
    """The monthly ranking as CSV or XLSX (manager): the published figures of a published
    month, unless `live=true`."""
    fmt = check_format(format)
    view, rows = _ranking(rt, person, month, level, unit, live)
    published = view.published
    basis = (f"已通报（{published.published_at_local}，{published.published_by_name}）"
             if published is not None and not view.live
             else f"实时统计（截至 {view.as_of_local}）")
    return download(rt, fmt, exports.Table(f"综合评价月排名{view.month}",
                                            exports.RANKING_COLUMNS,
                                            exports.ranking_rows(rows, view.month, basis)))
