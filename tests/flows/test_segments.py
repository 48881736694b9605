"""Segments without Prefect reachable: the engine keeps executing automatic steps (a first
report must still go out) and keeps the wakes so that Prefect records them later."""

from __future__ import annotations

from typing import Any

from factories import png_bytes, wait_for
from sqlmodel import select

from flows import lifecycle, tasks
from flows.evidence import store_evidence
from flows.runtime import Runtime
from flows.segments import SegmentRunner, claim_wakes, record_step, segment_body
from models.db import read_session
from models.run import Run
from models.task import StepInstance
from models.wake import Wake


def step(rt: Runtime, run_id: int, key: str) -> StepInstance:
    with read_session(rt.db) as session:
        return session.exec(select(StepInstance).where(
            StepInstance.run_id == run_id, StepInstance.step_key == key)).one()


def test_automatic_steps_run_while_prefect_is_down(rt: Runtime) -> None:
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "x"}, actor="s1-commander")
    rid = run.id or 0
    tasks.complete(rt, step_id=step(rt, rid, "receive").id or 0, actor="s1-duty")
    inspect = step(rt, rid, "inspect").id or 0
    photo = store_evidence(rt, data=png_bytes(), filename="a.png", uploaded_by="c1-grid").id
    tasks.complete(rt, step_id=inspect, actor="c1-grid", note="ok", evidence=[photo])
    tasks.verify(rt, step_id=inspect, actor="s1-insp1", approve=True)

    def unreachable() -> str:
        raise ConnectionError("Prefect is down")

    runner = SegmentRunner(rt, api_url_provider=unreachable, poll=0.05, retry_prefect=3600)
    runner.start()
    try:
        wait_for(lambda: step(rt, rid, "report").status == "done")
    finally:
        runner.stop()
    assert runner.error and "Prefect is down" in runner.error
    assert not step(rt, rid, "report").prefect_recorded  # to be recorded once Prefect is back
    with read_session(rt.db) as session:
        pending = session.exec(select(Wake).where(Wake.run_id == rid,
                                                  Wake.done_at == None)).all()  # noqa: E711
    assert pending and all("without Prefect" in (w.last_error or "") for w in pending)


def test_work_wakes_are_claimed_before_timer_wakes(rt: Runtime) -> None:
    from models.db import session_scope
    from models.writes import add_wake

    first = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                                params={"location": "a"}, actor="s1-commander")
    second = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                                 params={"location": "b"}, actor="s1-commander")
    with session_scope(rt.db) as session:
        for w in session.exec(select(Wake)).all():
            session.delete(w)
        add_wake(session, run_id=first.id or 0, reason="timers", now=rt.clock.now())
        add_wake(session, run_id=second.id or 0, reason="step_done", now=rt.clock.now())
    claimed = claim_wakes(rt, limit=1)
    assert [run_id for run_id, _ in claimed] == [second.id]


def test_work_waking_during_a_batch_of_history_is_next_not_last(rt: Runtime) -> None:
    """A sweep of thousands of overdue hazards leaves as many timer wakes; an inspector's
    closure form waking meanwhile waits for the segment in hand, not for the whole batch."""
    from flows.segments import drain_wakes
    from models.db import session_scope
    from models.writes import add_wake

    runs = [lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                                params={"location": f"r{i}"}, actor="s1-commander").id or 0
            for i in range(6)]
    with session_scope(rt.db) as session:
        for w in session.exec(select(Wake)).all():
            session.delete(w)
        for run_id in runs[:5]:
            add_wake(session, run_id=run_id, reason="timers", now=rt.clock.now())
    order: list[int] = []

    def segment(run: Run, _number: int) -> None:
        order.append(run.id or 0)
        if len(order) == 2:  # someone finishes a task while history is being recorded
            with session_scope(rt.db) as session:
                add_wake(session, run_id=runs[5], reason="step_done", now=rt.clock.now())

    assert drain_wakes(rt, segment) == 2  # the rest of the history batch is handed back
    # The next claim: the work first, then the history that was handed back.
    assert drain_wakes(rt, segment) == 4 and order[2] == runs[5]
    assert sorted(order[3:]) == sorted(set(runs[:5]) - set(order[:2]))
    with read_session(rt.db) as session:
        left = session.exec(select(Wake).where(Wake.done_at == None)).all()  # noqa: E711
        assert left == []
        assert {w.attempts for w in session.exec(select(Wake)).all()} == {1}


def test_steps_passed_over_are_recorded_once_in_the_order_skipped(rt: Runtime) -> None:
    """A skipped step has no row, only its place in `Run.skipped`; it still becomes a task run
    in Prefect's history, once, as a finished row does."""
    run = lifecycle.start_run(rt, playbook_id="branching", unit_id="s1", params={},
                              actor="s1-commander")
    rid = run.id or 0
    tasks.complete(rt, step_id=step(rt, rid, "start").id or 0, actor="s1-duty")
    with read_session(rt.db) as session:
        assert session.get(Run, rid).skipped == ["major-only"]  # type: ignore[union-attr]
        assert not session.exec(select(StepInstance).where(
            StepInstance.run_id == rid, StepInstance.step_key == "major-only")).all()
    recorded: list[dict[str, Any]] = []

    def record(key: str) -> None:
        recorded.append(record_step(rt, rid, key))

    segment_body(rt, rid, execute=lambda _key: None, record=record)
    assert [r["step"] for r in recorded] == ["start", "major-only"]
    assert recorded[1] == {"step": "major-only", "instances": [], "status": "skipped"}
    recorded.clear()
    segment_body(rt, rid, execute=lambda _key: None, record=record)
    assert recorded == []  # nothing twice
    with read_session(rt.db) as session:
        assert session.get(Run, rid).skipped_recorded == 1  # type: ignore[union-attr]


SPAWNER = """\
id: spawner
version: 1
title: 启动子预案
params:
  where: {type: string, title: 地点}
steps:
  - id: child
    title: 启动子预案
    action: playbook
    playbook: quick-escalation
    with: {location: "{{ params.where }}"}
"""


def test_a_segment_that_keeps_failing_says_so_in_the_timeline_once(
        make_rt: Any, tmp_path: Any, clock: Any) -> None:
    """A child run that cannot start (its required location came out empty) is not only a
    traceback in the server log: the third failure in a row is an event in the run's
    timeline, /healthz counts the run, and the retries back off."""
    import shutil
    from datetime import timedelta

    from factories import ENGINE_PLAYBOOKS

    from flows.segments import FAILED_AFTER, drain_wakes, failing_wakes
    from models.audit import AuditEvent

    books = tmp_path / "books"
    shutil.copytree(ENGINE_PLAYBOOKS, books)
    (books / "spawner.yaml").write_text(SPAWNER, encoding="utf-8")
    rt = make_rt(playbooks=books)
    assert rt.catalog.errors == []
    rid = lifecycle.start_run(rt, playbook_id="spawner", unit_id="c1", params={},
                              actor="s1-commander").id or 0

    def failures() -> list[AuditEvent]:
        with read_session(rt.db) as session:
            return list(session.exec(select(AuditEvent).where(
                AuditEvent.run_id == rid, AuditEvent.action == "segment_failed")).all())

    for attempt in range(1, FAILED_AFTER + 2):
        assert drain_wakes(rt) == 1, attempt
        assert len(failures()) == (1 if attempt >= FAILED_AFTER else 0), attempt
        clock.advance(timedelta(minutes=16))  # past any backoff
    [event] = failures()
    assert event.detail["attempts"] == FAILED_AFTER
    assert "params.location" in event.detail["error"]
    assert failing_wakes(rt) == 1
    assert step(rt, rid, "child").status == "ready"  # nothing half-done
    # Backed off: right after a failure it is not due again at once.
    drain_wakes(rt)
    assert drain_wakes(rt) == 0

