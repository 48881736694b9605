"""The deadline sweeper with a movable clock: the escalation ladder in order, repeats, catch-up
after downtime (each missed level once), the single-sweeper lease, and reminders."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import (
    ENGINE_PLAYBOOKS,
    SHIPPED_PLAYBOOKS,
    SMALL_ORG,
    make_runtime,
    small_org_without_c2,
)
from sqlalchemy import update
from sqlmodel import select

from api.event_names import event_name
from flows import lifecycle, message_titles, sweeper, tasks
from flows.runtime import Runtime
from flows.sweeper import LEASE, LEASE_TTL, PARK, acquire_lease, sweep_once
from models.audit import AuditEvent
from models.clock import ManualClock, OffsetClock, SystemClock
from models.db import read_session, session_scope
from models.documents import PlaybookVersion
from models.escalation import Escalation
from models.org import ROLE_NAMES_ZH
from models.outbox import Notification
from models.run import Run
from models.task import StepInstance
from models.wake import Lease


def start(rt: Runtime) -> int:
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "x"}, actor="s1-commander")
    return run.id or 0


def fired(rt: Runtime, run_id: int) -> list[tuple[str, int, int]]:
    with read_session(rt.db) as session:
        rows = session.exec(select(Escalation).where(Escalation.run_id == run_id)
                            .order_by(Escalation.id)).all()
    return [(e.kind, e.level, e.repeat) for e in rows]


def receive_step(rt: Runtime, run_id: int) -> StepInstance:
    with read_session(rt.db) as session:
        return session.exec(select(StepInstance).where(
            StepInstance.run_id == run_id, StepInstance.step_key == "receive")).one()


def test_ladder_fires_in_order_then_repeats(rt: Runtime, clock: ManualClock) -> None:
    run_id = start(rt)
    clock.advance(timedelta(seconds=1))
    assert sweep_once(rt).fired == 0
    clock.advance(timedelta(seconds=2))  # 3 s: due at 2 s, level 1 at due + 0 s
    report = sweep_once(rt)
    assert report.fired == 1 and report.overdue == 1
    step = receive_step(rt, run_id)
    assert step.overdue and step.escalation_level == 1
    with read_session(rt.db) as session:
        notes = session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.kind == "escalate")).all()
    assert {(n.recipient, n.url) for n in notes} == {
        ("d1-chief", "inbox://"), ("duty", "json://127.0.0.1:9/duty")}
    clock.advance(timedelta(seconds=10))  # 13 s: level 2 (due + 10 s)
    sweep_once(rt)
    clock.advance(timedelta(seconds=10))  # 23 s: level 2 repeats every 10 s
    sweep_once(rt)
    sweep_once(rt)  # nothing new at the same moment
    clock.advance(timedelta(seconds=10))
    sweep_once(rt)
    assert fired(rt, run_id) == [("escalate", 1, 0), ("escalate", 2, 0), ("escalate", 2, 1),
                                 ("escalate", 2, 2)]


def test_missed_escalations_fire_once_after_downtime(rt: Runtime, clock: ManualClock) -> None:
    run_id = start(rt)
    clock.advance(timedelta(hours=1))  # the server was down for an hour
    report = sweep_once(rt)
    assert fired(rt, run_id) == [("escalate", 1, 0), ("escalate", 2, 0)]
    assert all(lag > 0 for lag in report.lags)
    assert sweep_once(rt).fired == 0
    clock.advance(timedelta(seconds=10))
    sweep_once(rt)
    assert fired(rt, run_id)[-1][:2] == ("escalate", 2)
    assert len(fired(rt, run_id)) == 3


def test_after_downtime_a_message_counts_the_messages_sent_not_the_repeats_missed(
        make_rt: Callable[..., Runtime], clock: ManualClock, tmp_path: Path) -> None:
    books = tmp_path / "books"
    shutil.copytree(ENGINE_PLAYBOOKS, books)  # with the shipped text of a ladder's message
    shutil.copy(SHIPPED_PLAYBOOKS / "templates" / "alert-message.md.j2", books / "templates")
    rt = make_rt(playbooks=books)
    run_id = start(rt)
    clock.advance(timedelta(seconds=13))  # level 1 at 2 s, level 2 at 12 s
    sweep_once(rt)
    clock.advance(timedelta(seconds=10))  # 23 s: level 2's first repeat
    sweep_once(rt)
    clock.advance(timedelta(seconds=400))  # down for 400 s: 40 repeats missed, one sent
    sweep_once(rt)
    assert [f for f in fired(rt, run_id) if f[1] == 2] == [
        ("escalate", 2, 0), ("escalate", 2, 1), ("escalate", 2, 41)]
    with read_session(rt.db) as session:
        bodies = [n.body for n in session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.recipient == "d1-director",
            Notification.kind == "escalate").order_by(Notification.id)).all()]
    levels = [line for body in bodies for line in body.splitlines() if "督办级别" in line]
    assert levels == ["督办级别：第 2 级", "督办级别：第 2 级（第 2 次督办）",
                      "督办级别：第 2 级（第 3 次督办）"]


def test_a_reminder_or_督办_title_names_what_the_run_is_about_briefly(
        rt: Runtime, clock: ManualClock) -> None:
    """A street head with 200 hazards in the inbox must tell the titles apart: each carries
    the run's title without the playbook's (the place), cut to a phone's line."""
    places = ["坪山街道六和社区和平路18号富达五金厂打磨车间二楼东侧", "二社区加油站"]
    runs = [lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                                params={"location": place}, actor="s1-commander").id
            for place in places]
    clock.advance(timedelta(seconds=3))
    sweep_once(rt)
    with read_session(rt.db) as session:
        titles = [{n.title for n in session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.kind == "escalate")).all()}
            for run_id in runs]
    assert titles == [{"【督办提醒】接警登记·坪山街道六和社区和平路18号富达五金厂打磨车间…"},
                      {"【督办提醒】接警登记·二社区加油站"}]
    assert len(next(iter(titles[0]))) <= message_titles.ABOUT_WIDTH + len("【督办提醒】接警登记·")
    # A step's title may take the whole width of a message's: the title still fits it.
    with session_scope(rt.db) as session:
        session.execute(update(StepInstance).where(StepInstance.run_id == runs[1])
                        .values(title="长" * 300))
    clock.advance(timedelta(seconds=10))  # level 2
    sweep_once(rt)
    with read_session(rt.db) as session:
        [long] = session.exec(select(Notification).where(
            Notification.run_id == runs[1], Notification.kind == "escalate",
            Notification.title.startswith("【督办提醒】长"))).all()  # type: ignore[attr-defined]
    assert len(long.title) == message_titles.TITLE_WIDTH and long.title.endswith("长…·二社区加油站")


def test_done_step_stops_escalating(rt: Runtime, clock: ManualClock) -> None:
    run_id = start(rt)
    clock.advance(timedelta(seconds=3))
    sweep_once(rt)
    tasks.complete(rt, step_id=receive_step(rt, run_id).id or 0, actor="s1-duty")
    clock.advance(timedelta(hours=2))
    assert sweep_once(rt).fired == 0
    assert fired(rt, run_id) == [("escalate", 1, 0)]


def test_only_one_sweeper_at_a_time(rt: Runtime, clock: ManualClock) -> None:
    start(rt)
    with session_scope(rt.db) as session:
        assert acquire_lease(session, name=LEASE, holder="other", now=clock.now(),
                             ttl=LEASE_TTL)
    clock.advance(timedelta(seconds=3))
    assert not sweep_once(rt, holder="me").swept
    clock.advance(LEASE_TTL)  # the other holder's lease expired
    assert sweep_once(rt, holder="me").swept


def test_a_sweeper_of_another_host_stopped_mid_sweep_keeps_the_others_out_a_minute(
        rt: Runtime, clock: ManualClock) -> None:
    """Two servers on one database: the other host's process died holding the lease (its pid
    cannot be checked from here). Its lease runs out after a minute, not five, and this
    host's sweeper then keeps the deadlines, the missed ones fired late, once."""
    run_id = start(rt)
    with session_scope(rt.db) as session:
        assert acquire_lease(session, name=LEASE, holder="other-host:4242:crashed",
                             now=clock.now(), ttl=LEASE_TTL)
    clock.advance(timedelta(seconds=59))
    assert not sweep_once(rt, holder="here").swept
    clock.advance(timedelta(seconds=2))
    report = sweep_once(rt, holder="here")
    assert report.swept and fired(rt, run_id) == [("escalate", 1, 0), ("escalate", 2, 0)]


def test_a_drill_ahead_of_real_time_does_not_keep_the_live_sweeper_out(tmp_path: Path) -> None:
    """`closeloop sweep --once` with CLOCK_OFFSET=2h against the live data dir: the lease is
    timed by real time, so the live server sweeps again at its next pass, not in two hours."""
    live = make_runtime(tmp_path / "data", clock=SystemClock())
    drill = make_runtime(tmp_path / "data", clock=OffsetClock(timedelta(hours=2)))
    try:
        assert sweep_once(drill, holder="drill").swept
        assert sweep_once(live, holder="live").swept
        with read_session(live.db) as session:
            lease = session.get(Lease, LEASE)
            assert lease is not None and lease.holder == "live"
            assert lease.expires_at <= datetime.now(UTC) + timedelta(seconds=5)
    finally:
        drill.db.dispose()
        live.db.dispose()


def test_a_lease_left_far_in_the_future_is_taken(tmp_path: Path) -> None:
    """One set by a clock ahead of real time (an older drill, a host with a wrong clock) could
    never be renewed in time by an honest holder: it does not block the sweeper."""
    live = make_runtime(tmp_path / "data", clock=SystemClock())
    try:
        with session_scope(live.db) as session:
            assert acquire_lease(session, name=LEASE, holder="skewed",
                                 now=datetime.now(UTC) + timedelta(hours=2), ttl=LEASE_TTL)
        assert sweep_once(live, holder="live").swept
        # A lease within its ttl still keeps a second sweeper out.
        with session_scope(live.db) as session:
            assert acquire_lease(session, name=LEASE, holder="other", now=datetime.now(UTC),
                                 ttl=LEASE_TTL)
        assert not sweep_once(live, holder="live").swept
    finally:
        live.db.dispose()


def test_a_lease_of_a_process_gone_from_this_host_is_taken_at_once(tmp_path: Path) -> None:
    """A server killed mid-sweep left its lease for up to five minutes, in which its restart
    kept no deadline. A lease of a live process is still respected."""
    import socket
    import subprocess
    import sys

    live = make_runtime(tmp_path / "data", clock=SystemClock())
    # Alive until its input is closed.
    sleeper = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                               stdin=subprocess.PIPE)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = socket.gethostname()
    try:
        with session_scope(live.db) as session:
            assert acquire_lease(session, name=LEASE, holder=f"{host}:{sleeper.pid}:alive",
                                 now=datetime.now(UTC), ttl=LEASE_TTL)
        assert not sweep_once(live, holder="live").swept
        with session_scope(live.db) as session:
            session.execute(update(Lease).where(Lease.name == LEASE)
                            .values(holder=f"{host}:{gone.pid}:killed"))
        assert sweep_once(live, holder="live").swept
    finally:
        sleeper.kill()
        sleeper.wait()
        live.db.dispose()


def test_sweep_examines_only_what_is_due(rt: Runtime, clock: ManualClock) -> None:
    for _ in range(5):
        start(rt)
    report = sweep_once(rt)
    assert report.examined == 0
    clock.advance(timedelta(seconds=3))
    assert sweep_once(rt).examined == 5


def test_extension_keeps_original_due_and_restarts_ladder(
    rt: Runtime, clock: ManualClock
) -> None:
    run_id = start(rt)
    clock.advance(timedelta(seconds=3))
    sweep_once(rt)
    step = receive_step(rt, run_id)
    original = step.due_at
    new_due = clock.now() + timedelta(hours=1)
    extended = tasks.extend(rt, step_id=step.id or 0, actor="s1-commander", due_at=new_due,
                            reason="等待燃气公司到场")
    assert extended.original_due_at == original and extended.due_at == new_due
    assert not extended.overdue and extended.escalation_level == 0
    clock.advance(timedelta(minutes=30))
    assert sweep_once(rt).fired == 0
    clock.advance(timedelta(minutes=30, seconds=5))  # past the new due, before level 2
    assert sweep_once(rt).fired == 1


def test_a_step_whose_timers_cannot_be_evaluated_is_parked_and_the_rest_still_escalate(
    rt: Runtime, clock: ManualClock
) -> None:
    """A run pinned to a playbook version that no longer loads (here: a level repeated every
    0 minutes, written before the check existed) must not stop every other deadline: its step
    is parked with the error in its timeline, the healthy run escalates as usual."""
    broken, healthy = start(rt), start(rt)
    with session_scope(rt.db) as session:
        run = session.get(Run, broken)
        assert run is not None
        pinned = session.get(PlaybookVersion, run.playbook_sha)
        assert pinned is not None
        compiled = json.loads(json.dumps(pinned.compiled))
        compiled["steps"][0]["escalate"][1]["repeat"] = "0m"
        session.add(PlaybookVersion(sha256="f" * 64, playbook_id=pinned.playbook_id,
                                    version=pinned.version, compiled=compiled,
                                    first_used_at=pinned.first_used_at))
        run.playbook_sha = "f" * 64
        session.add(run)
    clock.advance(timedelta(seconds=5))  # due at 2 s: level 1 is owed, level 2 (12 s) not yet
    report = sweep_once(rt)
    assert report.failed == 1 and report.fired == 1
    assert fired(rt, healthy) == [("escalate", 1, 0)] and fired(rt, broken) == []
    parked = receive_step(rt, broken)
    assert parked.next_check_at == clock.now() + PARK
    with read_session(rt.db) as session:
        events = session.exec(select(AuditEvent).where(
            AuditEvent.run_id == broken, AuditEvent.action == "timer_failed")).all()
    assert len(events) == 1 and "repeat must be longer than 0" in events[0].detail["error"]
    assert sweep_once(rt).failed == 0  # parked: not retried every pass


def test_a_run_whose_unit_left_the_org_chart_does_not_stop_the_others(
    make_rt: Callable[..., Runtime], clock: ManualClock
) -> None:
    """Community c2 is dropped from the org file while one of its runs is open; after the
    restart every sweep used to fail on it, and no other deadline was kept."""
    before = make_rt()
    kept = start(before)
    gone = lifecycle.start_run(before, playbook_id="quick-escalation", unit_id="c2",
                               params={"location": "二社区"}, actor="s1-commander").id or 0
    url = str(before.db.url)
    before.db.dispose()
    after = make_rt(org_text=small_org_without_c2(), db_url=url)
    assert "c2" not in after.org.units
    clock.advance(timedelta(seconds=5))
    report = sweep_once(after)
    assert report.failed == 1 and fired(after, kept) == [("escalate", 1, 0)]
    assert fired(after, gone) == []
    with read_session(after.db) as session:
        [event] = session.exec(select(AuditEvent).where(
            AuditEvent.run_id == gone, AuditEvent.action == "timer_failed")).all()
    assert "c2" in event.detail["error"]


def test_a_level_whose_roles_nobody_holds_any_more_says_so_in_the_timeline(
    make_rt: Callable[..., Runtime], clock: ManualClock
) -> None:
    """The director leaves the org chart while a run pinned to a ladder naming `director` is
    open: level 2 reaches no one, and the timeline says so instead of looking delivered."""
    before = make_rt()
    run_id = start(before)
    url = str(before.db.url)
    before.db.dispose()
    text = SMALL_ORG.read_text(encoding="utf-8").replace("roles: [director]", "roles: [expert]")
    after = make_rt(org_text=text, db_url=url)
    clock.advance(timedelta(seconds=13))  # due at 2 s, level 2 (director) at 12 s
    sweep_once(after)
    assert fired(after, run_id) == [("escalate", 1, 0), ("escalate", 2, 0)]
    with read_session(after.db) as session:
        [event] = session.exec(select(AuditEvent).where(
            AuditEvent.run_id == run_id, AuditEvent.action == "unrouted")).all()
        told = session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.kind == "escalate")).all()
    assert event.detail["level"] == 2 and event.detail["targets"] == ["director"]
    assert event.detail["target_names"] == [ROLE_NAMES_ZH["director"]]  # as the page says it
    assert "d1-director" not in {n.recipient for n in told}


def test_a_level_reaching_only_some_of_its_roles_names_the_others_in_the_timeline(
    make_rt: Callable[..., Runtime], clock: ManualClock
) -> None:
    """Level 1 is for the section chief and the duty channel; the section chief has left the
    org chart: the channel is told, and the timeline names 安全生产办公室负责人 as reached by
    no one, instead of the level reading as delivered to both."""
    before = make_rt()
    run_id = start(before)
    url = str(before.db.url)
    before.db.dispose()
    text = SMALL_ORG.read_text(encoding="utf-8").replace("roles: [section_chief]",
                                                         "roles: [expert]")
    after = make_rt(org_text=text, db_url=url)
    clock.advance(timedelta(seconds=3))  # due at 2 s: level 1 (section_chief, duty)
    sweep_once(after)
    assert fired(after, run_id) == [("escalate", 1, 0)]
    with read_session(after.db) as session:
        partly = session.exec(select(AuditEvent).where(
            AuditEvent.run_id == run_id, AuditEvent.action == "unrouted_partly")).all()
        whole = session.exec(select(AuditEvent).where(
            AuditEvent.run_id == run_id, AuditEvent.action == "unrouted")).all()
        told = session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.kind == "escalate")).all()
    assert [(e.detail["level"], e.detail["targets"]) for e in partly] == [(1, ["section_chief"])]
    assert partly[0].detail["target_names"] == [ROLE_NAMES_ZH["section_chief"]]
    assert whole == [] and told  # the duty channel was told
    assert event_name("unrouted_partly") == "督办部分对象无人担任"


LAYERED = """\
id: layered
version: 1
title: 分级督办
steps:
  - id: fix
    title: 整改
    role: grid_worker
    due: 1h
    escalate:
      - {after: 0m, notify: [street_head]}
      - {after: 7h, notify: [street_head], repeat: 7h, title: 约谈}
      - {after: 30h, notify: [street_head], repeat: 30h, title: 通报批评}
"""


def test_a_level_repeats_until_done_also_once_a_later_level_has_begun(
        make_rt: Callable[..., Runtime], tmp_path: Path, clock: ManualClock) -> None:
    # SPEC §2: `repeat` repeats the level until the step is done. hazard-3030's weekly 约谈
    # goes on beside the monthly 通报批评, as its header says; it once stopped at day 30.
    from factories import books_with

    rt = make_rt(playbooks=books_with(tmp_path, {"layered.yaml": LAYERED}))
    run_id = lifecycle.start_run(rt, playbook_id="layered", unit_id="c1", params={},
                                 actor="s1-commander").id or 0
    begun = clock.now()
    hours = [1, 8, 15, 22, 29, 31, 36, 43, 61, 64]  # sweeps, hours after the start
    for h in hours:
        clock.set(begun + timedelta(hours=h))
        sweep_once(rt)
        sweep_once(rt)  # nothing new at the same moment
    # Level 2 starts at 8 h and repeats every 7 h (15, 22, 29, 36, 43, 50, 57, 64);
    # level 3 starts at 31 h and repeats every 30 h (61).
    assert fired(rt, run_id) == [
        ("escalate", 1, 0), ("escalate", 2, 0), ("escalate", 2, 1), ("escalate", 2, 2),
        ("escalate", 2, 3), ("escalate", 3, 0), ("escalate", 2, 4), ("escalate", 2, 5),
        # 61 h after a sweep at 43: level 2's 50 and 57 collapse into one (57), then level 3
        # repeats at 61; 64 h: level 2 again.
        ("escalate", 2, 7), ("escalate", 3, 1), ("escalate", 2, 8)]
    # Done: nothing more.
    step = next(s for s in _steps(rt, run_id) if s.step_key == "fix")
    tasks.complete(rt, step_id=step.id or 0, actor="c1-grid")
    clock.set(begun + timedelta(hours=200))
    assert sweep_once(rt).fired == 0


def _steps(rt: Runtime, run_id: int) -> list[StepInstance]:
    with read_session(rt.db) as session:
        return list(session.exec(select(StepInstance).where(StepInstance.run_id == run_id)))


def test_a_sweep_in_small_batches_keeps_its_lease_and_reaches_every_step(
        rt: Runtime, clock: ManualClock) -> None:
    runs = [start(rt) for _ in range(5)]
    clock.advance(timedelta(seconds=3))
    report = sweep_once(rt, holder="batched", batch=2)  # three transactions
    assert report.swept and report.fired == 5
    assert all(fired(rt, r) == [("escalate", 1, 0)] for r in runs)
    with read_session(rt.db) as session:
        lease = session.get(Lease, LEASE)
    assert lease is not None and lease.holder == "batched"
    assert lease.expires_at <= clock.now()  # released at the end


def test_a_long_catch_up_lets_a_waiting_writer_in_between_its_batches(
        rt: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """A restart after downtime sweeps thousands of due steps, batch after batch; a commander's
    start meanwhile once waited for the whole catch-up (SQLite's busy handler retries every
    100 ms and missed the gaps) and failed after 30 s. Each batch here holds the write lock
    0.3 s, and the sweep pauses once it has held it 0.5 s: the start begun during the first
    batch must be through before the fourth begins."""
    for _ in range(12):
        start(rt)
    clock.advance(timedelta(seconds=3))
    starts: list[float] = []
    begun = threading.Event()
    real_batch = sweeper._sweep_batch

    def slow_batch(*args: Any, **kwargs: Any) -> bool:
        starts.append(time.monotonic())
        begun.set()
        done = real_batch(*args, **kwargs)
        time.sleep(0.3)  # inside the batch's transaction: the write lock is held
        return done

    monkeypatch.setattr(sweeper, "_sweep_batch", slow_batch)
    monkeypatch.setattr(sweeper, "GAP_AFTER_SECONDS", 0.5)  # after every second batch here
    through: list[float] = []

    def commander() -> None:
        begun.wait(10)
        time.sleep(0.05)  # well inside the first batch
        start(rt)
        through.append(time.monotonic())

    writer = threading.Thread(target=commander)
    writer.start()
    report = sweep_once(rt, batch=2)  # six batches
    writer.join(30)
    assert report.fired == 12 and len(starts) == 7  # the seventh finds nothing due
    assert through and through[0] < starts[3]
