"""Responses already running where a new one would start: the same playbook, running, for the
same unit, a unit above it or a unit below it (a district-wide typhoon response covers the
street a street commander is about to start one for).

A commander at 3 a.m. who taps 启动 twice, or retries after an answer lost on a weak signal,
would otherwise start a second response, and every person on it would be paged twice with two
sets of tasks. Two gas leaks in one community are possible, so nothing is refused by default
(SPEC's start contract is unchanged): a start that asks (`refuse_concurrent`, which the start
page always sends first) is refused with the running ones listed, and the commander confirms;
otherwise the answer lists them. Register playbooks (a hazard) are exempt: a community has
hundreds of hazards open at once, and their codes already keep each one single. A drill and a
real event never overlap: a real gas leak during a gas-leak drill is started at once, not
held up behind the drill (and a drill is not refused for a real event)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from flows.runtime import Runtime
from flows.spec import Playbook
from models import run as rs
from models.audit import ACTOR_NAMES
from models.drill import MARK
from models.errors import ConcurrentRuns
from models.run import Run

SHOWN = 10


@dataclass(frozen=True)
class RunningRun:
    id: int
    title: str
    unit_id: str
    unit_name: str
    stage: str | None
    stage_title: str | None
    started_by: str
    started_by_name: str
    started_at: datetime
    started_at_local: str
    drill: bool = False  # a drill's list holds drills only, a real start's real runs only

    def line(self) -> str:
        """#12 燃气泄漏·六和社区某小区（六和社区，王强 03:01 启动，橙色预警）; a drill's
        title opens with 【演练】."""
        stage = f"，{self.stage_title}" if self.stage_title else ""
        mark = MARK if self.drill else ""
        return (f"#{self.id} {mark}{self.title}（{self.unit_name}，{self.started_by_name} "
                f"{self.started_at_local} 启动{stage}）")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"started_at": self.started_at.isoformat()}


def overlapping_runs(session: Session, rt: Runtime, playbook: Playbook, unit_id: str, *,
                     exclude: int | None = None, drill: bool = False) -> list[RunningRun]:
    """The running runs of `playbook` whose unit is `unit_id`, above it or below it, newest
    first (at most SHOWN); none for a register playbook. Every start's answer carries these,
    so the read is bounded: the newest SHOWN matching rows of the playbook's running runs
    (ix_run_playbook_status, walked backwards in id order), whatever is stored."""
    if playbook.register_ is not None:
        return []
    org = rt.org
    query = (select(Run.id, Run.title, Run.unit_id, Run.stage, Run.started_by, Run.started_at)
             .where(Run.playbook_id == playbook.id, Run.status == rs.RUNNING,
                    col(Run.drill_kind).is_not(None) if drill else col(Run.drill_kind).is_(None)))
    if exclude is not None:
        query = query.where(Run.id != exclude)
    if org.ancestors(unit_id)[-1] != unit_id:  # at the root every unit overlaps
        overlap = org.ancestors(unit_id) + org.descendants(unit_id, include_self=False)
        query = query.where(col(Run.unit_id).in_(overlap))
    rows = session.exec(query.order_by(col(Run.id).desc()).limit(SHOWN)).all()
    return [RunningRun(
        id=int(run_id or 0), title=title, unit_id=unit, unit_name=org.unit_name(unit),
        stage=stage, stage_title=playbook.stage_title(stage) if stage else None,
        started_by=started_by,
        started_by_name=ACTOR_NAMES.get(started_by) or org.person_name(started_by),
        started_at=started_at, started_at_local=rt.renderer.local(started_at), drill=drill)
        for run_id, title, unit, stage, started_by, started_at in rows]


def refuse_if_running(session: Session, rt: Runtime, playbook: Playbook, unit_id: str, *,
                      drill: bool = False) -> None:
    """ConcurrentRuns (409) when a run of `playbook` is running for an overlapping unit. On
    PostgreSQL two such starts at once must not both pass: a transaction-scoped advisory lock
    per playbook queues them (SQLite's BEGIN IMMEDIATE already does)."""
    if playbook.register_ is not None:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                        {"key": f"closeloop:start:{playbook.id}"})
    running = overlapping_runs(session, rt, playbook, unit_id, drill=drill)
    if running:
        # A drill is held up only by a drill: say so, or a commander starting one reads of a
        # gas leak "already running" and may take a drill for a real event.
        what, another = ("演练", "另一场演练") if drill else ("", "另一起事件")
        raise ConcurrentRuns(
            f"{rt.org.unit_name(unit_id)}已有进行中的“{playbook.title}”{what}：" +
            "；".join(r.line() for r in running) +
            f"。如确属{another}，请确认后再启动 / a "
            f"{'drill' if drill else 'run'} of this playbook is already running "
            "for this unit, a unit above or below it; confirm to start another",
            [r.as_dict() for r in running])
