"""People moved out of a typhoon's danger zones are followed up until every one is home
(typhoon-633's `shelter-followup`, the engine's `follow_up`): a community whose return at 解除
leaves people in the shelter is asked every day at 09:00 how many came back since and how
many remain, each round adding up against the one before; a late round goes to the street
head; the loop closes at 0 with the 转移人员全部返回销号, and the response cannot be ended while
anyone is still followed up. A community whose people all came back is asked nothing. Real
runtime and database; the clock is a ManualClock, moved, never slept on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from factories import complete_answered
from factories import run_row as get_run
from sqlmodel import select
from typhoon_demo import at, escalations, keyed, sweep_at

from flows import lifecycle
from flows.loader import LoadContext, load_playbook_text
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.documents import Document
from models.errors import Conflict, InvalidInput, PlaybookInvalid
from models.outbox import Notification
from models.task import StepInstance

COMMANDER = "maluan-commander"  # 郝家豪, 马峦街道
PARAMS: dict[str, Any] = {"name": "海葵（2311）"}
MOVED = {"maluan-community": 12, "jiangling": 4, "pinghuan": 4}


def follow(rt: Runtime, run_id: int, unit: str = "maluan-community") -> list[StepInstance]:
    return [r for r in keyed(rt, run_id).get("shelter-followup", []) if r.unit_id == unit]


def to_return(rt: Runtime, clock: ManualClock) -> int:
    """马峦街道's typhoon moved to 解除 at 03-02 09:00, every transfer recorded, every
    recovery measure in; the returns are left to the test."""
    run = lifecycle.start_run(rt, playbook_id="typhoon-633", unit_id="maluan", params=PARAMS,
                              actor=COMMANDER)
    run_id = run.id or 0
    lifecycle.set_stage(rt, run_id=run_id, stage="severe", actor=COMMANDER)
    for row in keyed(rt, run_id)["transfer"]:
        complete_answered(rt, row, people=MOVED[row.unit_id], from_where="低洼地段",
                          mover="网格员", shelter="社区服务中心", management="专人值守")
    lifecycle.set_stage(rt, run_id=run_id, stage="recovery", actor=COMMANDER)
    for key in ("recovery-street", "recovery-community", "recovery-public"):
        for row in keyed(rt, run_id)[key]:
            complete_answered(rt, row)
    return run_id


def record_returns(rt: Runtime, run_id: int, **remaining: int) -> None:
    for row in keyed(rt, run_id)["return"]:
        left = remaining.get(row.unit_id.replace("-", "_"), 0)
        care = {"remaining_care": "房屋受损，在社区服务中心过渡安置"} if left else {}
        complete_answered(rt, row, returned=MOVED[row.unit_id] - left, remaining=left, **care)
    drain_wakes(rt)


def test_people_still_sheltered_are_asked_daily_until_none_remain(
        demo: Runtime, clock: ManualClock) -> None:
    run_id = to_return(demo, clock)
    record_returns(demo, run_id, maluan_community=8)  # 4 home, 8 still in the shelter

    # Only 马峦社区 is followed up; the others brought everyone home at the return.
    rows = keyed(demo, run_id)["shelter-followup"]
    assert {r.unit_id: r.status for r in rows} == {
        "maluan-community": "pending", "jiangling": "skipped", "pinghuan": "skipped"}
    # The 防御总结 is filed now, with the 8 still away; the run goes on for them.
    assert [r.status for r in keyed(demo, run_id)["summary"]] == ["done"]
    assert "return-closure" not in keyed(demo, run_id)
    with read_session(demo.db) as session:
        summary = session.exec(select(Document.body).where(Document.run_id == run_id)).one()
    assert "合计已返回 12 人，仍在安置 8 人。仍在安置的人员由所在社区每日跟踪" in summary
    assert "| 马峦社区 | 0 次 | 0 人 | 0 人 | 8 人 |" in summary

    # Round 1: written ahead for the next morning's 09:00, whose it will be, what it asks.
    [first] = follow(demo, run_id)
    assert first.next_check_at == at("2026-03-03T09:00:00")
    assert first.assignees == ["maluan-community-head"] and first.due_at is None
    assert first.title == ("【解除与灾后恢复】安置人员返回跟踪（马峦社区，第1次，03-03 17:00前，"
                           "上次仍在安置 8 人）")
    # Nobody ends the response while the 8 are away: the commander is told who and where.
    with pytest.raises(Conflict) as refused:
        lifecycle.end_response(demo, run_id=run_id, actor=COMMANDER)
    assert ("“【解除与灾后恢复】安置人员返回跟踪”尚未结束：马峦社区，第1次，03-03 17:00前，上次仍在"
            "安置 8 人。人员全部返回、跟踪闭环前不能结束响应") in str(refused.value)

    clock.set(at("2026-03-03T09:00:30"))
    sweep_once(demo)
    [first] = follow(demo, run_id)
    assert first.status == "ready" and first.due_at == at("2026-03-03T17:00:00")
    assert [n.title for n in _notes(demo, first.id)] == [
        f"【新任务】{first.title}·海葵（2311）·马峦街道"]

    # A round that does not add up against the one before is refused by name, in Chinese,
    # and nothing changes.
    with pytest.raises(InvalidInput) as bad:
        complete_answered(demo, first, returned=3, remaining=4)
    assert bad.value.field == "outputs.returned"
    assert str(bad.value) == (
        "outputs.returned: 本次返回 3 人、移交 0 人与仍在安置 4 人之和应等于上次填报的仍在安置 "
        "8 人，请核实后填报 / people returned since, handed over and still sheltered must add "
        "up to the 8 people still sheltered at the last report")
    assert follow(demo, run_id)[0].status == "ready"
    clock.set(at("2026-03-03T15:00:00"))
    complete_answered(demo, first, returned=3, remaining=5,
                      remaining_care="5人房屋受损，在社区服务中心过渡安置")
    drain_wakes(demo)

    # Round 2 the next day; left undone past 17:00, the street head and commander hear of it.
    second = follow(demo, run_id)[1]
    assert second.next_check_at == at("2026-03-04T09:00:00")
    assert second.title.endswith("（马峦社区，第2次，03-04 17:00前，上次仍在安置 5 人）")
    sweep_at(demo, clock, "2026-03-04T09:00:10", "2026-03-04T17:00:10")
    second = follow(demo, run_id)[1]
    assert second.status == "ready" and second.overdue
    assert escalations(demo, second.id) == [(1, ["maluan-commander", "maluan-head"])]
    clock.set(at("2026-03-05T08:00:00"))  # handed in late, the next morning
    complete_answered(demo, second, returned=2, remaining=3)
    drain_wakes(demo)
    assert get_run(demo, run_id).status == "running"

    # Round 3 is the day after it was handed in; the last 3 come home and the loop closes.
    third = follow(demo, run_id)[2]
    assert third.next_check_at == at("2026-03-06T09:00:00")
    clock.set(at("2026-03-06T09:00:05"))
    sweep_once(demo)
    clock.set(at("2026-03-06T10:00:00"))
    complete_answered(demo, follow(demo, run_id)[2], returned=3, remaining=0,
                      returned_at="2026-03-06T09:30:00+08:00")
    drain_wakes(demo)
    assert [r.status for r in follow(demo, run_id)] == ["done", "done", "done"]
    assert [r.status for r in keyed(demo, run_id)["return-closure"]] == ["done"]
    # Everyone home: the commander ends the response (earlier stages' measures still owed
    # are called off with it, as before).
    lifecycle.end_response(demo, run_id=run_id, actor=COMMANDER)
    assert get_run(demo, run_id).status == "completed"

    with read_session(demo.db) as session:
        closure = session.exec(select(Document).where(
            Document.run_id == run_id, Document.title == "转移人员全部返回销号")).one()
    body = closure.body
    assert body.startswith("# 海葵（2311）台风转移人员全部返回销号")
    assert ("| 马峦社区 | 12 人 | 4 人 | 8 人 | 8 人 | 0 人 | 3 次 | 2026-03-06 09:30 |") in body
    assert "| 江岭社区 | 4 人 | 4 人 | 0 人 | 0 人 | 0 人 | 0 次 |" in body
    assert ("合计转移 20 人：解除时返回 12 人，其后经跟踪返回 8 人，移交过渡安置 0 人，"
            "仍在安置 0 人。") in body
    assert "移交情况" not in body
    assert ("| 马峦社区 | 第2次 | 2026-03-05 08:00 | 2 人 | 0 人 | 3 人 | — | 冯明辉 |") in body
    assert "本次台风转移的 20 人已全部返回，危险区人员转移闭环，予以销号。" in body
    assert "人数不符" not in body


def test_when_everyone_came_back_at_the_return_nobody_is_followed_up(
        demo: Runtime, clock: ManualClock) -> None:
    run_id = to_return(demo, clock)
    record_returns(demo, run_id)
    assert {r.status for r in keyed(demo, run_id)["shelter-followup"]} == {"skipped"}
    assert [r.status for r in keyed(demo, run_id)["return-closure"]] == ["done"]
    with read_session(demo.db) as session:
        body = session.exec(select(Document.body).where(
            Document.run_id == run_id, Document.title == "转移人员全部返回销号")).one()
    assert "解除时转移人员已全部返回，无需跟踪。" in body
    lifecycle.end_response(demo, run_id=run_id, actor=COMMANDER)
    assert get_run(demo, run_id).status == "completed"


def test_people_whose_homes_are_lost_are_handed_over_and_the_loop_closes(
        demo: Runtime, clock: ManualClock) -> None:
    """Three families' houses are gone: months in transitional housing are civil affairs'
    (民政) to manage, not a daily question of the emergency response. Handed over by name of
    who took them, they close the loop; handed over to nobody is refused."""
    run_id = to_return(demo, clock)
    record_returns(demo, run_id, maluan_community=8)
    clock.set(at("2026-03-03T09:00:30"))
    sweep_once(demo)
    [first] = follow(demo, run_id)
    with pytest.raises(InvalidInput) as nobody:
        complete_answered(demo, first, returned=5, remaining=0, handed_over=3)
    assert nobody.value.field == "outputs.handed_to"
    assert str(nobody.value).startswith(
        "outputs.handed_to: 移交过渡安置的人员须写明接收单位及联系人")
    clock.set(at("2026-03-03T15:00:00"))
    complete_answered(demo, first, returned=5, remaining=0, handed_over=3,
                      handed_to="坪山区民政局救助科 李科长 0755-8000000")
    drain_wakes(demo)
    assert [r.status for r in follow(demo, run_id)] == ["done"]  # no second round
    assert [r.status for r in keyed(demo, run_id)["return-closure"]] == ["done"]
    with read_session(demo.db) as session:
        body = session.exec(select(Document.body).where(
            Document.run_id == run_id, Document.title == "转移人员全部返回销号")).one()
    assert "| 马峦社区 | 12 人 | 4 人 | 8 人 | 5 人 | 3 人 | 1 次 |" in body
    assert ("合计转移 20 人：解除时返回 12 人，其后经跟踪返回 5 人，移交过渡安置 3 人，"
            "仍在安置 0 人。") in body
    assert "移交情况：马峦社区 3 人移交坪山区民政局救助科 李科长 0755-8000000。" in body
    assert ("转移的 20 人中 17 人已全部返回、3 人已移交过渡安置，危险区人员转移闭环，"
            "予以销号。") in body
    assert "人数不符" not in body
    lifecycle.end_response(demo, run_id=run_id, actor=COMMANDER)
    assert get_run(demo, run_id).status == "completed"


def test_a_round_handed_out_is_the_task_page_s_running_count(
        demo: Runtime, clock: ManualClock) -> None:
    """The task a community head opens says which round it is, by when, and the count it is
    answered against: the title is what the inbox, the run page and the task page show."""
    run_id = to_return(demo, clock)
    record_returns(demo, run_id, maluan_community=8, pinghuan=1)
    clock.set(at("2026-03-03T09:01:00"))
    sweep_once(demo)
    rows = {r.unit_id: r for r in keyed(demo, run_id)["shelter-followup"]}
    assert rows["pinghuan"].title.endswith("（坪环社区，第1次，03-03 17:00前，上次仍在安置 1 人）")
    assert rows["pinghuan"].status == "ready" and rows["jiangling"].status == "skipped"


def _notes(rt: Runtime, step_id: int | None) -> list[Notification]:
    with read_session(rt.db) as session:
        return list(session.exec(select(Notification).where(
            Notification.step_id == step_id, Notification.kind == "assigned")).all())


# --- checked at load ------------------------------------------------------------------------

STORM = """id: storm
version: 1
title: 台风
kind: typhoon
stages: [severe, recovery]
steps:
  - id: back
    title: 返回
    role: community_head
    stage: recovery
    for_each: "units(type='community', within=run.unit)"
    outputs:
      remaining: {type: int, min: 0, required: true}
  - id: track
    title: 跟踪
    role: community_head
    stage: recovery
    needs: [back]
    item_needs: [back]
    for_each: "units(type='community', within=run.unit)"
    follow_up: {at: "09:00", while: "previous.outputs.remaining > 0"}
    due: {after: 8h}
    outputs:
      remaining: {type: int, min: 0, required: true}
"""


def _errors(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook_text(text, filename="storm.yaml", context=LoadContext(
            tmp_path, known_roles={"community_head"}, known_channels=set(),
            known_playbooks={"storm"}))
    return [str(e) for e in caught.value.errors]


def test_follow_up_loads_and_its_mistakes_are_refused_at_their_line(tmp_path: Path) -> None:
    playbook = load_playbook_text(STORM, filename="storm.yaml", context=LoadContext(
        tmp_path, known_roles={"community_head"}, known_channels=set(),
        known_playbooks={"storm"}))
    assert playbook.step("track").follow_up is not None
    # An output the record before does not have: every round would read nothing.
    assert _errors(STORM.replace("previous.outputs.remaining > 0",
                                 "previous.outputs.remain > 0"), tmp_path) == [
        "storm.yaml:21:37: steps[1] (track).follow_up.while: 没有本步骤的填报项（previous.outputs"
        "） "
        "remain（可选：remaining） / unknown output of this step (previous.outputs) 'remain' "
        "(known: remaining)",
        "storm.yaml:21:37: steps[1] (track).follow_up.while: 没有步骤 back 的填报项（previous.outp"
        "uts） "
        "remain（可选：remaining） / unknown output of step 'back' (previous.outputs) 'remain' "
        "(known: remaining)"]
    # Without a fan-out, and counted from the stage: each named at its key.
    errors = _errors(STORM.replace('    for_each: "units(type=\'community\', within=run.unit)"\n'
                                   '    follow_up', "    follow_up")
                     .replace("due: {after: 8h}", "due: {after: 8h, from: stage}"), tmp_path)
    assert any("steps[1] (track).follow_up: follow_up 逐项跟踪，须配合 for_each" in e
               for e in errors)
    assert any("steps[1] (track).due.from: 逐项跟踪的每一轮时限从该轮下达起算" in e for e in errors)
    # `previous` on a step that is not followed up.
    errors = _errors(STORM.replace("      remaining: {type: int, min: 0, required: true}\n  - id",
                                   "      remaining: {type: int, min: 0, required: true}\n"
                                   "    checks: [{expr: 'previous.outputs.remaining == 0',"
                                   " message: 不符}]\n"
                                   "  - id", 1), tmp_path)
    assert errors == [
        "storm.yaml:14:21: steps[0] (back).checks[0].expr: previous（上一次填报）只用于逐项跟踪"
        "（follow_up）的步骤 / 'previous' (the record before) is only known on a step with "
        "'follow_up'"]


# Rounds at an interval, ending at a later stage: a typhoon's 应转未转 chased hourly until 解除
# (typhoon-633's transfer-followup, tests/flows/test_typhoon_unmoved_followup.py).
CHASE_STORM = """id: storm
version: 1
title: 台风
kind: typhoon
stages: [severe, recovery]
steps:
  - id: move
    title: 转移
    role: community_head
    stage: severe
    for_each: "units(type='community', within=run.unit)"
    outputs:
      not_moved: {type: int, min: 0, required: true}
  - id: chase
    title: 跟踪
    role: community_head
    stage: severe
    needs: [move]
    item_needs: [move]
    for_each: "units(type='community', within=run.unit)"
    follow_up: {every: 1h, while: "previous.outputs.not_moved > 0", until_stage: recovery}
    due: {after: 30m}
    outputs:
      not_moved: {type: int, min: 0, required: true}
"""


def test_an_interval_follow_up_loads_and_its_mistakes_are_refused_at_their_line(
        tmp_path: Path) -> None:
    playbook = load_playbook_text(CHASE_STORM, filename="storm.yaml", context=LoadContext(
        tmp_path, known_roles={"community_head"}, known_channels=set(),
        known_playbooks={"storm"}))
    follow_up = playbook.step("chase").follow_up
    assert follow_up is not None and follow_up.every is not None
    assert follow_up.at is None and follow_up.until_stage == "recovery"
    assert _errors(CHASE_STORM.replace("every: 1h", 'every: 1h, at: "09:00"'), tmp_path) == [
        "storm.yaml:21:16: steps[1] (chase).follow_up: follow_up 须写 at（每天几点，如 \"09:00\"）"
        "或 every"
        "（间隔，如 1h）二者之一 / 'follow_up' needs exactly one of 'at' (a time of day, e.g. "
        "\"09:00\") and 'every' (e.g. 1h)"]
    assert _errors(CHASE_STORM.replace("every: 1h", "every: 5m"), tmp_path) == [
        "storm.yaml:21:24: steps[1] (chase).follow_up.every: follow_up.every 至少 10m（收到 5m） / "
        "'follow_up.every' is at least 10m (got 5m)"]
    assert _errors(CHASE_STORM.replace("until_stage: recovery", "until_stage: recovry"),
                   tmp_path) == [
        "storm.yaml:21:82: steps[1] (chase).follow_up.until_stage: 没有阶段 recovry（可选：severe、"
        "recovery） / unknown stage 'recovry' (known: severe, recovery)"]
    assert _errors(CHASE_STORM.replace("until_stage: recovery}", "until_stage: recovery, "
                                       "state: [refusd]}"), tmp_path) == [
        "storm.yaml:21:100: steps[1] (chase).follow_up.state[0]: 没有填报项 refusd（可选："
        "not_moved） / "
        "unknown output 'refusd' (known: not_moved)"]
    assert _errors(CHASE_STORM.replace("until_stage: recovery", "until_stage: severe"),
                   tmp_path) == [
        "storm.yaml:21:82: steps[1] (chase).follow_up.until_stage: until_stage 须是本步骤阶段 seve"
        "re 之后的"
        "阶段，收到 severe / 'until_stage' must be a stage after the step's own 'severe', got "
        "'severe'"]


ALERT = """    alert:
      when: "outputs.not_moved > 0"
      to: [community_head]
      title: 应转未转人员
      message: "{{ item.name }}仍有 {{ outputs.not_moved }} 人未转移"
"""


def test_an_alert_loads_and_its_mistakes_are_refused_at_their_line(tmp_path: Path) -> None:
    """`alert` (tell at once when a hand-in calls for it): its roles, its expression and its
    message are checked at load, each at its line."""
    text = CHASE_STORM.replace("      not_moved: {type: int, min: 0, required: true}\n  - id",
                               "      not_moved: {type: int, min: 0, required: true}\n"
                               + ALERT + "  - id", 1)
    playbook = load_playbook_text(text, filename="storm.yaml", context=LoadContext(
        tmp_path, known_roles={"community_head"}, known_channels=set(),
        known_playbooks={"storm"}))
    alert = playbook.step("move").alert
    assert alert is not None and alert.to == ["community_head"]
    assert _errors(text.replace("to: [community_head]", "to: [street_haed]"), tmp_path) == [
        "storm.yaml:16:12: steps[0] (move).alert.to[0]: 没有角色或通道 street_haed（角色："
        "community_head；通道：无） / unknown role or channel 'street_haed' (roles: "
        "community_head; channels: none)"]
    assert _errors(text.replace("outputs.not_moved > 0", "outputs.not_moved >"), tmp_path)[0] \
        .startswith("storm.yaml:15:13: steps[0] (move).alert.when: ")
    assert _errors(text.replace("      title: 应转未转人员\n", ""), tmp_path) == [
        "storm.yaml:15:7: steps[0] (move).alert.title: 缺少必填字段 title / "
        "missing required key 'title'"]
    assert _errors(text.replace("role: community_head\n    stage: severe\n    for_each",
                                "action: notify\n    template: x.md.j2\n    to: [community_head]"
                                "\n    stage: severe\n    for_each", 1), tmp_path)[-1:] == [
        "storm.yaml:17:7: steps[0] (move).alert: alert（填报即通知）用于由人填报的任务步骤，这里是 "
        "action: notify / 'alert' is for task steps a person hands in, not notify"]


@pytest.mark.parametrize("handed_out", [False, True], ids=["written-ahead", "handed-out"])
def test_a_round_called_off_by_going_back_comes_again_as_a_round(
        demo: Runtime, clock: ManualClock, handed_out: bool) -> None:
    """The storm turns back after 解除 (→ 台风登陆, everything called off) and 解除 comes again:
    the community's called-off round comes back as the round it was, counted and titled
    against the record it follows (第1次，上次仍在安置 8 人), at the next 09:00, not at once
    under the step's bare title."""
    run_id = to_return(demo, clock)
    record_returns(demo, run_id, maluan_community=8)
    if handed_out:  # the round had gone out at its 09:00 and was open when called off
        clock.set(at("2026-03-03T09:00:30"))
        sweep_once(demo)
        assert [r.status for r in follow(demo, run_id)] == ["ready"]
    clock.set(at("2026-03-03T10:00:00"))
    lifecycle.set_stage(demo, run_id=run_id, stage="landfall", actor=COMMANDER,
                        call_off_all=True, note="台风回旋")
    assert [r.status for r in follow(demo, run_id)] == ["cancelled"]
    clock.set(at("2026-03-03T14:00:00"))
    lifecycle.set_stage(demo, run_id=run_id, stage="recovery", actor=COMMANDER)
    drain_wakes(demo)
    called, again = follow(demo, run_id)
    assert again.rehanded_from == called.id
    assert (again.status, again.due_at, again.next_check_at) == (
        "pending", None, at("2026-03-04T09:00:00"))
    assert again.item["round"] == 1
    assert again.title == ("【解除与灾后恢复】安置人员返回跟踪（马峦社区，第1次，03-04 17:00前，"
                           "上次仍在安置 8 人）")
    clock.set(at("2026-03-04T09:00:30"))
    sweep_once(demo)
    [again] = follow(demo, run_id)[1:]
    assert again.status == "ready" and again.due_at == at("2026-03-04T17:00:00")
    complete_answered(demo, again, returned=8, remaining=0)
    drain_wakes(demo)
    assert [r.status for r in follow(demo, run_id)] == ["cancelled", "done"]
