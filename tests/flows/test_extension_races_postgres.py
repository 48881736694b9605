"""A request for more time decided at the moment its task is handed in, on PostgreSQL: one of
them wins and the other is a clear conflict (SPEC §4), never a deadlock (which the API could
only answer as a database error). The completion lapses the task's pending requests; the
decision must therefore take the run's lock first, as every task action does, instead of
locking the request and then waiting for the task the completion holds.

The interleaving is forced, not hoped for: a third connection holds the task's row while the
completion (run locked, waiting for the task) and then the decision line up behind it."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from factories import run_steps
from sqlalchemy import text

from flows import extensions, lifecycle, tasks
from flows.runtime import Runtime
from flows.segments import drain_wakes
from models.db import read_session
from models.errors import Conflict
from models.hazard import ExtensionRequest


def lock_waiters(rt: Runtime) -> int:
    with rt.db.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()")).scalar_one())


def wait_for_waiters(rt: Runtime, count: int) -> None:
    """Until `count` transactions wait on a lock (bounded; a condition, not a time)."""
    deadline = time.monotonic() + 30
    while lock_waiters(rt) < count:
        assert time.monotonic() < deadline, f"{count} waiters never appeared"
        time.sleep(0.01)


def test_a_decision_racing_the_hand_in_is_one_success_and_one_conflict(pg_rt: Runtime) -> None:
    rt = pg_rt
    run = lifecycle.start_run(rt, playbook_id="register-demo", unit_id="c1",
                              params={"location": "一社区加油站"}, actor="s1-commander")
    drain_wakes(rt)
    rectify = next(s for s in run_steps(rt, run.id or 0) if s.step_key == "rectify")
    assert rectify.due_at is not None
    req = extensions.request_extension(rt, step_id=rectify.id or 0, actor="c1-grid",
                                       due_at=rectify.due_at + timedelta(days=5),
                                       reason="设备到货延迟")
    results: dict[str, object] = {}

    def attempt(name: str, call: object) -> threading.Thread:
        def body() -> None:
            try:
                results[name] = call()  # type: ignore[operator]
            except Exception as exc:  # judged below
                results[name] = exc
        thread = threading.Thread(target=body)
        thread.start()
        return thread

    holder = rt.db.connect()
    holder.begin()
    holder.execute(text("SELECT id FROM step_instance WHERE id = :id FOR UPDATE"),
                   {"id": rectify.id})
    try:
        done = attempt("complete", lambda: tasks.complete(
            rt, step_id=rectify.id or 0, actor="c1-grid", note="已整改", outputs={}))
        wait_for_waiters(rt, 1)
        decided = attempt("decide", lambda: extensions.decide_extension(
            rt, request_id=req.id or 0, actor="s1-head", approve=True, note="同意"))
        wait_for_waiters(rt, 2)
    finally:
        holder.rollback()
        holder.close()
    done.join(timeout=60)
    decided.join(timeout=60)

    assert not isinstance(results["complete"], Exception), results
    assert isinstance(results["decide"], Conflict), results
    assert "申请" in str(results["decide"])  # Chinese first: the request is no longer pending
    with read_session(rt.db) as session:
        row = session.get(ExtensionRequest, req.id)
        assert row is not None and row.status != "approved"
    assert next(s for s in run_steps(rt, run.id or 0) if s.step_key == "rectify").status in (
        "done", "submitted")
