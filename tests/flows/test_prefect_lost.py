"""Closeloop's own Prefect server killed while the engine runs: automatic steps (a first
report) go on at once without it, health says so, and the runner starts a new Prefect server
and records what ran meanwhile. Before, every segment failed until a restart of closeloop."""

from __future__ import annotations

from datetime import timedelta

from factories import png_bytes, wait_for
from sqlmodel import select

from flows import lifecycle, tasks
from flows.evidence import store_evidence
from flows.prefect_server import PrefectServer
from flows.runtime import Runtime
from flows.segments import SegmentRunner
from models.clock import ManualClock
from models.db import read_session
from models.task import StepInstance
from models.wake import Wake


def step(rt: Runtime, run_id: int, key: str) -> StepInstance:
    with read_session(rt.db) as session:
        return session.exec(select(StepInstance).where(
            StepInstance.run_id == run_id, StepInstance.step_key == key)).one()


def to_report(rt: Runtime, location: str, width: int) -> int:
    """A run whose automatic report step is ready: its two tasks done and verified."""
    rid = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": location}, actor="s1-commander").id or 0
    tasks.complete(rt, step_id=step(rt, rid, "receive").id or 0, actor="s1-duty")
    inspect = step(rt, rid, "inspect").id or 0
    photo = store_evidence(rt, data=png_bytes(width, 2), filename=f"{location}.png",
                           uploaded_by="c1-grid").id
    tasks.complete(rt, step_id=inspect, actor="c1-grid", note="ok", evidence=[photo])
    tasks.verify(rt, step_id=inspect, actor="s1-insp1", approve=True)
    return rid


def all_recorded(rt: Runtime, rid: int) -> bool:
    with read_session(rt.db) as session:
        return not session.exec(select(Wake).where(
            Wake.run_id == rid, Wake.done_at == None)).all()  # noqa: E711


def test_a_killed_prefect_server_stops_nothing_and_is_started_again(
        rt: Runtime, clock: ManualClock) -> None:
    server = PrefectServer(rt.settings)
    runner = SegmentRunner(rt, api_url_provider=server.start, poll=0.05, retry_prefect=1)
    runner.start()
    try:
        assert runner.ready.wait(120), runner.error
        first = to_report(rt, "一号", 2)
        runner.kick()
        wait_for(lambda: all_recorded(rt, first), timeout=120)
        assert step(rt, first, "report").prefect_recorded
        dead = server.process
        assert dead is not None
        dead.kill()
        dead.wait()

        second = to_report(rt, "二号", 3)
        runner.kick()
        # The report goes out without Prefect ...
        wait_for(lambda: step(rt, second, "report").status == "done", timeout=120)
        assert runner.degraded_segments >= 1  # (its error may be cleared already: restarted)
        # ... a new Prefect server is started, and what ran meanwhile is recorded in it.
        wait_for(lambda: runner.ready.is_set() and runner.error is None, timeout=120)
        # Past the kept wakes' retry, and again while waiting: on a loaded machine the first
        # try may still meet a Prefect that is warming up, and its retry (15 s, backing off
        # to 15 min) is counted on this clock, which only the test moves.
        def recorded_after_a_minute_more() -> bool:
            clock.advance(timedelta(seconds=60))
            runner.kick()
            return all_recorded(rt, second)

        wait_for(recorded_after_a_minute_more, timeout=120)
        assert step(rt, second, "report").prefect_recorded
        assert server.process is not None and server.process is not dead
        assert server.process.poll() is None and runner.error is None
    finally:
        runner.stop()
        server.stop()
