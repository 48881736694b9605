"""Reports owed but never handed out, for 信息报送考核 (flows/reporting.py).

A step has no row until its `needs` are finished (flows/progress.py), so a 重大 gas leak whose
duty leader never makes the first judgement never hands out the 半小时口头报告 or the 1小时系统
首报 that wait on it: nothing in the report rows says they were owed. Their deadlines are
known all the same: they count from the alert (`due: {after: 30m, from: run}`), so the
deadline is the run's start plus `after`, whether or not the step was ever reached.

**Which reports**: the steps a run's pinned playbook marks `report:` whose deadline counts
from the run (`from: run`), neither a fan-out (`for_each`: how many items is not known before
it fans out) nor recurring (`recur`: rounds count from their own hand-out). A report counted
from when it is handed out (`from: ready`) or from a stage has no deadline before it is
handed out, so it cannot be missed before it exists; one counted from a stage is handed out
on entry to the stage (the typhoon's) anyway.

**Owed or not**, for such a step with no row, not passed over (`when` false, a stage jumped
over), its deadline passed and in the month:

- the run ended (cancelled, completed) at or before the deadline: not owed, as a report
  called off before its deadline (flows/reporting.outcome_of);
- no `when`, or a `when` true on what the run knows now (its params, the steps finished so
  far): owed, 漏报. The shipped conditions only ever add reasons for a report as steps finish
  ("the grade given at the start, or the one the duty leader judged, is 重大"), so one true
  now stays true. A `when` that fails to evaluate counts as true, as the engine hands such a
  step out (progress._guarded);
- a `when` false now while a step it reads has not finished (a leak alerted as 一般 whose
  judgement was never made, so nobody knows whether it was 重大): whether it was owed cannot
  be known. It is not counted (a report never owed must not be), but listed as 待核实, naming
  the step it depends on, so a missed report does not vanish from the books;
- a `when` false on finished steps alone: not owed (the engine will pass it over).

Each names the step holding it up: the nearest unfinished step it waits on that was handed out
(初步研判, still open), or the first step of the chain if none was.

**Cost**: runs of the playbooks that have such a step (a gas leak's, not a hazard's), started
in the month or shortly before it (by the longest such deadline), through
`ix_run_playbook_status` (a few hundred gas leaks, not the month's tens of thousands of
hazards: SQLite, without ANALYZE statistics as in production, takes the equality on the
playbook; PostgreSQL's statistics see how few gas leaks there are); then their report steps'
rows by `ux_step_item`; only runs missing one are read further. Never a scan of all steps.
(Measured: 100,000 hazard runs in the month, 4 ms; an ANALYZEd SQLite file would take
`ix_run_started` instead, 28 ms for 300,000.)"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from flows.context import expression_context
from flows.durations import Duration, add_due
from flows.expressions import ExpressionError, compile_expression
from flows.passed_stages import is_passed_over
from flows.progress import stage_reached
from flows.runtime import Runtime
from flows.spec import Playbook, StepSpec
from models import task as st
from models.drill import real_runs
from models.run import Run
from models.task import StepInstance

_CHUNK = 500  # run ids per IN (...) list


@dataclass(frozen=True)
class Unsent:
    """A report with no row whose deadline (from the run's start) has passed."""

    run_id: int
    run_title: str
    playbook_id: str
    step_key: str
    title: str
    kind: str
    unit_id: str  # where the event is: the run's unit
    due_at: datetime  # UTC
    ended_at: datetime | None  # the run's end, when it ended after the deadline
    owed: bool  # False: whether it was owed cannot be known yet (待核实)
    held_up_by: str | None  # the title of the step it waits on (初步研判…)
    depends_on: str | None  # 待核实: the title of the unfinished step its `when` reads


def run_relative_reports(playbook: Playbook) -> list[StepSpec]:
    """The report steps whose deadline is known from the run's start alone."""
    return [s for s in playbook.steps
            if s.report is not None and s.due is not None and s.due.from_ == "run"
            and not s.for_each and s.recur is None]


def _lead(after: Duration) -> timedelta:
    """At least how long `after` can be in calendar time: working days are bounded by two
    calendar days each and a fortnight of holidays (a Golden Week and its weekends)."""
    if after.unit in ("wd", "d"):  # whole days (`whole_days`) may end a fortnight later too
        return timedelta(days=2 * after.amount + 14)
    return timedelta(seconds=after.seconds())


def unsent_reports(session: Session, rt: Runtime, start: datetime, end: datetime
                   ) -> list[Unsent]:
    """Reports with no row, counted from their run's start, whose deadline is in
    [start, end), of real runs (never a drill), owed or 待核实 (see the module's docstring)."""
    specs_now = {pid: run_relative_reports(pb) for pid, pb in rt.catalog.current.items()}
    playbooks = sorted(pid for pid, specs in specs_now.items() if specs)
    if not playbooks:
        return []
    lead = max(_lead(s.due.after) for pid in playbooks  # type: ignore[union-attr]
               for s in specs_now[pid])
    runs = session.exec(
        select(Run).where(col(Run.playbook_id).in_(playbooks), Run.started_at >= start - lead,
                          Run.started_at < end, real_runs())
        .order_by(col(Run.id))).all()
    due: list[tuple[Run, Playbook, StepSpec, datetime]] = []
    for run in runs:
        playbook = rt.catalog.pinned(session, run.playbook_sha)
        for spec in run_relative_reports(playbook):
            at = add_due(_utc(run.started_at), spec.due.after,  # type: ignore[union-attr]
                         whole_days=spec.due.whole_days,  # type: ignore[union-attr]
                         calendar=rt.calendar, tz=rt.tz)
            if start <= at < end and spec.id not in (run.skipped or ()) \
                    and not is_passed_over(run, spec.stage):
                due.append((run, playbook, spec, at))
    written = _written(session, [r.id or 0 for r, *_ in due], {s.id for _, _, s, _ in due})
    out: list[Unsent] = []
    for run, playbook, spec, at in due:
        if (run.id, spec.id) in written:
            continue  # handed out: its own row is counted (flows/reporting.py)
        ended = _utc(run.finished_at) if run.finished_at is not None else None
        if ended is not None and ended <= at:
            continue  # the run ended before the report was owed
        if spec.stage is not None and not stage_reached(playbook, run, spec.stage):
            continue
        found = _owed(session, rt, run, playbook, spec)
        if found is None:
            continue
        owed, depends_on, statuses = found
        out.append(Unsent(
            run_id=run.id or 0, run_title=run.title, playbook_id=run.playbook_id,
            step_key=spec.id, title=spec.title, kind=spec.report or "", unit_id=run.unit_id,
            due_at=at, ended_at=ended, owed=owed,
            held_up_by=_held_up_by(playbook, spec, statuses),
            depends_on=depends_on))
    return out


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _written(session: Session, run_ids: Sequence[int], keys: set[str]) -> set[tuple[int, str]]:
    """(run, step key) of the given report steps that have a row, through ux_step_item."""
    found: set[tuple[int, str]] = set()
    ids = sorted(set(run_ids))
    for i in range(0, len(ids), _CHUNK):
        rows = session.exec(
            select(StepInstance.run_id, StepInstance.step_key).distinct()
            .where(col(StepInstance.run_id).in_(ids[i:i + _CHUNK]),
                   col(StepInstance.step_key).in_(sorted(keys)))).all()
        found.update((run_id, key) for run_id, key in rows)
    return found


def _statuses(session: Session, run: Run) -> dict[str, list[str]]:
    rows = session.exec(select(StepInstance.step_key, StepInstance.status)
                        .where(StepInstance.run_id == run.id)).all()
    out: dict[str, list[str]] = defaultdict(list)
    for key, status in rows:
        out[key].append(status)
    for key in run.skipped or ():
        out[key].append(st.SKIPPED)
    return out


def _finished(statuses: Iterable[str]) -> bool:
    listed = list(statuses)
    return bool(listed) and all(s in st.FINISHED_STATUSES for s in listed)


def _owed(session: Session, rt: Runtime, run: Run, playbook: Playbook, spec: StepSpec
          ) -> tuple[bool, str | None, dict[str, list[str]]] | None:
    """(owed, the step a 待核实 depends on, the run's step statuses), or None: not owed."""
    statuses = _statuses(session, run)
    if not spec.when:
        return True, None, statuses
    expr = compile_expression(spec.when)
    try:
        holds = bool(expr.evaluate(expression_context(session, rt, run)))
    except ExpressionError:
        holds = None  # evaluated again once the steps it reads have finished
    if holds:
        return True, None, statuses
    read = sorted({step for step, _ in expr.output_lookups}
                  | {key for name, key in expr.lookups if name == "steps"})
    unknown = [k for k in read if not _finished(statuses.get(k, ()))]
    if unknown:
        return False, _title(playbook, unknown[0]), statuses
    if holds is None:
        return True, None, statuses  # the engine hands out a step whose `when` fails
    return None


def _title(playbook: Playbook, key: str) -> str:
    try:
        return playbook.step(key).title
    except KeyError:
        return key


def _held_up_by(playbook: Playbook, spec: StepSpec, statuses: dict[str, list[str]]
                ) -> str | None:
    """The nearest unfinished step `spec` waits on that was handed out; else the first of the
    chain nobody reached (its own needs finished, or it has none)."""
    seen: set[str] = set()
    key: str | None = spec.id
    while key is not None and key not in seen:
        seen.add(key)
        step = playbook.step(key)
        waiting = [n for n in step.needs if not _finished(statuses.get(n, ()))]
        if not waiting:
            return None if key == spec.id else step.title
        handed_out = [n for n in waiting if n in statuses]
        if handed_out:
            return _title(playbook, handed_out[0])
        key = waiting[0]
    return None
