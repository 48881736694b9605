"""The inbox page (list_steps with `mine` and statuses) merges per-status index ranges instead
of sorting the whole inbox; it must give exactly what one ORDER BY over the inbox gives."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from flows import lifecycle, tasks
from flows.runtime import Runtime
from models.clock import ManualClock
from models.db import read_session, session_scope
from models.queries import list_steps
from models.task import OPEN_STATUSES, StepInstance


def test_inbox_pages_match_one_sort_over_the_whole_inbox(rt: Runtime, clock: ManualClock
                                                         ) -> None:
    ids = []
    for i in range(9):
        run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                                  params={"location": f"{i}号"}, actor="s1-commander")
        with read_session(rt.db) as session:
            [step] = list_steps(session, run_id=run.id, status=["ready"])[0]
        ids.append(step.id or 0)
        clock.advance(timedelta(minutes=7 * (i % 4) + 1))
    tasks.ack(rt, step_id=ids[2], actor="s1-duty")
    tasks.ack(rt, step_id=ids[5], actor="s1-duty")
    with session_scope(rt.db) as session:  # equal deadlines tie on id; no deadline goes last
        session.execute(update(StepInstance).where(StepInstance.id.in_(ids[6:8]))  # type: ignore[union-attr]
                        .values(due_at=None))
        tie = session.get(StepInstance, ids[1]).due_at  # type: ignore[union-attr]
        session.execute(update(StepInstance).where(StepInstance.id == ids[4]).values(due_at=tie))
    mine = rt.org.person_role_units("s1-duty")
    with read_session(rt.db) as session:
        everything, _ = list_steps(session, limit=500)  # the plain ORDER BY path
        expected = [s.id for s in everything if s.status in OPEN_STATUSES
                    and s.role == "duty_officer" and s.assignee_unit_id == "s1"]
        assert len(expected) == 9
        pages = []
        for offset in range(0, 12, 4):
            rows, total = list_steps(session, mine=mine, person="s1-duty",
                                     status=list(OPEN_STATUSES), limit=4, offset=offset)
            assert total == 9
            pages += [r.id for r in rows]
    assert pages == expected
    assert pages[-2:] == ids[6:8]  # no deadline: last, by id
