"""Who has each run now (当前环节、当前办理人), for lists of many runs: the 整改清单 a manager
reads to see where each open hazard is stuck and with whom, without opening them one by one.

The step is the run's first open task in playbook order (the one flows/registers.py names the
phase after); its holders are its assignees while the work is theirs to do, and the people who
may verify it once it is handed in (flows.access.verifiers, as the 当前卡点 of one run names
them). Two queries for a page or an export chunk, whatever its size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import Session, col, select

from flows.access import verifiers
from flows.runtime import Runtime
from flows.spec import Playbook, StepSpec
from flows.sweeper import ladder_level
from models.run import Run
from models.task import OPEN_STATUSES, SUBMITTED, StepInstance


@dataclass(frozen=True)
class Holding:
    step: str  # the step's title (隐患整改)
    status: str  # its status (ready, acked, submitted, rejected)
    people: tuple[str, ...]  # person ids whose move it is
    names: tuple[str, ...]  # the same, as people read them
    # How far its ladder has climbed (督办级别): "第2级：挂牌督办超时督办", the verifier's own
    # ladder once handed in; None while nobody has been chased.
    escalation: str | None = None


def holdings(session: Session, rt: Runtime, run_ids: Sequence[int]) -> dict[int, Holding]:
    """The open task each of `run_ids` waits on and who holds it; runs with none (closed,
    waiting on the clock for the look-back) are left out."""
    if not run_ids:
        return {}
    rows = session.exec(
        select(StepInstance).where(
            col(StepInstance.run_id).in_(list(run_ids)),
            StepInstance.action == "task",
            col(StepInstance.status).in_(list(OPEN_STATUSES)),
        )
    ).all()
    if not rows:
        return {}
    shas = dict(session.exec(
        select(Run.id, Run.playbook_sha).where(col(Run.id).in_({r.run_id for r in rows}))
    ).all())
    by_run: dict[int, list[StepInstance]] = {}
    for row in rows:
        by_run.setdefault(row.run_id, []).append(row)
    out: dict[int, Holding] = {}
    for run_id, open_rows in by_run.items():
        playbook = rt.catalog.pinned(session, shas[run_id]) if run_id in shas else None
        order = {s.id: i for i, s in enumerate(playbook.steps)} if playbook else {}
        first = min(open_rows, key=lambda r: (order.get(r.step_key, len(order)), r.id or 0))
        people = _holders(rt, playbook, first)
        out[run_id] = Holding(step=first.title, status=first.status, people=tuple(people),
                              names=tuple(rt.org.person_name(p) for p in people),
                              escalation=_rung(playbook, first))
    return out


def _rung(playbook: Playbook | None, row: StepInstance) -> str | None:
    """The ladder rung `row` has reached, as the 整改清单 says it."""
    kind, level = (("verify", row.verify_level) if row.status == SUBMITTED
                   else ("escalate", row.escalation_level))
    if level <= 0:
        return None
    try:
        spec = playbook.step(row.step_key) if playbook is not None else None
    except KeyError:  # a step of an older version, gone from this one
        spec = None
    rung = ladder_level(spec, kind, level) if spec is not None else None
    return f"第{level}级：{rung.title}" if rung is not None and rung.title else f"第{level}级"


def _holders(rt: Runtime, playbook: Playbook | None, row: StepInstance) -> list[str]:
    spec = None
    if row.status == SUBMITTED and playbook is not None:
        try:
            spec = playbook.step(row.step_key)
        except KeyError:  # a step of an older version, gone from this one
            spec = None
    return whose_move(rt, spec, status=row.status, unit_id=row.unit_id,
                      submitted_by=row.submitted_by, assignees=list(row.assignees or []))


def whose_move(rt: Runtime, spec: StepSpec | None, *, status: str, unit_id: str,
               submitted_by: str | None, assignees: list[str]) -> list[str]:
    """Person ids whose move a task is: its assignees; for work handed in to a step with
    `verify`, the people who may verify it (its verifier role resolved at the task's unit; not
    the one who handed it in when the step says `distinct`, as verifying refuses them only
    then). The one rule for the 整改清单 and a run's 当前卡点 (api/holdup.py)."""
    verify = spec.verify if spec is not None and status == SUBMITTED else None
    if verify is not None:
        return [p.id for p in verifiers(rt.org, verify.role, unit_id,
                                        distinct=verify.distinct, submitted_by=submitted_by)]
    return assignees
