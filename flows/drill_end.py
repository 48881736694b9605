"""结束演练: a commander ends a drill (演练) at any point, and it reads as a finished exercise.

Without it a gas-leak drill, which has no last stage to end, could only be cancelled, and a
good exercise read 已取消 on the runs list, the run page and its evaluation. Ended, the drill is
`completed`; its open tasks are called off (their timers and escalations stop, their pending
requests for more time lapse) and listed by title in the timeline's `run_completed` event,
marked `drill_end`, with their ids (`called_off_ids`) so the evaluation can tell a task the
end overtook from one called off otherwise; its child runs still running end the same way,
first. Those who held open tasks, the verifiers waiting and whoever the drill's messages
reached, in the drill or in a child run ending with it, are told once, in the same words and
in the drill's name: 【演练】演练结束 (flows/stop_notices.py); nothing else is sent. A drill
that recorded people moved and not back (台风633: flows/people_away.py), which a real response
could not end with (a 409 naming each community), ends all the same, and says so: in that
notice, in the `run_completed` event (`people_away`, community by community) and in the answer.

A real event keeps its own rules (lifecycle.end_response: a staged response, at its last stage
or earlier with a note; any other ends with its last step or is cancelled): `end_run` sends
it there, so POST /api/runs/{id}/complete answers a real run exactly as before."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from sqlmodel import Session, col, select

from flows.access import require_right
from flows.lifecycle import end_response, load_run, require_running, stop_run
from flows.people_away import Away, away_sentence, people_away
from flows.progress import lock_run
from flows.runtime import Runtime
from flows.stop_notices import tell_stopped
from models import run as rs
from models import task as st
from models.db import read_session, session_scope
from models.drill import is_drill
from models.run import Run
from models.task import StepInstance

DRILL_END = "drill_end"  # marks the run_completed event of a drill's end
# What the end calls off: a task reached and not finished, or one still waiting (a later
# round written ahead, a step waiting for its needs), as lifecycle's end and cancel do.
_OPEN = (st.PENDING, *st.OPEN_STATUSES)


def end_run(rt: Runtime, *, run_id: int, actor: str, note: str | None = None) -> Run:
    """POST /api/runs/{id}/complete: a drill ends at once (end_drill); a real event by
    end_response's rules, unchanged."""
    with read_session(rt.db) as session:
        run = load_run(session, run_id)
    if is_drill(run):
        return end_drill(rt, run_id=run_id, actor=actor, note=note)
    return end_response(rt, run_id=run_id, actor=actor, note=note)


def end_drill(rt: Runtime, *, run_id: int, actor: str, note: str | None = None) -> Run:
    """End the drill `run_id` now, by a commander over its unit (who may also cancel it):
    403 otherwise, 409 when it is no longer running. `note` (optional) is said to those told
    and kept in the timeline."""
    said = (note or "").strip() or None
    with session_scope(rt.db) as session:
        run = load_run(session, run_id)
        require_right(rt.org, actor, "commander", run.unit_id)
        lock_run(session, run)  # a task finished at the same moment: one after the other
        require_running(run)
        now = rt.clock.now()
        # Told before anything is called off, over the drill and every child run ending with
        # it: one notice each, not one per run a person held tasks in.
        tree = _with_running_children(session, run)
        # A drill is never refused for people its records have away (a real typhoon end is,
        # by name): it says so instead, to everyone told and in the timeline.
        away = [a for run_id in tree for a in _away(session, rt, load_run(session, run_id))]
        tell_stopped(session, rt, run, actor, said, now, ended=True, runs=tree,
                     also=away_sentence(away))
        return _end(session, rt, run, actor, said, now, parent=None)


def _away(session: Session, rt: Runtime, run: Run) -> list[Away]:
    return people_away(session, rt, run, rt.catalog.pinned(session, run.playbook_sha))


def _running_children(session: Session, run: Run) -> list[Run]:
    return list(session.exec(select(Run).join(
        StepInstance, col(StepInstance.id) == Run.parent_step_id).where(
        StepInstance.run_id == run.id, Run.status == rs.RUNNING)
        .order_by(col(Run.id))).all())


def _with_running_children(session: Session, run: Run) -> list[int]:
    """`run` and, down the tree, every child run still running."""
    return [run.id or 0, *(i for child in _running_children(session, run)
                           for i in _with_running_children(session, child))]


def _end(session: Session, rt: Runtime, run: Run, actor: str, note: str | None,
         now: datetime, *, parent: int | None) -> Run:
    for child in _running_children(session, run):
        # A drill's child runs are the same drill (flows/drills.py): they end with it, by
        # the same commander, rather than read 已取消 as a real parent's would.
        lock_run(session, child)
        _end(session, rt, child, actor, note, now, parent=run.id)
    session.flush()
    left = session.exec(select(StepInstance.id, StepInstance.title).where(
        StepInstance.run_id == run.id, col(StepInstance.status).in_(_OPEN))
        .order_by(col(StepInstance.id))).all()
    detail = {DRILL_END: True, "ended_by": actor, "note": note,
              "unanswered": [title for _, title in left],
              "called_off_ids": [step_id for step_id, _ in left], "stage": run.stage,
              "people_away": [asdict(a) for a in _away(session, rt, run)]}
    if parent is not None:
        detail["parent_run"] = parent
    playbook = rt.catalog.pinned(session, run.playbook_sha)
    return stop_run(session, rt, run, playbook, actor, now, note, ended=True, detail=detail,
                    tell=False)
