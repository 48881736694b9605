"""The typhoon warning signal (台风预警信号, typhoon-633's `signal`, marked `changeable`) as it
changes while the run runs: raised within a stage (橙色 → 红色 inside 橙色/红色预警) alone or
with a stage change, lowered, refused when wrong, on an ended run or to anyone but the run's
commanders; the run reads the current value, the timeline and the 防御总结 its history, and
the holders of the stage's open tasks are told on their channels. Shipped playbook, demo
district, real runtime and database; the clock is a ManualClock, moved, never slept on."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from factories import complete_answered, run_events, run_steps
from factories import run_row as get_run
from sqlmodel import select
from typhoon_demo import COMMANDER, LIUHE_URL, PLAYBOOK, typhoon_runtime

from flows import lifecycle
from flows.runtime import Runtime
from flows.segments import drain_wakes
from models.clock import ManualClock
from models.db import read_session
from models.documents import Document
from models.errors import Conflict, Forbidden, InvalidInput
from models.outbox import Notification

NAME = "山竹"


@pytest.fixture
def typhoon(tmp_path: Path, clock: ManualClock) -> Runtime:
    return typhoon_runtime(tmp_path, clock)


def start(rt: Runtime, signal: str = "黄色") -> int:
    run = lifecycle.start_run(rt, playbook_id=PLAYBOOK, unit_id="pingshan-street",
                              params={"name": NAME, "signal": signal}, actor=COMMANDER)
    return run.id or 0


def told(rt: Runtime, run_id: int) -> list[Notification]:
    with read_session(rt.db) as session:
        return list(session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.kind == "param_changed")
            .order_by(Notification.id)).all())  # type: ignore[arg-type]


def changes(rt: Runtime, run_id: int) -> list[dict[str, object]]:
    return [e.detail for e in run_events(rt, run_id, "param_changed")]


def test_raising_the_signal_within_a_stage_is_recorded_and_called_out(
        typhoon: Runtime, clock: ManualClock) -> None:
    run_id = start(typhoon, signal="橙色")
    lifecycle.set_stage(typhoon, run_id=run_id, stage="severe", actor=COMMANDER)
    before = {(s.id, s.status) for s in run_steps(typhoon, run_id)}
    clock.advance(timedelta(hours=2))

    lifecycle.change_params(typhoon, run_id=run_id, params={"signal": "红色"}, actor=COMMANDER,
                            note="气象台发布台风红色预警")

    run = get_run(typhoon, run_id)
    assert (run.params["signal"], run.stage) == ("红色", "severe")
    [event] = run_events(typhoon, run_id, "param_changed")
    assert (event.actor, event.at) == (COMMANDER, clock.now())
    told_count = event.detail.pop("told")
    assert event.detail == {
        "param": "signal", "title": "台风预警信号", "value_from": "橙色", "value_to": "红色",
        "direction": "raised", "stage": "severe", "note": "气象台发布台风红色预警"}
    # Nothing handed out or called off: the stage's tasks are as they were.
    assert {(s.id, s.status) for s in run_steps(typhoon, run_id)} == before
    # Every holder of the stage's open tasks hears once, on the channels the stage's 叫应
    # reached them by: 六和社区's head on her own channel too.
    notes = told(typhoon, run_id)
    holders = {p for s in run_steps(typhoon, run_id) if s.status == "ready"
               and s.step_key.startswith(("severe-", "transfer")) for p in s.assignees}
    assert {n.recipient for n in notes} == holders and told_count == len(holders) > 5
    liuhe = [n for n in notes if n.recipient == "liuhe-head"]
    assert {n.url for n in liuhe} == {"inbox://", LIUHE_URL}
    assert liuhe[0].title == f"【台风预警信号升级】{NAME}·坪山街道：橙色→红色"
    assert "将台风预警信号由橙色升为红色（当前阶段：橙色/红色预警）" in liuhe[0].body
    assert "【橙色/红色预警】危险区人员转移（六和社区）" in liuhe[0].body


def test_the_signal_comes_with_a_stage_change_in_one_act(typhoon: Runtime) -> None:
    run_id = start(typhoon, signal="黄色")
    lifecycle.set_stage(typhoon, run_id=run_id, stage="emergency", actor=COMMANDER)
    lifecycle.set_stage(typhoon, run_id=run_id, stage="橙色/红色预警", actor=COMMANDER,
                        params={"signal": "红色"})
    run = get_run(typhoon, run_id)
    assert (run.stage, run.params["signal"]) == ("severe", "红色")
    [staged] = [e for e in run_events(typhoon, run_id, "stage_changed") if e.to_state == "severe"]
    assert run_events(typhoon, run_id, "param_changed")[0].id > (staged.id or 0)
    assert changes(typhoon, run_id)[0]["stage"] == "severe"
    # The holders told are those of the stage entered, its tasks just handed out.
    notes = told(typhoon, run_id)
    assert notes and all("黄色→红色" in n.title for n in notes)
    assert "liuhe-head" in {n.recipient for n in notes}
    # The same value again with the next stage change is no change.
    lifecycle.set_stage(typhoon, run_id=run_id, stage="landfall", actor=COMMANDER,
                        params={"signal": "红色"})
    assert len(changes(typhoon, run_id)) == 1


def test_lowering_the_signal_is_recorded_and_told_without_touching_tasks(
        typhoon: Runtime) -> None:
    run_id = start(typhoon, signal="红色")
    lifecycle.set_stage(typhoon, run_id=run_id, stage="severe", actor=COMMANDER)
    before = {(s.id, s.status) for s in run_steps(typhoon, run_id)}
    lifecycle.change_params(typhoon, run_id=run_id, params={"signal": "橙色"}, actor=COMMANDER)
    assert get_run(typhoon, run_id).params["signal"] == "橙色"
    assert changes(typhoon, run_id)[0]["direction"] == "lowered"
    assert {(s.id, s.status) for s in run_steps(typhoon, run_id)} == before
    notes = told(typhoon, run_id)
    assert notes[0].title == f"【台风预警信号降级】{NAME}·坪山街道：红色→橙色"
    assert "你的以下任务不变，请继续落实" in notes[0].body


def test_a_wrong_change_is_refused_by_name_and_changes_nothing(
        typhoon: Runtime, clock: ManualClock) -> None:
    run_id = start(typhoon, signal="黄色")
    for params, field, said in (
            ({"signal": "紫色"}, "params.signal", "紫色"),
            ({"signal": None}, "params.signal", "新值"),
            ({"name": "海葵"}, "params.name", "不能在运行中更改"),
            ({"wind": 12}, "params.wind", "没有此参数")):
        with pytest.raises(InvalidInput) as caught:
            lifecycle.change_params(typhoon, run_id=run_id, params=params, actor=COMMANDER)
        assert caught.value.field == field
        assert said in caught.value.message
    # With a stage change, the whole act is refused: the stage stays too.
    with pytest.raises(InvalidInput) as caught:
        lifecycle.set_stage(typhoon, run_id=run_id, stage="severe", actor=COMMANDER,
                            params={"signal": "紫色"})
    assert caught.value.field == "params.signal"
    run = get_run(typhoon, run_id)
    assert (run.stage, run.params["signal"]) == ("message", "黄色")
    assert "severe-street" not in {s.step_key for s in run_steps(typhoon, run_id)}
    assert changes(typhoon, run_id) == [] and told(typhoon, run_id) == []
    # The value it has already: a second tap is a 409, not a second message.
    with pytest.raises(Conflict):
        lifecycle.change_params(typhoon, run_id=run_id, params={"signal": "黄色"},
                                actor=COMMANDER)


def test_only_the_runs_commanders_change_it_and_only_while_it_runs(typhoon: Runtime) -> None:
    run_id = start(typhoon)
    for person in ("liuhe-head", "maluan-commander"):  # a community head; another street
        with pytest.raises(Forbidden):
            lifecycle.change_params(typhoon, run_id=run_id, params={"signal": "橙色"},
                                    actor=person)
    lifecycle.change_params(typhoon, run_id=run_id, params={"signal": "橙色"},
                            actor="wang-qiang")  # the district's commander, above the street
    lifecycle.cancel_run(typhoon, run_id=run_id, actor=COMMANDER, reason="演示")
    with pytest.raises(Conflict):
        lifecycle.change_params(typhoon, run_id=run_id, params={"signal": "红色"},
                                actor=COMMANDER)
    assert get_run(typhoon, run_id).params["signal"] == "橙色"


def test_the_summary_lists_the_signal_as_it_changed(typhoon: Runtime,
                                                    clock: ManualClock) -> None:
    run_id = start(typhoon, signal="蓝色")
    clock.advance(timedelta(hours=3))
    lifecycle.change_params(typhoon, run_id=run_id, params={"signal": "黄色"}, actor=COMMANDER)
    clock.advance(timedelta(hours=3))
    lifecycle.set_stage(typhoon, run_id=run_id, stage="severe", actor=COMMANDER,
                        params={"signal": "红色"})
    for row in run_steps(typhoon, run_id):
        if row.step_key == "transfer":
            complete_answered(typhoon, row)
    lifecycle.set_stage(typhoon, run_id=run_id, stage="recovery", actor=COMMANDER)
    for key in ("return", "recovery-street", "recovery-community", "recovery-public"):
        for row in run_steps(typhoon, run_id):
            if row.step_key == key and row.status in ("ready", "acked"):
                complete_answered(typhoon, row)
    drain_wakes(typhoon)
    with read_session(typhoon.db) as session:
        [summary] = session.exec(select(Document).where(Document.run_id == run_id,
                                                        Document.template ==
                                                        "typhoon-summary.md.j2")).all()
    start_local = typhoon.renderer.local(get_run(typhoon, run_id).started_at)
    yellow = typhoon.renderer.local(clock.now() - timedelta(hours=3))
    red = typhoon.renderer.local(clock.now())
    assert (f"**台风预警信号**：红色（先后：蓝色（启动时） → 黄色（{yellow}，胡红霞记录） → "
            f"红色（{red}，胡红霞记录））") in summary.body, summary.body[:600]
    assert start_local  # the run started before the first change
