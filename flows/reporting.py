"""信息报送考核: the timeliness of every report, measured per unit and month and ranked
(DOMAIN.md: 迟报、漏报、瞒报 are punished; seeds/001 篇1: 定期分析各级、各部门值班和重要信息报告
情况). Shaped like the monthly ranking (flows/ranking.py): the same month, levels and roll-up.

**What a report is**: a step instance whose step says `report: <kind>` (flows/spec.py
REPORT_KINDS), each with its own deadline: each round of a recurring 续报 and each fan-out
item (a typhoon stage's street) is one report. The kind is copied onto the row when it is
written (`StepInstance.report_kind`), so the figures read rows alone, through the sparse index
`ix_step_report_due` (report rows only, by deadline): never a scan of all steps.

**The month** (Asia/Shanghai by default) takes the reports whose deadline (`due_at`, the
current one: an approved extension moves it, as in the ranking) falls in it. The current month
is counted up to now: a report whose deadline has not come yet is not due yet, whether or not
it is already done.

**Each report due** is, by what became of it:

- 按时 (on time): done at or before its deadline. A report with a verifier (系统首报, 终报) is
  done when it is signed off: one awaiting its signature has not gone out.
- 迟报 (late): done after its deadline; how late (done_at - due_at) gives the mean and the
  worst, in minutes.
- 漏报 (missed): not done. Still open past its deadline; or cancelled after it (the run
  cancelled or ended, the round withdrawn, the task called off by a downgrade) without being
  done. A report called off before its deadline was not owed and is not counted; nor is a
  step passed over (`when` false). A report still open is 漏报 until it is done, and 迟报
  from then on: the figures are live.
- 漏报 too, a report **never handed out** (no row: a step it waits on was never done) whose
  deadline counts from the alert (`from: run`) and has passed, where the run's facts make it
  owed (flows/report_owed.py). Where they cannot tell yet (its `when` reads a step never
  done), it is not counted but listed as 待核实 (`Reporting.unsure`), and each unit's row
  says how many are its own (`ReportingRow.unsure`).
- A report handed out already past its deadline (a 重大 judged 40 minutes after the alert
  hands out the 30-minute verbal report late) is 漏报 from the moment it is handed out, 迟报
  once done: the deadline is the law's, from the alert. The task page says so
  (flows/deadline_basis.py).

**Runs from before `report:`** have no `report_kind` on their rows and are not counted, nor
backfilled: the playbook version each such run pinned has no `report:` key (the key came with
the column, and a pinned version is never rewritten), so a backfill "from the pinned playbook"
finds nothing by construction; one from today's files would hold those runs to rules (from the
alert) they did not run under, their deadlines having been counted another way.

**Where a report belongs**: where its event is, the row's `origin_unit_id` or else `unit_id`:
the run's unit (a gas leak's community, even though the district's duty room writes its
reports), or a fan-out item's (each street's and community's typhoon answer). It is rolled
up to the unit of the level at or above it (`level=street`: its street or town;
`level=community`: its community or village); a report above the level (a run at the
district) counts only in the total.

**The rank** orders units by: on-time rate (higher first), 漏报 (fewer first), 迟报 (fewer
first), mean lateness (less first); a unit with nothing due ranks below any rate. Units equal
on all four share a rank (1, 2, 2, 4).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, select

from flows.ranking import check_level, check_not_future, month_bounds, ranked_units
from flows.report_owed import unsent_reports
from flows.runtime import Runtime
from flows.spec import REPORT_KINDS
from models import task as st
from models.drill import real_runs
from models.org import OrgChart
from models.run import Run
from models.task import StepInstance

ON_TIME, LATE, MISSED, UNSURE = "按时", "迟报", "漏报", "待核实"


@dataclass
class Figures:
    """Counts of one unit (or of the total), for all kinds or one."""

    due: int = 0
    on_time: int = 0
    late: int = 0
    missed: int = 0
    late_seconds: int = 0  # summed over the late ones
    max_late_seconds: int = 0

    def add(self, outcome: str, late_seconds: int) -> None:
        self.due += 1
        if outcome == ON_TIME:
            self.on_time += 1
        elif outcome == LATE:
            self.late += 1
            self.late_seconds += late_seconds
            self.max_late_seconds = max(self.max_late_seconds, late_seconds)
        else:
            self.missed += 1

    @property
    def on_time_fraction(self) -> Fraction | None:
        return Fraction(self.on_time, self.due) if self.due else None

    @property
    def on_time_rate(self) -> float | None:
        rate = self.on_time_fraction
        return None if rate is None else round(float(rate), 4)

    @property
    def mean_late_minutes(self) -> float | None:
        return _minutes(Fraction(self.late_seconds, self.late)) if self.late else None

    @property
    def max_late_minutes(self) -> float | None:
        return _minutes(Fraction(self.max_late_seconds)) if self.late else None


@dataclass
class ReportingRow:
    unit_id: str
    unit_name: str
    position: int = 0  # the unit's place in the org chart (orders units of equal rank)
    rank: int = 0
    all: Figures = field(default_factory=Figures)
    kinds: dict[str, Figures] = field(default_factory=dict)  # only kinds with a report due
    # 待核实 of the unit, all kinds: never handed out, whether owed unknown. Not counted in any
    # figure nor the rank; shown beside them so a manager sees where facts are missing.
    unsure: int = 0
    _key: tuple[Any, ...] = field(default=(), repr=False)

    def add(self, kind: str, outcome: str, late_seconds: int) -> None:
        self.all.add(outcome, late_seconds)
        self.kinds.setdefault(kind, Figures()).add(outcome, late_seconds)


@dataclass(frozen=True)
class Report:
    """One late or missed report, for "why": its run is one click away."""

    step_id: int | None  # None: never handed out
    run_id: int
    run_title: str
    playbook_id: str
    title: str
    kind: str
    unit_id: str  # where the event is
    owner_id: str | None  # the ranked unit it counts for (None: above the level)
    due_at: datetime
    done_at: datetime | None
    status: str
    outcome: str  # 迟报 | 漏报 | 待核实
    late_seconds: int | None  # 迟报 only
    step_key: str = ""
    handed_out: bool = True  # False: no row (step_id None), never handed out
    held_up_by: str | None = None  # never handed out: the step it waits on
    depends_on: str | None = None  # 待核实: the unfinished step whether it is owed depends on


@dataclass
class Reporting:
    month: str
    level: str
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    as_of: datetime  # UTC: `end`, or now for the current month
    rows: list[ReportingRow]
    total: ReportingRow  # every report in the scope, those above the level too
    reports: list[Report]  # the late and missed ones, by deadline
    # Never handed out, whether owed unknown (待核实): not counted, listed (report_owed.py).
    unsure: list[Report] = field(default_factory=list)


def _minutes(seconds: Fraction) -> float:
    value = Decimal(seconds.numerator) / Decimal(seconds.denominator) / 60
    return float(value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def outcome_of(status: str, due_at: datetime, done_at: datetime | None
               ) -> tuple[str, int] | None:
    """(按时 | 迟报 | 漏报, seconds late) of a report whose deadline has passed, or None when it
    was not owed (passed over, or called off before its deadline)."""
    if status == st.SKIPPED:
        return None
    if status == st.DONE and done_at is not None:
        late = int((done_at - due_at).total_seconds())
        return (ON_TIME, 0) if late <= 0 else (LATE, late)
    if status == st.CANCELLED and done_at is not None and done_at <= due_at:
        return None  # stopped before it was owed
    return MISSED, 0


def counted_runs(query: Any) -> Any:
    """The one place that says which runs' reports are measured: every real run, whatever its
    status (a cancelled run's reports owed before the cancel count as 漏报); never a drill
    (演练, models/drill.py): its reports are evaluated with it, not counted for its unit."""
    return query.where(real_runs())


def _report_rows(session: Session, start: datetime, end: datetime) -> Iterable[Any]:
    """Report rows with a deadline in [start, end), through ix_step_report_due."""
    where_unit = func.coalesce(StepInstance.origin_unit_id, StepInstance.unit_id)
    query = (select(StepInstance.id, StepInstance.run_id, StepInstance.report_kind,
                    where_unit, StepInstance.status, StepInstance.due_at,
                    StepInstance.done_at, StepInstance.title, Run.title, Run.playbook_id,
                    StepInstance.step_key)
             .join(Run, Run.id == StepInstance.run_id)  # type: ignore[arg-type]
             .where(StepInstance.report_kind.is_not(None),  # type: ignore[union-attr]
                    StepInstance.due_at >= start,  # type: ignore[operator]
                    StepInstance.due_at < end)  # type: ignore[operator]
             .order_by(StepInstance.due_at, StepInstance.id))
    return session.exec(counted_runs(query))  # type: ignore[call-overload]


def monthly_reporting(
    session: Session, *, org: OrgChart, month: str, tz: ZoneInfo, now: datetime,
    level: str = "street", within: str | None = None, units: Sequence[str] | None = None,
    rt: Runtime | None = None,
) -> Reporting:
    """The reporting figures of the units of `level` within `within` (default: the whole
    org; or exactly `units`) for `month`, as of `now` (a later month is refused, the current
    one counted to now). With `rt` (its pinned playbooks, calendar and expressions: the API
    always gives it), the reports never handed out are counted too (flows/report_owed.py);
    without, the report rows alone."""
    check_level(level)
    start, end = month_bounds(month, tz)
    check_not_future(month, tz, now)
    as_of = min(end, now.astimezone(UTC))
    targets = list(units) if units is not None else ranked_units(org, level=level, within=within)
    rows = {u: ReportingRow(unit_id=u, unit_name=org.unit(u).name, position=i)
            for i, u in enumerate(targets)}
    owner = {d: u for u in targets for d in org.descendants(u)}
    scope = None if within is None or within == org.root_id else set(org.descendants(within))
    total = ReportingRow(unit_id=within or org.root_id,
                         unit_name=org.unit_name(within or org.root_id))
    reports: list[Report] = []
    for (step_id, run_id, kind, unit_id, status, due_at, done_at, title, run_title,
         playbook_id, step_key) in _report_rows(session, start, as_of):
        if scope is not None and unit_id not in scope:
            continue
        due, done = _utc(due_at), _utc(done_at)
        assert due is not None  # selected by its deadline
        found = outcome_of(status, due, done)
        if found is None:
            continue
        outcome, late = found
        total.add(kind, outcome, late)
        target = owner.get(unit_id)
        if target is not None:
            rows[target].add(kind, outcome, late)
        if outcome != ON_TIME:
            reports.append(Report(
                step_id=step_id, run_id=run_id, run_title=run_title, playbook_id=playbook_id,
                title=title, kind=kind, unit_id=unit_id, owner_id=target, due_at=due,
                done_at=done, status=status, outcome=outcome,
                late_seconds=late if outcome == LATE else None, step_key=step_key))
    unsure: list[Report] = []
    for u in unsent_reports(session, rt, start, as_of) if rt is not None else ():
        if scope is not None and u.unit_id not in scope:
            continue
        target = owner.get(u.unit_id)
        if u.owed:
            total.add(u.kind, MISSED, 0)
            if target is not None:
                rows[target].add(u.kind, MISSED, 0)
        else:
            total.unsure += 1
            if target is not None:
                rows[target].unsure += 1
        (reports if u.owed else unsure).append(Report(
            step_id=None, run_id=u.run_id, run_title=u.run_title, playbook_id=u.playbook_id,
            title=u.title, kind=u.kind, unit_id=u.unit_id, owner_id=target, due_at=u.due_at,
            done_at=u.ended_at, status=st.PENDING, outcome=MISSED if u.owed else UNSURE,
            late_seconds=None, step_key=u.step_key, handed_out=False,
            held_up_by=u.held_up_by, depends_on=u.depends_on))
    rank_rows(list(rows.values()))
    return Reporting(month=month, level=level, start=start, end=end, as_of=as_of,
                     rows=sorted(rows.values(), key=lambda r: (r.rank, r.position)),
                     total=total, reports=sorted(reports, key=_by_deadline),
                     unsure=sorted(unsure, key=_by_deadline))


def _by_deadline(r: Report) -> tuple[datetime, int, int, str]:
    # Rows come by (deadline, id); one never handed out has no id: after them, by run.
    return (r.due_at, 0 if r.step_id is not None else 1, r.step_id or r.run_id, r.step_key)


def ordered_kinds(row: ReportingRow) -> list[tuple[str, Figures]]:
    """A row's kinds in the vocabulary's order (首报 first), as pages and exports list them."""
    return [(k, row.kinds[k]) for k in REPORT_KINDS if k in row.kinds]


def rank_rows(rows: list[ReportingRow]) -> None:
    for r in rows:
        rate = r.all.on_time_fraction
        mean = Fraction(r.all.late_seconds, r.all.late) if r.all.late else Fraction(0)
        # Ascending sort key: a missing rate (True) after any present one (False).
        r._key = (rate is None, -(rate or 0), r.all.missed, r.all.late, mean)
    ordered = sorted(rows, key=lambda r: r._key)
    for i, r in enumerate(ordered):
        r.rank = ordered[i - 1].rank if i and r._key == ordered[i - 1]._key else i + 1
