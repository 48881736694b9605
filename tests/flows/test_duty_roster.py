"""A 3 a.m. alert wakes who is on duty, not everyone: messages on people's own channels to a
rostered role (a new task's announcement, its reminders and ladder levels, a notify step) go
to the one on duty, through real Apprise to a local receiver, while every holder keeps the
inbox copy and may act. When the roster names someone the message cannot go to, every
holder is messaged and the run's timeline says why."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from factories import books_with, make_runtime
from receivers import HttpReceiver
from sqlmodel import select

from api.event_names import event_name
from flows import lifecycle, tasks
from flows.duty import duty_cut
from flows.notify import deliver_due
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.audit import AuditEvent
from models.clock import ManualClock
from models.db import read_session
from models.org import OrgChart, load_org_text
from models.outbox import INBOX_URL, Notification
from models.roster import Roster
from models.task import StepInstance

# The three duty officers take turns from 03-01 08:30 (Shanghai): at the tests' start,
# Monday 03-02 09:00, it is 03-02's shift: the second in turn, 乙 (duty-b). 03-03's is swapped.
ORG = """\
units:
  - id: d
    name: 演练区
    type: district
    people:
      - {id: duty-a, name: 甲, roles: [duty_officer], notify: ["RX/duty-a"]}
      - {id: duty-b, name: 乙, roles: [duty_officer], notify: ["RX/duty-b"]}
      - {id: duty-c, name: 丙, roles: [duty_officer], notify: ["RX/duty-c"]}
      - {id: boss, name: 丁, roles: [commander], notify: ["RX/boss"]}
    children:
      - {id: c1, name: 一社区, type: community}
rosters:
  - unit: d
    role: duty_officer
    change_at: "08:30"
    rota: [duty-a, duty-b, duty-c]
    from: 2026-03-01
    swaps: {2026-03-03: duty-a}
"""

DRILL = """\
id: duty-drill
version: 1
title: 值班演练
announce: channels
steps:
  - id: receive
    title: 接收警情
    role: duty_officer
    ack: 1m
    due: 10m
    remind: [{before: 5m}]
    escalate:
      - {after: 0m, notify: [duty_officer, commander]}
  - id: alert
    title: 通报值班室
    action: notify
    needs: [receive]
    template: duty-alert.md.j2
    to: [duty_officer, commander]
"""

STAGED = """\
id: duty-stages
version: 1
title: 值班分级演练
announce: channels
stages: [watch, alarm]
steps:
  - id: prepare
    title: 值班室准备
    role: duty_officer
    stage: alarm
    due: 1h
"""

ROUNDS = """\
id: duty-rounds
version: 1
title: 值班续报演练
announce: channels
steps:
  - id: follow-up
    title: 续报
    role: duty_officer
    recur: {at: ["07:00", "16:00"], until: [close]}
    due: 1h
  - id: close
    title: 处置终结
    role: duty_officer
"""

OFFICERS = ["duty-a", "duty-b", "duty-c"]


@pytest.fixture
def books(tmp_path: Path) -> Path:
    return books_with(tmp_path, {"duty-drill.yaml": DRILL, "duty-stages.yaml": STAGED,
                                 "duty-rounds.yaml": ROUNDS,
                                 "templates/duty-alert.md.j2": "# {{ run.title }}\n"})


def runtime(path: Path, clock: ManualClock, books: Path, receiver: HttpReceiver,
            org: str = ORG) -> Runtime:
    rt = make_runtime(path, clock=clock, playbooks=books,
                      org_text=org.replace("RX/", receiver.url("/")))
    assert rt.catalog.errors == []
    return rt


@pytest.fixture
def drill(tmp_path: Path, clock: ManualClock, books: Path,
          receiver: HttpReceiver) -> Iterator[Runtime]:
    rt = runtime(tmp_path / "drill", clock, books, receiver)
    yield rt
    rt.db.dispose()


def start(rt: Runtime) -> int:
    run = lifecycle.start_run(rt, playbook_id="duty-drill", unit_id="c1", params={},
                              actor="boss")
    return run.id or 0


def notes(rt: Runtime, run_id: int, kind: str) -> list[Notification]:
    with read_session(rt.db) as session:
        return list(session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.kind == kind)
            .order_by(Notification.id)).all())  # type: ignore[arg-type]


def inboxed(rows: list[Notification]) -> list[str]:
    return sorted(n.recipient for n in rows if n.url == INBOX_URL)


def on_channels(rows: list[Notification]) -> list[str]:
    return sorted(n.recipient for n in rows if n.url != INBOX_URL)


def delivered_paths(rt: Runtime, clock: ManualClock, receiver: HttpReceiver,
                    title: str) -> list[str]:
    report = deliver_due(rt.db, clock=clock, limit=100)
    assert report.failed == 0
    return sorted(r.path for r in receiver.wait_for(report.delivered)
                  if r.json["title"] == title)


def receive_step(rt: Runtime, run_id: int) -> StepInstance:
    with read_session(rt.db) as session:
        return session.exec(select(StepInstance).where(
            StepInstance.run_id == run_id, StepInstance.step_key == "receive")).one()


def fallbacks(rt: Runtime, run_id: int) -> list[AuditEvent]:
    with read_session(rt.db) as session:
        return list(session.exec(select(AuditEvent).where(
            AuditEvent.run_id == run_id, AuditEvent.action == "duty_fallback")).all())


def test_a_new_task_wakes_only_the_officer_on_duty_and_every_officer_has_it_in_the_inbox(
        drill: Runtime, clock: ManualClock, receiver: HttpReceiver) -> None:
    run_id = start(drill)
    receive = receive_step(drill, run_id)
    assert receive.assignees == OFFICERS  # any of them may take it
    told = notes(drill, run_id, "assigned")
    assert inboxed(told) == OFFICERS
    assert on_channels(told) == ["duty-b"]
    [title] = {n.title for n in told}
    assert title.startswith(f"【新任务】{receive.title}·")
    assert delivered_paths(drill, clock, receiver, title) == ["/duty-b"]
    assert fallbacks(drill, run_id) == []
    # Off duty, 丙 still finds it in the inbox and may act on it.
    assert tasks.ack(drill, step_id=receive.id or 0, actor="duty-c").acked_by == "duty-c"


def test_on_a_swapped_day_the_one_who_took_the_shift_is_woken(
        drill: Runtime, clock: ManualClock, receiver: HttpReceiver) -> None:
    # 03-03 03:00 in Shanghai is still 03-02's shift (乙); from 08:30 the swap's (甲, not 丙).
    clock.set(datetime(2026, 3, 2, 19, 0, tzinfo=UTC))
    first = start(drill)
    clock.set(datetime(2026, 3, 3, 0, 30, tzinfo=UTC))
    second = start(drill)
    assert on_channels(notes(drill, first, "assigned")) == ["duty-b"]
    assert on_channels(notes(drill, second, "assigned")) == ["duty-a"]


def test_reminders_and_ladder_levels_wake_the_officer_on_duty_beside_other_roles(
        drill: Runtime, clock: ManualClock, receiver: HttpReceiver) -> None:
    run_id = start(drill)
    deliver_due(drill.db, clock=clock, limit=100)
    title = receive_step(drill, run_id).title
    clock.advance(timedelta(minutes=2))  # not signed for within 1 minute
    sweep_once(drill)
    ack = notes(drill, run_id, "ack")
    assert inboxed(ack) == sorted([*OFFICERS, "boss"])
    assert on_channels(ack) == ["boss", "duty-b"]
    [ack_title] = {n.title for n in ack}
    assert ack_title.startswith(f"【未签收】{title}·")  # and what the run is about
    assert delivered_paths(drill, clock, receiver, ack_title) == ["/boss", "/duty-b"]

    clock.advance(timedelta(minutes=9))  # past the 10-minute deadline: the first level
    sweep_once(drill)
    escalated = notes(drill, run_id, "escalate")
    assert inboxed(escalated) == sorted([*OFFICERS, "boss"])
    assert on_channels(escalated) == ["boss", "duty-b"]
    assert fallbacks(drill, run_id) == []


def test_a_notify_step_to_the_duty_room_wakes_the_officer_on_duty(
        drill: Runtime, clock: ManualClock, receiver: HttpReceiver) -> None:
    run_id = start(drill)
    tasks.complete(drill, step_id=receive_step(drill, run_id).id or 0, actor="duty-c")
    drain_wakes(drill)
    sent = notes(drill, run_id, "notify")
    assert inboxed(sent) == sorted([*OFFICERS, "boss"])
    assert on_channels(sent) == ["boss", "duty-b"]
    [title] = {n.title for n in sent}
    assert delivered_paths(drill, clock, receiver, title) == ["/boss", "/duty-b"]


def test_a_roster_naming_someone_the_task_was_not_handed_to_messages_every_holder(
        tmp_path: Path, clock: ManualClock, books: Path, receiver: HttpReceiver) -> None:
    """The task went out to 甲乙丙; the bureau then adds 戊 and puts 戊 on today's shift (a
    restart reads the new org file). The reminder of the open task goes to those it was
    handed to, and 戊 is not among them: all three are woken, and the timeline says so."""
    before = runtime(tmp_path / "drill", clock, books, receiver)
    run_id = start(before)
    before.db.dispose()
    changed = ORG.replace(
        '      - {id: boss,',
        '      - {id: duty-e, name: 戊, roles: [duty_officer], notify: ["RX/duty-e"]}\n'
        '      - {id: boss,').replace("swaps: {2026-03-03: duty-a}", "swaps: {2026-03-02: duty-e}")
    after = runtime(tmp_path / "drill", clock, books, receiver, org=changed)
    try:
        clock.advance(timedelta(minutes=6))  # the reminder, 5 minutes before the deadline
        sweep_once(after)
        reminded = notes(after, run_id, "remind")
        assert inboxed(reminded) == OFFICERS
        assert on_channels(reminded) == OFFICERS
        [event] = fallbacks(after, run_id)
        assert event.detail["on_duty"] == "duty-e"
        assert event.detail["cause"] == "not_addressed"
        assert event.detail["message"] == ("值班表排定的值班员戊不在本条消息的接收人之中，"
                                           "已通知全部值班员")
        assert event_name("duty_fallback") == "值班表未能确定值班人员，已通知全部人员"
        # The 未签收 chase in the same sweep names the role itself (its first level), which
        # reaches 戊 now: 戊 alone of the officers is woken by it, and no fallback is needed.
        assert on_channels(notes(after, run_id, "ack")) == ["boss", "duty-e"]
        # A new task goes to the holders as they are now, 戊 among them, and wakes 戊 alone.
        second = start(after)
        assert on_channels(notes(after, second, "assigned")) == ["duty-e"]
        assert fallbacks(after, second) == []
    finally:
        after.db.dispose()


def test_before_the_roster_is_in_force_every_holder_is_woken(
        drill: Runtime, clock: ManualClock) -> None:
    clock.set(datetime(2026, 2, 28, 1, 0, tzinfo=UTC))  # 02-28 09:00, before `from`
    run_id = start(drill)
    assert on_channels(notes(drill, run_id, "assigned")) == OFFICERS
    assert fallbacks(drill, run_id) == []


def test_a_task_handed_to_a_named_officer_is_chased_on_their_channel_off_duty_or_not(
        drill: Runtime, clock: ManualClock) -> None:
    """改派 to 丙, off duty: the task is 丙's alone, so 丙 is chased on the phone; the level
    naming the duty officers wakes the one on duty (乙) beside the commander."""
    run_id = start(drill)
    step = receive_step(drill, run_id)
    tasks.reassign(drill, step_id=step.id or 0, actor="boss", person="duty-c")
    clock.advance(timedelta(minutes=2))
    sweep_once(drill)
    assert on_channels(notes(drill, run_id, "ack")) == ["boss", "duty-b", "duty-c"]


def test_the_officer_who_signed_for_a_task_is_reminded_on_their_channel_after_their_shift(
        drill: Runtime, clock: ManualClock) -> None:
    """丙 signed for it though 乙 is on duty: the reminder reaches the one on duty and the
    one working on it, on their phones; 甲 has it in the inbox."""
    run_id = start(drill)
    tasks.ack(drill, step_id=receive_step(drill, run_id).id or 0, actor="duty-c")
    clock.advance(timedelta(minutes=6))  # the reminder, 5 minutes before the deadline
    sweep_once(drill)
    reminded = notes(drill, run_id, "remind")
    assert inboxed(reminded) == OFFICERS
    assert on_channels(reminded) == ["duty-b", "duty-c"]


def test_a_task_called_off_is_said_on_the_channels_of_those_who_heard_of_it_there(
        drill: Runtime, clock: ManualClock, receiver: HttpReceiver) -> None:
    """Raised to 警报 at 乙's shift: 乙 is woken, and 甲 signs for it. Days later 丙 is on
    duty; lowered again, 甲 and 丙 are told on their phones it is called off, 乙 (off
    duty, not on it) in the inbox; all three find it there."""
    run = lifecycle.start_run(drill, playbook_id="duty-stages", unit_id="c1", params={},
                              actor="boss")
    run_id = run.id or 0
    lifecycle.set_stage(drill, run_id=run_id, stage="alarm", actor="boss")
    assert on_channels(notes(drill, run_id, "assigned")) == ["duty-b"]
    with read_session(drill.db) as session:
        prepare = session.exec(select(StepInstance).where(
            StepInstance.run_id == run_id, StepInstance.step_key == "prepare")).one()
    tasks.ack(drill, step_id=prepare.id or 0, actor="duty-a")
    clock.set(datetime(2026, 3, 6, 1, 0, tzinfo=UTC))  # 03-06 09:00: 丙's shift
    lifecycle.set_stage(drill, run_id=run_id, stage="watch", actor="boss", call_off_all=True,
                        note="预警降级")
    called = notes(drill, run_id, "called_off")
    assert inboxed(called) == OFFICERS
    assert on_channels(called) == ["duty-a", "duty-c"]


@pytest.mark.parametrize(("rota", "cause", "said"), [
    (("duty-gone",), "missing", "值班表排定的值班员duty-gone已不在组织架构中，已通知全部值班员"),
    (("boss",), "not_holder", "值班表排定的值班员丁已不担任该角色，已通知全部值班员"),
])
def test_a_roster_naming_someone_gone_or_without_the_role_falls_back_to_every_holder(
        rota: tuple[str, ...], cause: str, said: str) -> None:
    """The loader refuses such a roster (tests/models/test_roster.py); this is the guard
    behind it, for a chart built in code: nobody of the role is left unalerted."""
    loaded = load_org_text(ORG.replace("RX/", "json://127.0.0.1:9/"), filename="org.yaml")
    org = OrgChart(units=loaded.units, people=loaded.people, channels=loaded.channels,
                   root_id=loaded.root_id, rosters={("d", "duty_officer"): Roster(
                       unit_id="d", role="duty_officer", change_at=time(8, 30), rota=rota,
                       start=date(2026, 3, 1))})
    cut = duty_cut(org, ZoneInfo("Asia/Shanghai"), datetime(2026, 3, 2, 1, 0, tzinfo=UTC),
                   [("duty_officer", "d", OFFICERS)])
    assert cut.quiet == frozenset()
    [fallback] = cut.fallbacks
    assert (fallback.reason, fallback.detail(org)["message"]) == (cause, said)


def test_rounds_withdrawn_by_the_close_wake_only_the_officer_on_duty_and_the_one_who_signed(
        drill: Runtime, clock: ManualClock, receiver: HttpReceiver) -> None:
    """The close ends the 续报 rounds still open: every holder finds 【轮次结束】 in the inbox;
    on channels only 乙, on duty, and 丙, who had signed for the first round."""
    run_id = lifecycle.start_run(drill, playbook_id="duty-rounds", unit_id="c1", params={},
                                 actor="boss").id or 0
    with read_session(drill.db) as session:
        rows = session.exec(select(StepInstance).where(StepInstance.run_id == run_id)
                            .order_by(StepInstance.id)).all()  # type: ignore[arg-type]
    first = next(r for r in rows if r.step_key == "follow-up")
    close = next(r for r in rows if r.step_key == "close")
    tasks.ack(drill, step_id=first.id or 0, actor="duty-c")
    tasks.complete(drill, step_id=close.id or 0, actor="duty-a")
    told = notes(drill, run_id, "round_withdrawn")
    assert [n.title for n in told if n.recipient == "duty-a"] == ["【轮次结束】续报"]
    assert inboxed(told) == OFFICERS
    assert on_channels(told) == ["duty-b", "duty-c"]
    assert fallbacks(drill, run_id) == []
