"""3030 campaigns (3030 闭环整治专项行动): a unit's campaign is a run of a `kind: campaign`
playbook with a `target` count and a window; hazards join it through their register param
`campaign: <campaign run id>` (Hazard.campaign_run_id). Its progress is counted live from the
hazard register, on the (campaign_run_id, status) index: one aggregate query, whatever the
number of hazards. Playbook expressions read it as `campaign()`.

The counts: `found` every hazard of the campaign (of its `grade`, unless 全部) that was not
cancelled; `closed` those with a closure (销号, closed_at set); `rectifying` those not closed
yet; `overdue` those not closed whose deadline has passed. `met` is closed >= target."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, false, func, not_
from sqlmodel import Session, select

from flows.access import require_read_run
from flows.registers import CANCELLED
from flows.runtime import Runtime
from models import run as rs
from models.base import MAX_ID
from models.db import read_session
from models.errors import NotFound
from models.hazard import Hazard
from models.run import Run
from models.task import StepInstance

CAMPAIGN_KIND = "campaign"
DEFAULT_TARGET = 30
ALL_GRADES = "全部"


def _run(session: Session, run_id: int) -> Run | None:
    """The run with this id; an id no run can have (beyond MAX_ID) is simply none."""
    return session.get(Run, run_id) if 1 <= run_id <= MAX_ID else None


def campaign_target(run: Run) -> int:
    value = (run.params or {}).get("target")
    return value if isinstance(value, int) and not isinstance(value, bool) else DEFAULT_TARGET


def campaign_grade(run: Run) -> str | None:
    """The hazard grade the campaign counts (重大 for a 3030 campaign); None counts every grade."""
    value = (run.params or {}).get("grade")
    return value if isinstance(value, str) and value and value != ALL_GRADES else None


def window_end(session: Session, run_id: int) -> datetime | None:
    """When the campaign's window closes: the due time of its wait step (the first, if many)."""
    return session.exec(
        select(func.min(StepInstance.due_at)).where(
            StepInstance.run_id == run_id, StepInstance.action == "wait"
        )
    ).one()


def campaign_progress(
    session: Session, campaign_run_id: int, now: datetime, *, run: Run | None = None
) -> dict[str, Any]:
    """Live counts of a campaign's hazards: found, rectifying, overdue, closed; its target and
    the end of its window. `run` saves a read when the caller holds the campaign run."""
    run = run or _run(session, campaign_run_id)
    if run is None:
        raise NotFound("campaign", campaign_run_id)
    conds = [Hazard.campaign_run_id == campaign_run_id, Hazard.status != CANCELLED]
    grade = campaign_grade(run)
    if grade is not None:
        conds.append(Hazard.grade == grade)
    is_open = Hazard.closed_at.is_(None)  # type: ignore[union-attr]
    ends = window_end(session, campaign_run_id)
    # A closure counts towards the target only within the window: closing the last hazard a
    # month after the window ended does not turn a missed campaign into a met one.
    late = Hazard.closed_at > ends if ends is not None else false()  # type: ignore[operator]
    found, closed, closed_late, overdue = session.exec(
        select(
            func.count(),
            func.count(case((and_(Hazard.closed_at.is_not(None),  # type: ignore[union-attr]
                                  not_(late)), 1))),
            func.count(case((late, 1))),
            func.count(case((and_(is_open, Hazard.due_at < now), 1))),  # type: ignore[operator]
        ).select_from(Hazard).where(*conds)
    ).one()
    target = campaign_target(run)
    return {
        "found": int(found),
        "rectifying": int(found) - int(closed) - int(closed_late),
        "overdue": int(overdue),
        "closed": int(closed),
        "closed_after_window": int(closed_late),
        "target": target,
        "met": int(closed) >= target,
        "grade": grade or ALL_GRADES,
        "window_end": ends,
    }


def read_progress(rt: Runtime, *, run_id: int, actor: str) -> tuple[Run, dict[str, Any]]:
    """A campaign run and its progress, for someone who may read the run."""
    with read_session(rt.db) as session:
        run = _run(session, run_id)
        if run is None:
            raise NotFound("run", run_id)
        require_read_run(rt.org, actor, run)
        if rt.catalog.pinned(session, run.playbook_sha).kind != CAMPAIGN_KIND:
            raise NotFound("campaign", run_id)
        now = rt.clock.now()
        return run, {**campaign_progress(session, run_id, now, run=run), "as_of": now}


def campaign_problem(session: Session, rt: Runtime, run_id: int, unit_id: str,
                     grade: str | None = None) -> tuple[str, str] | None:
    """Why a hazard of `unit_id` (and `grade`, when known) cannot join campaign run `run_id`
    (中文, English), or None: the run must exist, be a running campaign (kind: campaign), cover
    the unit, and count the hazard's grade. A 一般 hazard in a campaign of 重大 ones would
    count nowhere in its progress, so the person who put it there would believe it helped."""
    run = _run(session, run_id)
    if run is None:
        return f"专项行动 #{run_id} 不存在", f"campaign run {run_id} does not exist"
    try:
        kind = rt.catalog.pinned(session, run.playbook_sha).kind
    except NotFound:
        kind = None
    if kind != CAMPAIGN_KIND:
        return (f"运行 #{run_id}（{run.playbook_id}）不是专项行动",
                f"run {run_id} ({run.playbook_id}) is not a campaign")
    if run.status != rs.RUNNING:
        ended = "结束" if run.status == rs.COMPLETED else "撤销"
        return f"专项行动 #{run_id} 已{ended}", f"campaign run {run_id} is {run.status}"
    if not rt.org.is_within(unit_id, run.unit_id):
        return (f"专项行动 #{run_id} 属于{rt.org.unit_name(run.unit_id)}（{run.unit_id}），"
                f"不包括{rt.org.unit_name(unit_id)}（{unit_id}）",
                f"campaign run {run_id} is for unit '{run.unit_id}', which does not include "
                f"'{unit_id}'")
    counted = campaign_grade(run)
    if grade is not None and counted is not None and grade != counted:
        return (f"专项行动 #{run_id} 只计入{counted}隐患，本隐患为{grade}隐患",
                f"campaign run {run_id} counts only {counted} hazards; this one is {grade}")
    return None
