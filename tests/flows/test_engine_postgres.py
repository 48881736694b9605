"""The engine's guarantees (SPEC §4) on a real PostgreSQL 15 server on loopback: a run from start
to completion, two people closing one task at once, the escalation ladder and its catch-up after
downtime, two sweepers racing, and the append-only audit trail. One server per module, a fresh
database per test. These fail (not skip) when the server binaries are missing: the PostgreSQL
path must not go untested silently."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from factories import make_runtime, png_bytes, race
from factories import step_row as one
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from flows import lifecycle, tasks
from flows.evidence import store_evidence
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import LEASE, SweepReport, acquire_lease, sweep_once
from models.audit import AuditEvent
from models.clock import ManualClock
from models.db import read_session, session_scope
from models.documents import Document
from models.errors import Conflict
from models.escalation import Escalation
from models.outbox import Notification
from models.queries import run_detail
from models.run import Run
from models.task import StepInstance


@pytest.fixture
def make_pg_rt(pg_url: str, tmp_path: Path, clock: ManualClock
               ) -> Iterator[Callable[[], Runtime]]:
    """Runtimes on the same fresh database: a second one is the server after a restart."""
    made: list[Runtime] = []

    def factory() -> Runtime:
        rt = make_runtime(tmp_path / f"pg{len(made)}", clock=clock, db_url=pg_url)
        made.append(rt)
        return rt

    yield factory
    for rt in made:
        rt.db.dispose()


@pytest.fixture
def prt(make_pg_rt: Callable[[], Runtime]) -> Runtime:
    rt = make_pg_rt()
    assert rt.db.dialect.name == "postgresql"
    return rt


# --- helpers ---------------------------------------------------------------------------------

def start_quick(rt: Runtime, unit: str = "c1") -> int:
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id=unit,
                              params={"location": "一社区3号楼"}, actor="s1-commander")
    return run.id or 0


def run_status(rt: Runtime, run_id: int) -> str:
    with read_session(rt.db) as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run.status


def fired(rt: Runtime, run_id: int | None = None) -> list[tuple[int, str, int, int]]:
    with read_session(rt.db) as session:
        query = select(Escalation).order_by(Escalation.step_id, Escalation.level,
                                            Escalation.repeat)
        if run_id is not None:
            query = query.where(Escalation.run_id == run_id)
        rows = session.exec(query).all()
    return [(e.step_id, e.kind, e.level, e.repeat) for e in rows]


def photo(rt: Runtime, who: str) -> str:
    return store_evidence(rt, data=png_bytes(), filename="site.png", uploaded_by=who).id


# --- a whole run -------------------------------------------------------------------------------

def test_run_starts_and_completes_on_postgres(prt: Runtime, clock: ManualClock) -> None:
    run_id = start_quick(prt)
    receive = one(prt, run_id, "receive")
    assert receive.status == "ready" and receive.assignees == ["s1-duty"]
    assert receive.due_at == clock.now() + timedelta(seconds=2)
    tasks.ack(prt, step_id=receive.id or 0, actor="s1-duty")
    tasks.complete(prt, step_id=receive.id or 0, actor="s1-duty", note="已登记")
    inspect = one(prt, run_id, "inspect")
    assert inspect.status == "ready" and inspect.assignees == ["c1-grid"]
    submitted = tasks.complete(prt, step_id=inspect.id or 0, actor="c1-grid",
                               note="燃气阀门已关闭", evidence=[photo(prt, "c1-grid")])
    assert submitted.status == "submitted"
    tasks.verify(prt, step_id=inspect.id or 0, actor="s1-insp1", approve=True)
    drain_wakes(prt)
    assert run_status(prt, run_id) == "completed"
    with read_session(prt.db) as session:
        steps, _, events = run_detail(session, run_id=run_id)
        doc = session.exec(select(Document).where(Document.run_id == run_id)).one()
        sent = session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.kind == "notify")).all()
    assert {s.status for s in steps} == {"done"}
    assert "燃气阀门已关闭" in doc.body and "一社区3号楼" in doc.body
    assert [n.recipient for n in sent] == ["duty"]
    assert [e.action for e in events][0] == "run_started"
    assert [e.action for e in events][-1] == "run_completed"


def test_cancel_and_stage_on_postgres(prt: Runtime) -> None:
    run = lifecycle.start_run(prt, playbook_id="branching", unit_id="s1", params={},
                              actor="s1-commander")
    lifecycle.set_stage(prt, run_id=run.id or 0, stage="warning", actor="s1-commander")
    with read_session(prt.db) as session:
        villages = session.exec(select(StepInstance).where(
            StepInstance.run_id == run.id, StepInstance.step_key == "villages")).all()
    assert sorted(v.unit_id for v in villages) == ["c1", "c2"]
    lifecycle.cancel_run(prt, run_id=run.id or 0, actor="s1-commander", reason="演练结束")
    assert run_status(prt, run.id or 0) == "cancelled"
    with pytest.raises(Conflict):
        lifecycle.cancel_run(prt, run_id=run.id or 0, actor="s1-commander")


def test_a_stage_entered_again_hands_out_its_called_off_tasks_on_postgres(
        prt: Runtime, clock: ManualClock) -> None:
    """Down a stage with one village's task called off, up again: that task goes out again as
    a new instance naming the called-off one, due from now and chased past it; the kept one
    stays as it was (flows/rehand.py)."""
    run = lifecycle.start_run(prt, playbook_id="branching", unit_id="s1", params={},
                              actor="s1-commander")
    run_id = run.id or 0
    lifecycle.set_stage(prt, run_id=run_id, stage="warning", actor="s1-commander")

    def villages() -> dict[str, list[StepInstance]]:
        with read_session(prt.db) as session:
            rows = session.exec(select(StepInstance).where(
                StepInstance.run_id == run_id, StepInstance.step_key == "villages")
                .order_by(StepInstance.item_index)).all()  # type: ignore[arg-type]
        out: dict[str, list[StepInstance]] = {}
        for row in rows:
            out.setdefault(row.unit_id, []).append(row)
        return out

    first = villages()
    lifecycle.set_stage(prt, run_id=run_id, stage="watch", actor="s1-commander",
                        call_off=[first["c1"][0].id or 0], note="预警解除")
    clock.advance(timedelta(minutes=40))
    moved = lifecycle.change_stage(prt, run_id=run_id, stage="warning", actor="s1-commander")
    now = villages()
    assert [r.status for r in now["c1"]] == ["cancelled", "ready"]
    new = now["c1"][1]
    assert moved.rehanded == [new.id] and new.rehanded_from == first["c1"][0].id
    assert new.due_at == clock.now() + timedelta(hours=1) and new.assignees == ["c1-grid"]
    assert [(r.id, r.status, r.due_at) for r in now["c2"]] == \
        [(first["c2"][0].id, "ready", first["c2"][0].due_at)]
    clock.advance(timedelta(hours=1, seconds=1))
    sweep_once(prt)
    sweep_once(prt)
    chased = [(step, kind, level) for step, kind, level, _ in fired(prt, run_id)
              if kind == "escalate"]
    assert (new.id, "escalate", 1) in chased and chased.count((new.id, "escalate", 1)) == 1
    assert all(step != first["c1"][0].id for step, _, _ in chased)


# --- races -------------------------------------------------------------------------------------

def test_first_runs_of_a_playbook_started_at_once_all_start_on_postgres(prt: Runtime) -> None:
    results = race(*[lambda: start_quick(prt) for _ in range(4)])
    assert all(isinstance(r, int) for r in results), results
    with read_session(prt.db) as session:
        assert len(session.exec(select(Run)).all()) == 4


@pytest.mark.parametrize("attempt", range(3))
def test_double_completion_gives_one_success_one_conflict_on_postgres(
    prt: Runtime, attempt: int
) -> None:
    run_id = start_quick(prt)
    step_id = one(prt, run_id, "receive").id or 0
    results = race(
        lambda: tasks.complete(prt, step_id=step_id, actor="s1-duty", note="甲"),
        lambda: tasks.complete(prt, step_id=step_id, actor="s1-duty", note="乙"),
    )
    conflicts = [r for r in results if isinstance(r, Conflict)]
    successes = [r for r in results if isinstance(r, StepInstance)]
    assert len(successes) == 1 and len(conflicts) == 1, results
    with read_session(prt.db) as session:
        _, _, events = run_detail(session, run_id=run_id)
        inspects = session.exec(select(StepInstance).where(
            StepInstance.run_id == run_id, StepInstance.step_key == "inspect")).all()
    assert [e.action for e in events if e.step_id == step_id].count("done") == 1
    assert len(inspects) == 1 and inspects[0].status == "ready"  # advanced once
    assert one(prt, run_id, "receive").note == successes[0].note  # type: ignore[union-attr]


def test_double_verification_gives_one_success_one_conflict_on_postgres(prt: Runtime) -> None:
    run_id = start_quick(prt)
    tasks.complete(prt, step_id=one(prt, run_id, "receive").id or 0, actor="s1-duty")
    inspect_id = one(prt, run_id, "inspect").id or 0
    tasks.complete(prt, step_id=inspect_id, actor="c1-grid", note="ok",
                   evidence=[photo(prt, "c1-grid")])
    results = race(
        lambda: tasks.verify(prt, step_id=inspect_id, actor="s1-insp1", approve=True),
        lambda: tasks.verify(prt, step_id=inspect_id, actor="s1-insp2", approve=False,
                             note="退回"),
    )
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "StepInstance"], results
    assert one(prt, run_id, "inspect").status in ("done", "rejected")


def test_a_cancel_racing_a_verification_leaves_no_open_step_on_postgres(prt: Runtime) -> None:
    """The approval makes the next steps ready while the commander cancels: whichever wins,
    a cancelled run has no open step (no 'ready' work in a run that is over)."""
    for i in range(4):
        run_id = start_quick(prt)
        tasks.complete(prt, step_id=one(prt, run_id, "receive").id or 0, actor="s1-duty")
        inspect_id = one(prt, run_id, "inspect").id or 0
        site = store_evidence(prt, data=png_bytes(3 + i, 2), filename="site.png",
                              uploaded_by="c1-grid").id  # a photo of its own per run
        tasks.complete(prt, step_id=inspect_id, actor="c1-grid", note="ok", evidence=[site])
        results = race(
            lambda: tasks.verify(prt, step_id=inspect_id, actor="s1-insp1", approve=True),  # noqa: B023
            lambda: lifecycle.cancel_run(prt, run_id=run_id, actor="s1-commander",  # noqa: B023
                                         reason="演练结束"),
        )
        assert all(not isinstance(r, Exception) or isinstance(r, Conflict) for r in results), \
            results
        assert run_status(prt, run_id) == "cancelled"
        with read_session(prt.db) as session:
            open_steps = session.exec(select(StepInstance.step_key).where(
                StepInstance.run_id == run_id,
                StepInstance.status.in_(("pending", "ready", "acked", "submitted")),  # type: ignore[attr-defined]
            )).all()
        assert open_steps == [], (results, open_steps)


def test_the_same_stage_change_twice_at_once_is_one_change_on_postgres(prt: Runtime) -> None:
    run_id = lifecycle.start_run(prt, playbook_id="branching", unit_id="c1", params={},
                                 actor="s1-commander").id or 0
    results = race(*[lambda: lifecycle.set_stage(prt, run_id=run_id, stage="warning",
                                                 actor="s1-commander") for _ in range(2)])
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "Run"], results
    with read_session(prt.db) as session:
        changed = session.exec(select(AuditEvent).where(
            AuditEvent.run_id == run_id, AuditEvent.action == "stage_changed")).all()
    assert len(changed) == 1


def test_an_automatic_step_of_a_run_cancelled_meanwhile_sends_nothing_on_postgres(
    prt: Runtime
) -> None:
    """The segment runner takes the run's lock before it reads the ready steps: a cancel that
    holds the run (not yet committed) makes it wait, and then it finds nothing to send."""
    import threading

    from flows.segments import execute_step

    run_id = start_quick(prt)
    tasks.complete(prt, step_id=one(prt, run_id, "receive").id or 0, actor="s1-duty")
    inspect_id = one(prt, run_id, "inspect").id or 0
    tasks.complete(prt, step_id=inspect_id, actor="c1-grid", note="ok",
                   evidence=[photo(prt, "c1-grid")])
    tasks.verify(prt, step_id=inspect_id, actor="s1-insp1", approve=True)
    assert one(prt, run_id, "report").status == "ready"  # a notify step, not yet executed
    outcome: list[object] = []
    with session_scope(prt.db) as session:
        lifecycle.cancel_run(prt, run_id=run_id, actor="s1-commander", reason="误报",
                             session=session)
        session.flush()
        runner = threading.Thread(target=lambda: outcome.append(
            execute_step(prt, run_id, "report")))
        runner.start()
        runner.join(timeout=2)
        assert runner.is_alive()  # waiting for the cancel's lock on the run
    runner.join(timeout=60)
    assert one(prt, run_id, "report").status == "cancelled"
    with read_session(prt.db) as session:
        sent = session.exec(select(Notification).where(Notification.run_id == run_id,
                                                       Notification.kind == "notify")).all()
    assert sent == [] and outcome and not isinstance(outcome[0], Exception)


# --- the sweeper ---------------------------------------------------------------------------------

def test_ladder_fires_in_order_then_repeats_on_postgres(prt: Runtime, clock: ManualClock) -> None:
    run_id = start_quick(prt)
    step_id = one(prt, run_id, "receive").id or 0
    clock.advance(timedelta(seconds=1))
    assert sweep_once(prt).fired == 0
    clock.advance(timedelta(seconds=2))  # due at 2 s; level 1 at due
    report = sweep_once(prt)
    assert report.fired == 1 and report.overdue == 1
    assert fired(prt, run_id) == [(step_id, "escalate", 1, 0)]
    clock.advance(timedelta(seconds=10))  # level 2 at due + 10 s
    sweep_once(prt)
    clock.advance(timedelta(seconds=10))  # level 2 repeats every 10 s
    sweep_once(prt)
    sweep_once(prt)  # the same instant again: nothing new
    assert fired(prt, run_id) == [(step_id, "escalate", 1, 0), (step_id, "escalate", 2, 0),
                                  (step_id, "escalate", 2, 1)]
    tasks.complete(prt, step_id=step_id, actor="s1-duty")
    clock.advance(timedelta(hours=1))
    assert sweep_once(prt).fired == 0  # a finished step stops escalating


def test_missed_escalations_fire_once_late_after_a_restart_on_postgres(
    make_pg_rt: Callable[[], Runtime], clock: ManualClock
) -> None:
    before = make_pg_rt()
    run_id = start_quick(before)
    step_id = one(before, run_id, "receive").id or 0
    before.db.dispose()  # the server goes down ...
    clock.advance(timedelta(hours=1))  # ... for an hour
    after = make_pg_rt()  # and comes back: a new process on the same database
    report = sweep_once(after)
    assert fired(after, run_id) == [(step_id, "escalate", 1, 0), (step_id, "escalate", 2, 0)]
    assert report.overdue == 1 and all(lag > 0 for lag in report.lags)
    assert sweep_once(after).fired == 0  # none fires twice
    clock.advance(timedelta(seconds=10))
    sweep_once(after)
    levels = [f[2:] for f in fired(after, run_id)]
    # the next repeat is the one scheduled after the restart, not the 358 missed ones
    assert levels[:2] == [(1, 0), (2, 0)] and len(levels) == 3
    assert levels[2][0] == 2 and levels[2][1] == 359  # due 2 s + 10 s + 359 x 10 s = 3602 s
    # The restarted server finishes the run on the playbook version it pinned.
    tasks.complete(after, step_id=step_id, actor="s1-duty")
    assert one(after, run_id, "inspect").status == "ready"


def test_a_cancel_while_the_sweeper_finishes_a_wait_neither_deadlocks_on_postgres(
    prt: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweeper has read an elapsed wait (its batch holds the step) when the commander
    cancels the run (the run first, then its steps): the batch lets go of its steps before
    the wait is finished in a transaction that takes the run first, so both go through."""
    import threading
    import time

    from flows import sweeper

    run_id = lifecycle.start_run(prt, playbook_id="branching", unit_id="c1", params={},
                                 actor="s1-commander").id or 0
    tasks.complete(prt, step_id=one(prt, run_id, "start").id or 0, actor="s1-duty")
    tasks.complete(prt, step_id=one(prt, run_id, "after-major").id or 0, actor="s1-duty")
    clock.advance(timedelta(minutes=61))
    read_it, cancelling = threading.Event(), threading.Event()
    real = sweeper._sweep_step

    def slow(*args: object, **kwargs: object) -> bool:
        elapsed = real(*args, **kwargs)  # type: ignore[arg-type]
        if elapsed:
            read_it.set()
            cancelling.wait(timeout=10)
            time.sleep(0.5)  # the cancel has the run and reaches for the steps
        return elapsed

    monkeypatch.setattr(sweeper, "_sweep_step", slow)

    def cancel() -> object:
        read_it.wait(timeout=10)
        cancelling.set()
        return lifecycle.cancel_run(prt, run_id=run_id, actor="s1-commander", reason="演练结束")

    report, cancelled = race(lambda: sweep_once(prt), cancel)
    assert isinstance(report, SweepReport) and report.failed == 0, report
    assert not isinstance(cancelled, Exception), cancelled
    assert run_status(prt, run_id) == "cancelled"
    assert one(prt, run_id, "wait-a-bit").status == "cancelled"


def test_acting_on_a_task_the_sweeper_is_escalating_is_no_conflict_on_postgres(
    prt: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweeper holds the overdue task while it escalates it; the person completing it
    meanwhile waits and goes through: the clock is not 'someone else' who changed the task."""
    import threading
    import time

    from flows import sweeper

    run_id = start_quick(prt)
    clock.advance(timedelta(seconds=3))  # receive is overdue: level 1 is due
    holding, acting = threading.Event(), threading.Event()
    real = sweeper._sweep_step

    def slow(*args: object, **kwargs: object) -> bool:
        result = real(*args, **kwargs)  # type: ignore[arg-type]
        holding.set()
        acting.wait(timeout=10)
        time.sleep(0.5)  # the completion is now waiting on the row
        return result

    monkeypatch.setattr(sweeper, "_sweep_step", slow)

    def complete() -> object:
        holding.wait(timeout=10)
        acting.set()
        return tasks.complete(prt, step_id=one(prt, run_id, "receive").id or 0,
                              actor="s1-duty")

    report, done = race(lambda: sweep_once(prt), complete)
    assert isinstance(report, SweepReport) and report.fired == 1, report
    assert isinstance(done, StepInstance) and done.status == "done", done
    assert fired(prt, run_id) == [(one(prt, run_id, "receive").id, "escalate", 1, 0)]


def test_two_sweepers_racing_fire_each_escalation_once_on_postgres(
    prt: Runtime, clock: ManualClock
) -> None:
    runs = [start_quick(prt, unit="c1" if i % 2 else "c2") for i in range(40)]
    clock.advance(timedelta(hours=1))
    reports = race(lambda: sweep_once(prt, holder="sweeper-a"),
                   lambda: sweep_once(prt, holder="sweeper-b"))
    assert all(isinstance(r, SweepReport) for r in reports), reports
    swept = [r for r in reports if isinstance(r, SweepReport) and r.swept]
    assert swept, "one of the two must have swept"
    rows = fired(prt)
    assert len(rows) == len(set(rows)) == 2 * len(runs)  # levels 1 and 2, each once
    assert sum(r.fired for r in swept) == 2 * len(runs)
    assert sum(r.overdue for r in swept) == len(runs)
    # Again, ten seconds on: level 2 repeats once per run, whoever sweeps.
    clock.advance(timedelta(seconds=10))
    reports = race(lambda: sweep_once(prt, holder="sweeper-a"),
                   lambda: sweep_once(prt, holder="sweeper-b"))
    rows = fired(prt)
    assert len(rows) == len(set(rows)) == 3 * len(runs)
    with read_session(prt.db) as session:
        notes = session.exec(select(Notification).where(Notification.kind == "escalate")).all()
    # one escalation notification per recipient per firing: d1-chief + duty at level 1, the
    # director at level 2 and its repeat
    assert len(notes) == len(runs) * (2 + 1 + 1)


def test_second_sweeper_is_kept_out_until_the_lease_expires_on_postgres(
    prt: Runtime, clock: ManualClock
) -> None:
    start_quick(prt)
    with session_scope(prt.db) as session:
        assert acquire_lease(session, name=LEASE, holder="crashed", now=clock.now(),
                             ttl=timedelta(minutes=5))
    clock.advance(timedelta(seconds=3))
    assert not sweep_once(prt, holder="me").swept
    clock.advance(timedelta(minutes=6))
    report = sweep_once(prt, holder="me")
    assert report.swept and report.fired == 2


# --- the audit trail ---------------------------------------------------------------------------

def test_audit_trail_is_append_only_on_postgres(prt: Runtime) -> None:
    run_id = start_quick(prt)
    tasks.complete(prt, step_id=one(prt, run_id, "receive").id or 0, actor="s1-duty")
    with read_session(prt.db) as session:
        before = [(e.id, e.actor, e.action) for e in session.exec(
            select(AuditEvent).order_by(AuditEvent.id)).all()]
    assert len(before) >= 3
    for statement in ("UPDATE audit_event SET actor = 'mallory'",
                      "UPDATE audit_event SET detail = '{}' WHERE action = 'done'",
                      "DELETE FROM audit_event",
                      f"DELETE FROM audit_event WHERE run_id = {run_id}"):
        with pytest.raises(DBAPIError, match="append-only"), prt.db.begin() as conn:
            conn.execute(text(statement))
    # Through the ORM too.
    with pytest.raises(DBAPIError, match="append-only"), session_scope(prt.db) as session:
        event = session.exec(select(AuditEvent)).first()
        assert event is not None
        event.actor = "mallory"
        session.add(event)
    with pytest.raises(DBAPIError, match="append-only"), session_scope(prt.db) as session:
        event = session.exec(select(AuditEvent)).first()
        session.delete(event)
    with read_session(prt.db) as session:
        after = [(e.id, e.actor, e.action) for e in session.exec(
            select(AuditEvent).order_by(AuditEvent.id)).all()]
    assert after == before
    # Appending still works: the trail grows, it is never rewritten.
    tasks.ack(prt, step_id=one(prt, run_id, "inspect").id or 0, actor="c1-grid")
    with read_session(prt.db) as session:
        assert len(session.exec(select(AuditEvent)).all()) == len(before) + 1


# --- parallel branches joining ------------------------------------------------------------------

PARALLEL = Path(__file__).resolve().parent.parent / "fixtures" / "parallel"


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_two_branches_finished_at_once_still_reach_the_join(
        engine: str, request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> None:
    """Each completion advances the run in its own transaction; on PostgreSQL (READ COMMITTED)
    two at once would each miss the other's branch, and each would write its own `skipped`
    list, unless advancing a run is one at a time."""
    url = request.getfixturevalue("pg_url") if engine == "postgresql" else None
    rt = make_runtime(tmp_path / engine, clock=clock, db_url=url, playbooks=PARALLEL)
    try:
        for attempt in range(8):  # a race: several tries, each must end the same way
            run = lifecycle.start_run(rt, playbook_id="parallel-join", unit_id="c1", params={},
                                      actor="s1-commander")
            rid = run.id or 0
            left, right = one(rt, rid, "left").id or 0, one(rt, rid, "right").id or 0
            results = race(lambda s=left: tasks.complete(rt, step_id=s, actor="s1-duty"),
                           lambda s=right: tasks.complete(rt, step_id=s, actor="c1-grid"))
            assert all(isinstance(r, StepInstance) for r in results), results
            with read_session(rt.db) as session:
                got = session.get(Run, rid)
                assert got is not None
                assert sorted(got.skipped) == ["left-major", "right-major"], attempt
            assert one(rt, rid, "join").status == "ready", attempt
    finally:
        rt.db.dispose()


def test_chinese_params_are_stored_as_utf8_text_on_postgres(prt: Runtime) -> None:
    run = lifecycle.start_run(prt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "六和社区某小区3栋"}, actor="s1-commander")
    with read_session(prt.db) as session:
        raw = str(session.execute(text("SELECT params::text FROM run WHERE id = :id"),
                                  {"id": run.id}).scalar_one())
    assert "六和社区某小区3栋" in raw and "\\u" not in raw
