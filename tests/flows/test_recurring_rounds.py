"""`recur`: a step handed out in rounds (续报 due at 08:00 and 17:00 every day) until another
step finishes. Each round is a task of its own, with the step's deadline and ladder; the next
round is written ahead (pending, its time in next_check_at) and the sweeper hands it out when
its time comes; a step waiting item by item (the sending) follows round by round; missed
rounds collapse into one; finishing the `until` step withdraws what is left, and the run
completes. Real runtime on SQLite, the clock moved, never slept on."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import books_with, refused, run_events, run_steps
from factories import run_row as get_run
from rounds_books import SITREP, TEMPLATE
from sqlmodel import select

from flows import lifecycle, tasks
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import SweepReport, sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.outbox import Notification
from models.task import StepInstance


def shanghai(day: int, hour: int, minute: int = 0) -> datetime:
    """2026-03-<day> hour:minute in Shanghai, as UTC."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


@pytest.fixture
def sitrep(make_rt: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    rt = make_rt(playbooks=books_with(tmp_path, {"sitrep.yaml": SITREP,
                                                 "templates/send.txt.j2": TEMPLATE}))
    assert rt.catalog.errors == []
    return rt


def start(rt: Runtime) -> int:
    return lifecycle.start_run(rt, playbook_id="sitrep", unit_id="s1", params={},
                               actor="s1-commander").id or 0


def of(rt: Runtime, run_id: int, key: str) -> list[StepInstance]:
    return sorted((r for r in run_steps(rt, run_id) if r.step_key == key),
                  key=lambda r: r.item_index)


def sweep(rt: Runtime, clock: ManualClock) -> SweepReport:
    """A sweep a second on (the sweeper's lease, released at one moment, is free after it)."""
    clock.advance(timedelta(seconds=1))
    report = sweep_once(rt)
    assert report.swept
    return report


def do(rt: Runtime, row: StepInstance, **outputs: object) -> None:
    tasks.complete(rt, step_id=row.id or 0, actor="s1-duty", outputs=dict(outputs))
    drain_wakes(rt)


def started_first(rt: Runtime, clock: ManualClock) -> int:
    """Run started Monday 09:00; its first report done at 09:10: round 1 of 续报 is out."""
    run_id = start(rt)
    clock.advance(timedelta(minutes=10))
    do(rt, of(rt, run_id, "first")[0])
    return run_id


def test_rounds_come_at_their_times_each_a_task_with_its_ladder_until_the_close(
        sitrep: Runtime, clock: ManualClock) -> None:
    run_id = started_first(sitrep, clock)
    first, second = of(sitrep, run_id, "follow-up")
    assert (first.status, first.title, first.due_at) == (
        "ready", "续报", clock.now() + timedelta(hours=1))
    # Round 2 is written ahead: pending, for 16:00, titled by its deadline; whose it will be.
    assert (second.status, second.next_check_at, second.ready_at) == (
        "pending", shanghai(2, 16), None)
    assert second.title == "续报（第2次，03-02 17:00前）"
    assert second.assignees == ["s1-duty"]
    assert [r.status for r in of(sitrep, run_id, "send")] == ["pending"]

    do(sitrep, first, progress="泄漏已控制")
    assert [r.status for r in of(sitrep, run_id, "send")] == ["done"]
    # The step after the sending does not wait for the next day's rounds.
    assert [r.status for r in of(sitrep, run_id, "summary")] == ["ready"]

    clock.set(shanghai(2, 15, 59))
    assert sweep(sitrep, clock).rounds_started == 0
    clock.set(shanghai(2, 16, 0) + timedelta(seconds=20))  # a sweep a little after 16:00
    assert sweep(sitrep, clock).rounds_started == 1
    first, second, third = of(sitrep, run_id, "follow-up")
    assert (second.status, second.ready_at, second.due_at) == (
        "ready", clock.now(), shanghai(2, 17))  # due counted from 16:00, not from the sweep
    assert (third.status, third.next_check_at, third.title) == (
        "pending", shanghai(3, 7), "续报（第3次，03-03 08:00前）")
    sends = of(sitrep, run_id, "send")
    assert [(r.status, r.title) for r in sends] == [
        ("done", "报送续报"), ("pending", "报送续报（第2次，03-02 17:00前）")]
    assert sends[1].item == second.item
    with read_session(sitrep.db) as session:
        told = session.exec(select(Notification.title).where(
            Notification.step_id == second.id)).all()
    assert told == ["【新任务】续报（第2次，03-02 17:00前）·一街道"]
    assert sweep(sitrep, clock).rounds_started == 0  # handed out once

    # Round 2 is late: its own ladder fires, once.
    clock.set(shanghai(2, 17, 1))
    report = sweep(sitrep, clock)
    assert (report.overdue, report.fired) == (1, 1)
    assert sweep(sitrep, clock).fired == 0
    do(sitrep, of(sitrep, run_id, "follow-up")[1], progress="现场已清理")
    assert [r.status for r in of(sitrep, run_id, "send")] == ["done", "done"]

    # The close ends the rounds: round 3, written ahead, is withdrawn; the run completes.
    do(sitrep, of(sitrep, run_id, "summary")[0])
    do(sitrep, of(sitrep, run_id, "close")[0])
    assert [r.status for r in of(sitrep, run_id, "follow-up")] == [
        "done", "done", "cancelled"]
    assert get_run(sitrep, run_id).status == "completed"
    withdrawn = run_events(sitrep, run_id, "round_withdrawn")
    assert [(e.detail["step"], e.detail["until"], e.detail["until_title"]) for e in withdrawn] \
        == [("follow-up", "close", "处置终结")]
    clock.set(shanghai(3, 7, 5))
    assert sweep(sitrep, clock).rounds_started == 0


def test_an_open_round_and_its_waiting_send_are_withdrawn_when_the_close_finishes(
        sitrep: Runtime, clock: ManualClock) -> None:
    run_id = started_first(sitrep, clock)
    do(sitrep, of(sitrep, run_id, "follow-up")[0], progress="泄漏已控制")
    clock.set(shanghai(2, 16, 0))
    sweep(sitrep, clock)
    do(sitrep, of(sitrep, run_id, "summary")[0])
    do(sitrep, of(sitrep, run_id, "close")[0])  # 16:00's report still open: the close says it
    assert [r.status for r in of(sitrep, run_id, "follow-up")] == [
        "done", "cancelled", "cancelled"]
    assert [r.status for r in of(sitrep, run_id, "send")] == ["done", "cancelled"]
    assert get_run(sitrep, run_id).status == "completed"
    assert {e.from_state for e in run_events(sitrep, run_id, "round_withdrawn")} == {
        "ready", "pending"}


def test_the_holder_of_a_round_withdrawn_while_open_is_told(
        sitrep: Runtime, clock: ManualClock) -> None:
    """Half-way through 16:00's report, the close is done: the duty officer hears the round is
    withdrawn (not a task that silently leaves the inbox); the round written ahead, in nobody's
    inbox yet, tells nobody."""
    run_id = started_first(sitrep, clock)
    do(sitrep, of(sitrep, run_id, "follow-up")[0], progress="泄漏已控制")
    clock.set(shanghai(2, 16, 0))
    sweep(sitrep, clock)
    do(sitrep, of(sitrep, run_id, "summary")[0])
    do(sitrep, of(sitrep, run_id, "close")[0])
    second, third = of(sitrep, run_id, "follow-up")[1:]
    with read_session(sitrep.db) as session:
        told = session.exec(select(Notification.recipient, Notification.title,
                                   Notification.body).where(
            Notification.kind == "round_withdrawn")).all()
    assert told == [("s1-duty", "【轮次结束】续报（第2次，03-02 17:00前）",
                     "事件续报·一街道：“处置终结”已完成，续报（第2次，03-02 17:00前）已撤回，"
                     "无需再办理。")]
    assert (second.status, third.status) == ("cancelled", "cancelled")


def test_rounds_missed_while_the_server_was_down_collapse_into_the_latest(
        sitrep: Runtime, clock: ManualClock) -> None:
    run_id = started_first(sitrep, clock)
    do(sitrep, of(sitrep, run_id, "follow-up")[0], progress="泄漏已控制")
    clock.set(shanghai(3, 12, 0))  # down from Monday afternoon to Tuesday noon
    assert sweep(sitrep, clock).rounds_started == 1
    rows = of(sitrep, run_id, "follow-up")
    assert len(rows) == 3
    late, following = rows[1], rows[2]
    # One round, the latest missed (Tuesday 07:00, due 08:00: overdue at once), not two.
    assert late.item["at"] == shanghai(3, 7).isoformat()
    assert (late.status, late.due_at) == ("ready", shanghai(3, 8))
    assert late.title == "续报（第2次，03-03 08:00前）"
    assert following.next_check_at == shanghai(3, 16)
    [event] = run_events(sitrep, run_id, "round")
    assert event.detail["missed_rounds"] == 1
    report = sweep(sitrep, clock)
    assert (report.overdue, report.fired) == (1, 1)


def test_cancelling_the_run_withdraws_the_round_written_ahead(
        sitrep: Runtime, clock: ManualClock) -> None:
    run_id = started_first(sitrep, clock)
    lifecycle.cancel_run(sitrep, run_id=run_id, actor="s1-commander", reason="误报")
    assert {r.status for r in of(sitrep, run_id, "follow-up")} == {"cancelled"}
    clock.set(shanghai(2, 16, 5))
    assert sweep(sitrep, clock).rounds_started == 0


def test_every_counts_from_the_previous_round(make_rt: Callable[..., Runtime],
                                              tmp_path: Path, clock: ManualClock) -> None:
    text = SITREP.replace('recur: {at: ["07:00", "16:00"], until: [close]}',
                          "recur: {every: 4h, until: [close]}")
    rt = make_rt(playbooks=books_with(tmp_path, {"sitrep.yaml": text,
                                                 "templates/send.txt.j2": TEMPLATE}))
    run_id = started_first(rt, clock)
    first = clock.now()
    assert of(rt, run_id, "follow-up")[1].next_check_at == first + timedelta(hours=4)
    clock.advance(timedelta(hours=4, minutes=3))  # the sweep comes late: the cadence holds
    assert sweep(rt, clock).rounds_started == 1
    rows = of(rt, run_id, "follow-up")
    assert rows[1].due_at == first + timedelta(hours=5)
    assert rows[2].next_check_at == first + timedelta(hours=8)


# -- what the loader refuses, each at its line ---------------------------------------------------

def swapped(old: str, new: str) -> str:
    assert old in SITREP
    return SITREP.replace(old, new)


RECUR = 'recur: {at: ["07:00", "16:00"], until: [close]}'


@pytest.mark.parametrize(("text", "expected"), [
    (swapped(RECUR, "recur: {until: [close]}"),
     "sitrep.yaml:13:12: steps[1] (follow-up).recur: recur 须写 at（每天几点，如 ['08:00', '17:00'"
     "]）或 "
     "every（间隔，如 12h）二者之一"),
    (swapped(RECUR, 'recur: {at: ["07:00"], every: 12h, until: [close]}'),
     "steps[1] (follow-up).recur: recur 须写 at"),
    (swapped(RECUR, 'recur: {at: ["7:00"], until: [close]}'),
     "sitrep.yaml:13:18: steps[1] (follow-up).recur.at[0]: 时刻写作 HH:MM（24 小时制，加引号，如 "
     "\"08:00\"、"
     "\"17:30\"）；收到 '7:00'"),
    (swapped(RECUR, "recur: {at: [08:00, 17:00], until: [close]}"),
     "sitrep.yaml:13:25: steps[1] (follow-up).recur.at[1]: 时刻须加引号：未加引号的 17:00 被 YAML "
     "读成了数字 "
     "1020，请写 \"17:00\""),
    (swapped(RECUR, 'recur: {at: ["08:00", "08:00"], until: [close]}'),
     "steps[1] (follow-up).recur.at: recur.at 中同一时刻写了两次"),
    (swapped(RECUR, "recur: {every: 1m, until: [close]}"),
     "steps[1] (follow-up).recur.every: recur.every 至少 10m（收到 1m）"),
    (swapped(RECUR, 'recur: {at: ["07:00"]}'), "steps[1] (follow-up).recur.until"),
    (swapped(RECUR, 'recur: {at: ["07:00"], until: [clsoe]}'),
     "sitrep.yaml:13:36: steps[1] (follow-up).recur.until[0]: 没有步骤 clsoe（可选：first、follow-"
     "up、send、"
     "summary、close）"),
    (swapped(RECUR, 'recur: {at: ["07:00"], until: [first]}'),
     "steps[1] (follow-up).recur.until[0]: 本步骤要等 first 完成后才开始，它不能结束本步骤的轮次"),
    (swapped(RECUR, 'recur: {at: ["07:00"], until: [follow-up]}'),
     "steps[1] (follow-up).recur.until: recur.until 不能写本步骤自身"),
    (swapped("    due: 1h\n    escalate", "    due: {after: 1h, from: run}\n    escalate"),
     "steps[1] (follow-up).due.from: 按轮次重复的步骤，每一轮的时限从该轮下达起算"),
    (swapped("    needs: [first]\n    recur", "    needs: [first]\n    action: wait\n    recur"),
     "steps[1] (follow-up).recur: action: wait 的步骤不能按轮次重复"),
    (swapped("    needs: [first]\n    recur",
             "    needs: [first]\n    for_each: \"units(type='community')\"\n    recur"),
     "steps[1] (follow-up).for_each: 逐项分派的步骤不能同时按轮次重复（recur）"),
    # The sending finishes after every round: it would end the rounds after the first.
    (swapped(RECUR, 'recur: {at: ["07:00"], until: [send]}'),
     "sitrep.yaml:13:36: steps[1] (follow-up).recur.until[0]: send 逐轮跟随本步骤（item_needs），"
     "每一轮后都会"
     "完成，不能结束本步骤的轮次"),
    (swapped(RECUR, 'recur: {at: ["07:00"], early_by: [duty_leadr], until: [close]}'),
     "sitrep.yaml:13:39: steps[1] (follow-up).recur.early_by[0]: 没有角色 duty_leadr"),
    # Without a fan-out of its own, a step pairs item by item only with a recurring need.
    (swapped(RECUR, ""),
     "sitrep.yaml:25:17: steps[2] (send).item_needs: item_needs 按项等待，须配合 for_each"),
])
def test_a_recur_mistake_is_refused_naming_file_line_and_key(sitrep: Runtime, text: str,
                                                             expected: str) -> None:
    assert expected in refused(sitrep, text, filename="sitrep.yaml")


def test_rounds_written_in_a_module_end_on_the_module_step_named(
        make_rt: Callable[..., Runtime], tmp_path: Path, clock: ManualClock) -> None:
    module = """\
id: sitrep-rounds
title: 续报模块
steps:
  - id: write
    title: 续报
    role: duty_officer
    recur: {every: 12h, until: [close]}
    due: 1h
  - id: close
    title: 处置终结
    role: duty_officer
"""
    book = "id: mod\nversion: 1\ntitle: 模块续报\nmodules:\n  - {use: sitrep-rounds, as: r}\n"
    rt = make_rt(playbooks=books_with(tmp_path, {"mod.yaml": book,
                                                 "modules/sitrep-rounds.yaml": module}))
    assert rt.catalog.errors == []
    assert rt.catalog.get("mod").step("r.write").recur.until == ["r.close"]  # type: ignore[union-attr]
    run_id = lifecycle.start_run(rt, playbook_id="mod", unit_id="s1", params={},
                                 actor="s1-commander").id or 0
    tasks.complete(rt, step_id=of(rt, run_id, "r.close")[0].id or 0, actor="s1-duty")
    assert [r.status for r in of(rt, run_id, "r.write")] == ["cancelled", "cancelled"]
    assert get_run(rt, run_id).status == "completed"


@pytest.mark.parametrize("recur", [
    'recur: {at: ["25:00"], until: [close]}',
    'recur: {at: "07:00", until: [close]}',
    "recur: {every: 12hours, until: [close]}",
    'recur: {at: ["07:00"], untill: [close]}',
])
def test_a_recur_mistake_is_named_once_not_again_on_the_sending(sitrep: Runtime,
                                                                recur: str) -> None:
    """The step that failed to load names its mistake; the sending that pairs with its rounds
    is not also told it needs a for_each (the author would go and change the wrong step)."""
    said = refused(sitrep, swapped(RECUR, recur), filename="sitrep.yaml")
    assert "steps[1] (follow-up).recur" in said
    assert "item_needs" not in said


def test_a_first_round_still_due_at_the_next_time_stands_for_it(
        sitrep: Runtime, clock: ManualClock) -> None:
    """The response level set at 15:40: the first 续报 is due 16:40, which is the 17:00
    report; 16:00's round would have the duty officer write it again twenty minutes later.
    The next round is Tuesday 08:00's."""
    clock.set(shanghai(2, 15, 30))
    run_id = start(sitrep)
    clock.advance(timedelta(minutes=10))
    do(sitrep, of(sitrep, run_id, "first")[0])
    first, ahead = of(sitrep, run_id, "follow-up")
    assert (first.status, first.due_at) == ("ready", shanghai(2, 16, 40))
    assert (ahead.next_check_at, ahead.title) == (shanghai(3, 7), "续报（第2次，03-03 08:00前）")
    clock.set(shanghai(2, 16, 0))
    assert sweep(sitrep, clock).rounds_started == 0


def test_rounds_whose_until_finished_first_are_not_begun(
        make_rt: Callable[..., Runtime], tmp_path: Path, clock: ManualClock) -> None:
    """The close came before the step the rounds wait for (the response ended early): the
    续报 of an ended response is passed over, not handed out and withdrawn a moment later."""
    text = SITREP.replace("  - id: close\n    title: 处置终结\n    role: duty_officer\n"
                          "    needs: [first]\n",
                          "  - id: close\n    title: 处置终结\n    role: duty_officer\n")
    assert text != SITREP
    rt = make_rt(playbooks=books_with(tmp_path, {"sitrep.yaml": text,
                                                 "templates/send.txt.j2": TEMPLATE}))
    run_id = start(rt)
    do(rt, of(rt, run_id, "close")[0])
    do(rt, of(rt, run_id, "first")[0])
    assert [r.status for r in of(rt, run_id, "follow-up")] == ["skipped"]  # no row
    [skipped] = [e for e in run_events(rt, run_id, "skipped")
                 if e.detail["step"] == "follow-up"]
    assert skipped.detail["until"] == "close"
    with read_session(rt.db) as session:
        assert not session.exec(select(Notification).where(
            Notification.run_id == run_id,
            Notification.title.contains("续报"))).all()  # type: ignore[attr-defined]
