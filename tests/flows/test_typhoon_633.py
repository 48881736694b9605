"""The shipped 台风633 playbook (playbooks/typhoon-633.yaml) on the shipped demo district 坪山区
(playbooks/org/demo-district.yaml): six stages on the warning ladder, each titled in Chinese,
each with the street's (乡级), the community's (村级) and the public's (群众) three measures;
a stage change fanning tasks out to every street and every community under the run's unit, to
the people the org chart names; an unanswered 叫应 chased once, at its 30-minute deadline, to
the level above; a transfer recorded per community (何时转、要转谁、人在哪、谁去转、转到哪、
怎么管), the returns at 解除, and the 防御总结 that lists them. Real runtime, real database;
segments run bare (drain_wakes); the clock is a ManualClock, moved, never slept on."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from factories import complete_answered, run_steps
from factories import run_row as get_run
from sqlmodel import select

from flows import lifecycle, tasks
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.spec import StepSpec
from flows.sweeper import sweep_once
from models.audit import AuditEvent
from models.clock import ManualClock
from models.db import read_session
from models.documents import Document
from models.errors import Conflict, Forbidden, InvalidInput
from models.escalation import Escalation
from models.outbox import Notification
from models.run import Run
from models.task import StepInstance

PLAYBOOK = "typhoon-633"
COMMANDER = "wang-qiang"  # 王强, the district's commander
STREET_COMMANDER = "pingshan-street-commander"  # 胡红霞, 坪山街道
STAGES = ["message", "warning", "emergency", "severe", "landfall", "recovery"]
PARAMS: dict[str, Any] = {
    "name": "山竹（1822）",
    "landfall": "2026-03-03T14:00:00+08:00",
    "signal": "蓝色",
    "areas": ["六和社区低洼地段", "东门社区在建工地"],
}
# Where each level's steps go, and who does them.
LEVELS = {"street": ("street", "street_head"), "community": ("community", "community_head"),
          "public": ("community", "grid_worker")}
# The demo district's ids (the org file's header): <unit>-head holds the street_head or the
# community_head role, <community>-grid is the community's grid worker.
HOLDER = {"street_head": "head", "community_head": "head", "grid_worker": "grid"}
CJK = re.compile(r"[\u4e00-\u9fff]")


def start(rt: Runtime, unit: str = "pingshan", actor: str = COMMANDER) -> int:
    run = lifecycle.start_run(rt, playbook_id=PLAYBOOK, unit_id=unit, params=PARAMS,
                              actor=actor)
    return run.id or 0


def rows(rt: Runtime, run_id: int) -> dict[str, list[StepInstance]]:
    """The run's step instances by step key, fan-out items in item order."""
    out: dict[str, list[StepInstance]] = {}
    for row in run_steps(rt, run_id):
        out.setdefault(row.step_key, []).append(row)
    return out


def spec(rt: Runtime, key: str) -> StepSpec:
    return rt.catalog.get(PLAYBOOK).step(key)


def units(rt: Runtime, kind: str, within: str = "pingshan") -> list[str]:
    return [u.id for u in rt.org.units_where(type=kind, within=within)]


def holder(unit: str, role: str) -> str:
    return f"{unit}-{HOLDER[role]}"


def finish(rt: Runtime, row: StepInstance, **given: Any) -> StepInstance:
    """The row's assignee completes it: every measure done, counts and text in Chinese, a
    photo of their own when the step wants one."""
    return complete_answered(rt, row, **given)


def finish_all(rt: Runtime, run_id: int, key: str) -> None:
    for row in rows(rt, run_id)[key]:
        if row.status in ("ready", "acked"):
            finish(rt, row)


def task_notes(rt: Runtime, step_id: int | None) -> list[Notification]:
    with read_session(rt.db) as session:
        return list(session.exec(select(Notification).where(
            Notification.step_id == step_id)).all())


def ack_escalations(rt: Runtime, run_id: int) -> list[Escalation]:
    with read_session(rt.db) as session:
        return list(session.exec(select(Escalation).where(
            Escalation.run_id == run_id, Escalation.kind == "ack")
            .order_by(Escalation.id)).all())  # type: ignore[arg-type]


# --- the playbook -------------------------------------------------------------------------------

def test_the_shipped_playbook_loads_with_six_stages_each_titled_in_chinese(demo: Runtime) -> None:
    assert demo.catalog.errors == []
    playbook = demo.catalog.get(PLAYBOOK)
    assert playbook.kind == "typhoon" and playbook.params["name"].required
    assert playbook.stages == STAGES
    assert set(playbook.stage_titles) == set(STAGES)
    assert all(CJK.search(playbook.stage_title(s) or "") for s in STAGES)
    assert playbook.stage_title("message") == "台风消息"
    assert playbook.stage_title("recovery") == "解除与灾后恢复"
    assert 15 <= len(playbook.steps) <= 25


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_gives_each_of_the_three_levels_three_measures(
        demo: Runtime, stage: str) -> None:
    playbook = demo.catalog.get(PLAYBOOK)
    for level, (unit_type, role) in LEVELS.items():
        step = playbook.step(f"{stage}-{level}")
        assert step.stage == stage and step.role == role
        assert step.for_each == f"units(type='{unit_type}', within=run.unit)"
        # The three measures: three yes/no answers, each titled ①, ② and ③.
        measures = [o.title or "" for o in step.outputs.values() if o.type == "bool"]
        assert [m[0] for m in measures] == ["①", "②", "③"], step.id
        assert all(o.required for o in step.outputs.values() if o.type == "bool")
        assert step.title.startswith("【") and step.due is not None
        assert step.due.from_ == "stage" and step.escalate
        # 叫应: the street's and the community's heads answer within 30 minutes.
        if level != "public":
            assert step.ack is not None and step.ack.seconds() == 30 * 60


def test_deadlines_tighten_as_the_typhoon_nears(demo: Runtime) -> None:
    hours = {stage: [spec(demo, f"{stage}-{level}").due.after.seconds() / 3600  # type: ignore[union-attr]
                     for level in LEVELS] for stage in STAGES}
    assert hours["warning"] == [4, 6, 12]  # 台风警报: 48 h ahead
    assert hours["emergency"] == [2, 4, 6]  # 紧急警报: 24 h ahead
    assert hours["severe"] == [1, 2, 3]  # orange 12 h, red 6 h ahead
    for before, after in zip(STAGES[:4], STAGES[1:5], strict=True):
        assert all(a <= b for a, b in zip(hours[after], hours[before], strict=True))
    transfer = spec(demo, "transfer")
    assert transfer.stage == "severe" and transfer.due.after.seconds() == 6 * 3600  # type: ignore[union-attr]
    # Each community's return waits for its own transfer and its 应转未转 rounds (version 3).
    assert spec(demo, "return").needs == ["transfer", "transfer-followup"]
    assert spec(demo, "return").item_needs == ["transfer", "transfer-followup"]
    chase = spec(demo, "transfer-followup")
    assert chase.stage == "severe" and chase.follow_up is not None
    assert chase.follow_up.every is not None and chase.follow_up.every.seconds() == 3600
    assert chase.due is not None and chase.due.after.seconds() == 30 * 60


# --- fanning out ----------------------------------------------------------------------------------

def test_started_at_the_district_the_first_stage_goes_to_every_street_and_community(
        demo: Runtime, clock: ManualClock) -> None:
    streets, communities = units(demo, "street"), units(demo, "community")
    assert len(streets) == 6 and len(communities) == 23  # the demo district (seeds/004)
    run_id = start(demo)
    run = get_run(demo, run_id)
    assert run.stage == "message" and run.unit_id == "pingshan"
    keyed = rows(demo, run_id)
    assert set(keyed) == {"message-street", "message-community", "message-public"}
    for key, unit_type, role in [("message-street", "street", "street_head"),
                                 ("message-community", "community", "community_head"),
                                 ("message-public", "community", "grid_worker")]:
        got = keyed[key]
        assert [r.unit_id for r in got] == units(demo, unit_type)
        assert [r.assignees for r in got] == [[holder(u, role)] for u in units(demo, unit_type)]
        assert {r.status for r in got} == {"ready"}
    maluan = keyed["message-street"][1]
    assert maluan.title == "【台风消息】街道落实三项防御措施（马峦街道）"
    assert demo.org.people[maluan.assignees[0]].name == "白少华"
    liuhe = keyed["message-community"][0]
    assert liuhe.title.endswith("（六和社区）") and liuhe.assignees == ["liuhe-head"]
    assert demo.org.people["liuhe-head"].name == "贾丽萍"
    # Deadlines counted from entering the stage: street 6 h, community 12 h, public 24 h.
    assert {r.due_at for r in keyed["message-street"]} == {clock.now() + timedelta(hours=6)}
    assert {r.due_at for r in keyed["message-community"]} == {clock.now() + timedelta(hours=12)}
    assert {r.due_at for r in keyed["message-public"]} == {clock.now() + timedelta(hours=24)}
    # Each of them finds the task in their inbox.
    with read_session(demo.db) as session:
        told = session.exec(select(Notification.recipient).where(
            Notification.run_id == run_id, Notification.kind == "assigned")).all()
    assert sorted(told) == sorted([holder(u, "street_head") for u in streets]
                                  + [holder(u, r) for u in communities
                                     for r in ("community_head", "grid_worker")])


def test_entering_a_stage_fans_its_tasks_out_to_every_street_and_community(
        demo: Runtime, clock: ManualClock) -> None:
    run_id = start(demo)
    clock.advance(timedelta(hours=20))
    with pytest.raises(Forbidden):  # a street's commander does not stage the district's run
        lifecycle.set_stage(demo, run_id=run_id, stage="warning", actor=STREET_COMMANDER)
    lifecycle.set_stage(demo, run_id=run_id, stage="warning", actor=COMMANDER)
    entered = clock.now()
    keyed = rows(demo, run_id)
    streets, communities = units(demo, "street"), units(demo, "community")
    assert [r.unit_id for r in keyed["warning-street"]] == streets
    assert [r.assignees for r in keyed["warning-street"]] == [[f"{s}-head"] for s in streets]
    assert [r.assignees for r in keyed["warning-community"]] == \
        [[f"{c}-head"] for c in communities]
    assert [r.assignees for r in keyed["warning-public"]] == [[f"{c}-grid"] for c in communities]
    assert {r.due_at for r in keyed["warning-community"]} == {entered + timedelta(hours=6)}
    assert not any(k.startswith(("emergency-", "severe-")) for k in keyed)
    assert "transfer" not in keyed

    # Straight to 橙色/红色预警: the 紧急警报 measures skipped over are handed out too, and
    # every community is told to move the people of its danger zones.
    lifecycle.set_stage(demo, run_id=run_id, stage="severe", actor=COMMANDER)
    keyed = rows(demo, run_id)
    for key in ("emergency-street", "severe-street"):
        assert len(keyed[key]) == 6
    for key in ("emergency-community", "emergency-public", "severe-community", "severe-public",
                "transfer"):
        assert len(keyed[key]) == 23
    assert [r.assignees for r in keyed["transfer"]] == [[f"{c}-head"] for c in communities]
    assert {r.due_at for r in keyed["transfer"]} == {clock.now() + timedelta(hours=6)}
    assert get_run(demo, run_id).stage == "severe"


def test_started_at_one_street_only_its_communities_get_tasks(
        demo: Runtime, clock: ManualClock) -> None:
    with pytest.raises(Forbidden):  # the street's commander commands her own street only
        lifecycle.start_run(demo, playbook_id=PLAYBOOK, unit_id="pingshan", params=PARAMS,
                            actor="maluan-commander")
    run_id = start(demo, unit="maluan", actor="maluan-commander")
    lifecycle.set_stage(demo, run_id=run_id, stage="warning", actor="maluan-commander")
    keyed = rows(demo, run_id)
    ours = ["maluan-community", "jiangling", "pinghuan"]
    assert units(demo, "community", "maluan") == ours
    for stage in ("message", "warning"):
        assert [r.assignees for r in keyed[f"{stage}-street"]] == [["maluan-head"]]
        assert [r.unit_id for r in keyed[f"{stage}-community"]] == ours
        assert [r.assignees for r in keyed[f"{stage}-public"]] == [[f"{c}-grid"] for c in ours]
    everyone = {p for rs in keyed.values() for r in rs for p in r.assignees}
    assert everyone == {"maluan-head", *(f"{c}-{k}" for c in ours for k in ("head", "grid"))}
    with read_session(demo.db) as session:
        told = set(session.exec(select(Notification.recipient).where(
            Notification.run_id == run_id)).all())
    assert told == everyone  # nobody of another street hears of it


# --- 叫应 ----------------------------------------------------------------------------------------

def test_an_unanswered_call_is_chased_once_at_thirty_minutes_to_the_level_above(
        demo: Runtime, clock: ManualClock) -> None:
    run_id = start(demo)
    keyed = rows(demo, run_id)
    silent = {"liuhe", "maluan"}  # 六和社区 and 马峦街道 do not answer
    for key in ("message-street", "message-community"):
        for row in keyed[key]:
            if row.unit_id not in silent:
                tasks.ack(demo, step_id=row.id or 0, actor=row.assignees[0])
    clock.advance(timedelta(minutes=29))
    sweep_once(demo)
    assert ack_escalations(demo, run_id) == []

    clock.advance(timedelta(minutes=2))
    sweep_once(demo)
    chased = {e.step_key: e for e in ack_escalations(demo, run_id)}
    assert set(chased) == {"message-street", "message-community"}
    # The community's silence goes to the street: its head 王建华 and its commander 胡红霞.
    assert chased["message-community"].recipients == [
        "liuhe-head", "pingshan-street-head", "pingshan-street-commander"]
    # The street's goes to the district: the duty leader 刘洋 and the duty room's screen.
    assert chased["message-street"].recipients == ["maluan-head", "liu-yang",
                                                   "district_duty_room"]
    assert demo.org.people["liu-yang"].name == "刘洋"
    assert {e.step_id for e in chased.values()} == {
        next(r.id for r in keyed["message-community"] if r.unit_id == "liuhe"),
        next(r.id for r in keyed["message-street"] if r.unit_id == "maluan")}
    late = [r for rs in rows(demo, run_id).values() for r in rs if r.ack_missed]
    assert sorted(r.unit_id for r in late) == ["liuhe", "maluan"]
    with read_session(demo.db) as session:
        inbox = session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.kind == "ack")).all()
    assert {n.recipient for n in inbox} >= {"pingshan-street-head", "liu-yang", "liuhe-head"}
    assert all("未签收" in n.title for n in inbox)

    # Once: later sweeps, and answering late, chase nobody again for the 叫应.
    clock.advance(timedelta(minutes=20))
    sweep_once(demo)
    sweep_once(demo)
    liuhe = next(r for r in rows(demo, run_id)["message-community"] if r.unit_id == "liuhe")
    tasks.ack(demo, step_id=liuhe.id or 0, actor="liuhe-head")
    clock.advance(timedelta(minutes=20))
    sweep_once(demo)
    assert len(ack_escalations(demo, run_id)) == 2


# --- transfers, returns and the summary ---------------------------------------------------------

def test_transfers_and_returns_are_recorded_per_community_and_summed_up(
        demo: Runtime, clock: ManualClock) -> None:
    run_id = start(demo, unit="pingshan-street", actor=STREET_COMMANDER)
    ours = units(demo, "community", "pingshan-street")
    assert ours == ["liuhe", "heping", "pingshan-community", "dongmen", "xinhe"]
    finish_all(demo, run_id, "message-street")
    clock.advance(timedelta(hours=24))
    lifecycle.set_stage(demo, run_id=run_id, stage="severe", actor=STREET_COMMANDER)
    transfers = {r.unit_id: r for r in rows(demo, run_id)["transfer"]}
    assert list(transfers) == ours

    moved = {
        "liuhe": {"people": 3, "names": ["张桂兰", "李德明", "王小燕"],
                  "from_where": "六和社区河滨路低洼地段", "mover": "熊淑芬（网格员）",
                  "shelter": "六和社区党群服务中心", "management": "专人值守，登记造册，保障三餐"},
        "heping": {"people": 0, "from_where": "已排查，无危险区住户", "mover": "无",
                   "shelter": "无", "management": "无"},
        "pingshan-community": {"people": 12, "from_where": "坪山社区危房3栋",
                               "mover": "林婷婷（网格员）", "shelter": "坪山实验学校",
                               "management": "学校体育馆安置，社区干部24小时值守",
                               "not_moved": 1},
        "xinhe": {"people": 40, "from_where": "新和社区在建工地工棚", "mover": "项目部安全员",
                  "shelter": "新和社区文体中心", "management": "工地负责人点名，每日两次"},
    }
    clock.advance(timedelta(hours=5))  # 14:00: the people were moved by 13:30
    for unit, given in moved.items():
        finish(demo, transfers[unit], moved_at="2026-03-03T13:30:00+08:00", **given)
    # Each community's return waits for its own transfer record only (item_needs: transfer):
    # 东门 has written nothing yet, so its return is listed pending, with whom it will go to,
    # but no deadline, no timer and no inbox note; the others are handed out.
    lifecycle.set_stage(demo, run_id=run_id, stage="landfall", actor=STREET_COMMANDER)
    lifecycle.set_stage(demo, run_id=run_id, stage="recovery", actor=STREET_COMMANDER)
    returns = {r.unit_id: r for r in rows(demo, run_id)["return"]}
    assert list(returns) == ours
    assert {unit: r.status for unit, r in returns.items()} == {
        "liuhe": "ready", "heping": "ready", "pingshan-community": "ready", "dongmen": "pending",
        "xinhe": "ready"}
    waiting = returns["dongmen"]
    assert waiting.assignees == ["dongmen-head"]
    assert (waiting.due_at, waiting.next_check_at, waiting.ready_at) == (None, None, None)
    assert task_notes(demo, waiting.id) == []
    with pytest.raises(Conflict, match="任务未开始"):
        tasks.ack(demo, step_id=waiting.id or 0, actor="dongmen-head")

    back = {"liuhe": (3, 0, None), "heping": (0, 0, None), "dongmen": (5, 0, None),
            "pingshan-community": (10, 2, "2名危房住户在坪山实验学校过渡安置，社区跟踪"),
            "xinhe": (40, 0, None)}

    def record_return(unit: str) -> None:
        returned, remaining, care = back[unit]
        extra = {"remaining_care": care} if care else {}
        finish(demo, returns[unit], returned=returned, remaining=remaining,
               returned_at="2026-03-03T14:00:00+08:00", **extra)

    # The others record their people home; the summary still waits for 东门's return.
    for unit in ("liuhe", "heping", "pingshan-community", "xinhe"):
        record_return(unit)
    for key in ("recovery-street", "recovery-community", "recovery-public"):
        finish_all(demo, run_id, key)
    drain_wakes(demo)
    assert "summary" not in rows(demo, run_id)

    # 东门 records its transfer late: its return is handed out then, due as the stage says.
    clock.advance(timedelta(hours=2))
    finish(demo, transfers["dongmen"], people=5, mover="蒋天宇", shelter="东门小学",
           from_where="东门社区老屋村", management="分男女宿舍，社区医生巡诊")
    returns = {r.unit_id: r for r in rows(demo, run_id)["return"]}
    released = returns["dongmen"]
    assert released.status == "ready" and released.assignees == ["dongmen-head"]
    assert released.ready_at == clock.now()
    assert released.due_at == returns["heping"].due_at  # 2 days from entering 解除
    assert released.next_check_at is not None
    assert [n.title for n in task_notes(demo, released.id)] == [
        f"【新任务】{released.title}·山竹（1822）·坪山街道"]
    record_return("dongmen")
    drain_wakes(demo)

    keyed = rows(demo, run_id)
    assert [r.status for r in keyed["summary"]] == ["done"]
    with read_session(demo.db) as session:
        doc = session.exec(select(Document).where(Document.run_id == run_id)).one()
    body = doc.body
    assert doc.title == "生成台风防御工作总结"
    assert body.startswith("# 山竹（1822）台风防御工作总结")
    assert "**防御单位**：坪山街道" in body
    assert "**预计登陆时间**：2026-03-03 14:00" in body
    # The stages as entered, with when: 警报 and 紧急警报 were skipped over (their tasks were
    # still handed out, and are counted below), so the account does not claim them.
    assert ("进入过 4 个响应阶段，按先后：台风消息（2026-03-02 09:00 起） → "
            "橙色/红色预警（2026-03-03 09:00 起） → 台风登陆（2026-03-03 14:00 起） → "
            "解除与灾后恢复（2026-03-03 14:00 起）。") in body
    # Per community: 何时转、要转谁、人在哪、谁去转、转到哪、怎么管.
    assert ("| 六和社区 | 2026-03-03 13:30 | 3 人：张桂兰、李德明、王小燕 "
            "| 六和社区河滨路低洼地段 | 熊淑芬（网格员） | 六和社区党群服务中心 "
            "| 专人值守，登记造册，保障三餐 | 0 人 |") in body
    assert "| 坪山社区 | 2026-03-03 13:30 | 12 人 | 坪山社区危房3栋 |" in body
    assert "| 东门社区 | 2026-03-02 08:30 | 5 人 | 东门社区老屋村 | 蒋天宇 | 东门小学 |" in body
    assert "合计 5 个社区，转移 60 人，应转未转 1 人。" in body
    assert ("| 坪山社区 | 2026-03-03 14:00 | 10 人 | 2 人 | 已检查 |"
            " 2名危房住户在坪山实验学校过渡安置，社区跟踪 |") in body
    assert "| 新和社区 | 2026-03-03 14:00 | 40 人 | 0 人 | 已检查 | — |" in body
    assert "合计已返回 58 人，仍在安置 2 人。仍在安置的人员由所在社区每日跟踪" in body
    assert "| 坪山社区 | 0 次 | 0 人 | 0 人 | 2 人 | 2026-03-03 14:00 |" in body
    # The 3x3 measures unit by unit: the street did its 台风消息 measures, nobody else did
    # theirs before the summary, and the summary names who still owes them.
    assert "| 【台风消息】街道落实三项防御措施 | 1 | 1 | 1 | — | 无 |" in body
    assert ("| 【台风警报】社区落实三项防御措施 | 5 | 0 | 0 | — | 六和社区（待办）、"
            "和平社区（待办）、坪山社区（待办）、东门社区（待办）、新和社区（待办） |") in body
    assert "| 【解除与灾后恢复】网格员告知群众三项措施 | 5 | 5 | 5 | 600 | 无 |" in body
    assert "未填报" not in body.split("## 三")[1].split("## 五")[0]  # all transfers and returns
    assert get_run(demo, run_id).status == "running"  # earlier measures still owed

    # Every measure in, but 坪山社区 still has 2 people in the school: the run waits for them.
    for key, instances in rows(demo, run_id).items():
        if key != "summary" and any(r.status in ("ready", "acked") for r in instances):
            finish_all(demo, run_id, key)
    assert get_run(demo, run_id).status == "running"
    follow = rows(demo, run_id)["shelter-followup"]
    assert [(r.unit_id, r.status) for r in follow] == [
        ("liuhe", "skipped"), ("heping", "skipped"), ("pingshan-community", "pending"),
        ("dongmen", "skipped"), ("xinhe", "skipped")]
    # Its round comes the next morning at 09:00; handed in, nobody is left: the loop closes.
    clock.advance(timedelta(hours=18))  # 03-04 10:00
    sweep_once(demo)
    round_one = rows(demo, run_id)["shelter-followup"][2]
    assert round_one.status == "ready"
    finish(demo, round_one, returned=2, remaining=0)
    drain_wakes(demo)
    assert [r.status for r in rows(demo, run_id)["return-closure"]] == ["done"]
    assert get_run(demo, run_id).status == "completed"


def test_a_return_with_people_still_away_keeps_them_in_the_summary(
        demo: Runtime, clock: ManualClock) -> None:
    run_id = start(demo, unit="maluan", actor="maluan-commander")
    lifecycle.set_stage(demo, run_id=run_id, stage="severe", actor="maluan-commander")
    for row in rows(demo, run_id)["transfer"]:
        finish(demo, row, people=4, from_where="低洼地段", mover="网格员", shelter="社区服务中心",
               management="专人值守")
    lifecycle.set_stage(demo, run_id=run_id, stage="recovery", actor="maluan-commander")
    keyed = rows(demo, run_id)
    first, *others = keyed["return"]
    finish(demo, first, returned=1, remaining=3, remaining_care="房屋受损，投亲靠友")
    for row in others:
        finish(demo, row, returned=4, remaining=0)
    for key in ("recovery-street", "recovery-community", "recovery-public"):
        finish_all(demo, run_id, key)
    drain_wakes(demo)
    with read_session(demo.db) as session:
        body = session.exec(select(Document.body).where(Document.run_id == run_id)).one()
    assert "合计 3 个社区，转移 12 人，应转未转 0 人。" in body
    assert "| 马峦社区 | 2026-03-02 09:00 | 1 人 | 3 人 | 已检查 | 房屋受损，投亲靠友 |" in body
    # Filed with the people still away, who are followed up from here (安置人员返回跟踪).
    assert ("合计已返回 9 人，仍在安置 3 人。仍在安置的人员由所在社区每日跟踪（安置人员返回跟踪），"
            "直至全部返回后归档“转移人员全部返回销号”。\n\n**安置人员返回跟踪**（截至2026-03-02 "
            "09:00，目前仍在安置 3 人）") in body
    assert ("| 马峦社区 | 0 次 | 0 人 | 0 人 | 3 人 | 2026-03-02 09:00 |\n\n\n"
            "## 五、灾情损失简况") in body
    assert "人员转移闭环" not in body


def test_the_run_is_named_after_the_typhoon(demo: Runtime) -> None:
    run_id = start(demo, unit="pingshan-street", actor=STREET_COMMANDER)
    with read_session(demo.db) as session:
        run = session.get(Run, run_id)
    assert run is not None and run.title == f"台风633分级响应·{PARAMS['name']}·坪山街道"


def test_moving_to_the_stage_the_run_is_in_is_refused_by_its_title(demo: Runtime) -> None:
    run_id = start(demo, unit="pingshan-street", actor=STREET_COMMANDER)
    with pytest.raises(Conflict) as caught:
        lifecycle.set_stage(demo, run_id=run_id, stage="message", actor=STREET_COMMANDER)
    assert str(caught.value).startswith("流程已处于阶段 台风消息 / ")


def test_a_stage_is_named_by_its_title_as_well_as_its_id(demo: Runtime) -> None:
    run_id = start(demo, unit="maluan", actor="maluan-commander")
    run = lifecycle.set_stage(demo, run_id=run_id, stage="橙色/红色预警", actor="maluan-commander")
    assert run.stage == "severe"
    with pytest.raises(InvalidInput) as caught:
        lifecycle.set_stage(demo, run_id=run_id, stage="红色预警", actor="maluan-commander")
    assert caught.value.field == "stage"
    assert "可选：message（台风消息）、warning（台风警报）" in str(caught.value)


# --- ending the response ------------------------------------------------------------------------

def test_the_commander_ends_the_response_once_the_last_stage_is_done(
        demo: Runtime, clock: ManualClock) -> None:
    """解除 reached and its work in (returns, recovery measures, the summary): the commander
    ends the response and the run completes. The 台风警报 measures nobody answered are called
    off with it, their holders told, and the timeline names them."""
    commander = "maluan-commander"
    run_id = start(demo, unit="maluan", actor=commander)
    # Before the last stage, only with a note saying why (the warning lifted early).
    for note in (None, "  "):
        with pytest.raises(InvalidInput) as early:
            lifecycle.end_response(demo, run_id=run_id, actor=commander, note=note)
        assert early.value.field == "note"
        assert "在“台风消息”阶段提前结束响应须说明原因" in early.value.message
    assert get_run(demo, run_id).status == "running"
    lifecycle.set_stage(demo, run_id=run_id, stage="severe", actor=commander)
    finish_all(demo, run_id, "transfer")
    lifecycle.set_stage(demo, run_id=run_id, stage="recovery", actor=commander)
    with pytest.raises(Conflict) as caught:
        lifecycle.end_response(demo, run_id=run_id, actor=commander)
    assert "“解除与灾后恢复”阶段尚未完成：【解除与灾后恢复】街道落实三项措施、" in str(caught.value)
    for key in ("return", "recovery-street", "recovery-community", "recovery-public"):
        finish_all(demo, run_id, key)
    drain_wakes(demo)
    assert [r.status for r in rows(demo, run_id)["summary"]] == ["done"]
    owing = [r for r in rows(demo, run_id)["message-community"] if r.status == "ready"]
    assert len(owing) == 3 and get_run(demo, run_id).status == "running"

    with pytest.raises(Forbidden):
        lifecycle.end_response(demo, run_id=run_id, actor="maluan-community-head")
    clock.advance(timedelta(hours=1))
    lifecycle.end_response(demo, run_id=run_id, actor=commander, note="台风已远离，响应结束")
    run = get_run(demo, run_id)
    assert (run.status, run.finished_at) == ("completed", clock.now())
    keyed = rows(demo, run_id)
    assert {r.status for r in keyed["message-community"]} == {"cancelled"}
    assert all(r.next_check_at is None for rs in keyed.values() for r in rs)
    with read_session(demo.db) as session:
        [ended] = session.exec(select(AuditEvent).where(
            AuditEvent.run_id == run_id, AuditEvent.action == "run_completed")).all()
        told = session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.kind == "ended")).all()
    assert (ended.actor, ended.detail["note"]) == (commander, "台风已远离，响应结束")
    assert ended.detail["unanswered"].count("【台风消息】社区落实三项防御措施（马峦社区）") == 1
    assert ended.detail["steps_called_off"] == len(ended.detail["unanswered"]) > 3
    assert "maluan-community-head" in {n.recipient for n in told}
    assert told[0].title == f"【响应结束】{run.title}"
    # Ended is ended: nothing more to end, nor to stage.
    with pytest.raises(Conflict):
        lifecycle.end_response(demo, run_id=run_id, actor=commander)


def test_a_response_whose_warning_is_lifted_early_ends_where_it_is(
        demo: Runtime, clock: ManualClock) -> None:
    """The typhoon turned away at 台风警报: the commander ends the response there, with the
    reason, instead of jumping to 解除 (which would hand every community the transfer orders
    of the stages in between). What was open is called off and listed; nothing of the later
    stages is ever handed out."""
    commander = "maluan-commander"
    run_id = start(demo, unit="maluan", actor=commander)
    lifecycle.set_stage(demo, run_id=run_id, stage="warning", actor=commander)
    before = {key for key, rs in rows(demo, run_id).items() if rs}
    clock.advance(timedelta(hours=2))
    lifecycle.end_response(demo, run_id=run_id, actor=commander, note="台风转向，预警解除")
    run = get_run(demo, run_id)
    assert (run.status, run.stage) == ("completed", "warning")
    keyed = rows(demo, run_id)
    assert {key for key, rs in keyed.items() if rs} == before  # nothing new handed out
    assert not any(key.startswith(("transfer", "return", "recovery")) for key in before)
    assert {r.status for rs in keyed.values() for r in rs} <= {"done", "cancelled", "skipped"}
    with read_session(demo.db) as session:
        [ended] = session.exec(select(AuditEvent).where(
            AuditEvent.run_id == run_id, AuditEvent.action == "run_completed")).all()
    assert (ended.detail["note"], ended.detail["stage"], ended.detail["early"]) == (
        "台风转向，预警解除", "warning", True)
    assert ended.detail["steps_called_off"] == len(ended.detail["unanswered"]) > 0


def test_a_playbook_without_stages_is_not_ended_by_hand(demo: Runtime) -> None:
    run = lifecycle.start_run(demo, playbook_id="gas-leak", unit_id="liuhe",
                              params={"location": "六和社区某小区3栋"}, actor=COMMANDER)
    with pytest.raises(InvalidInput) as caught:
        lifecycle.end_response(demo, run_id=run.id or 0, actor=COMMANDER)
    assert caught.value.field == "run" and "不分阶段" in str(caught.value)


def test_a_transfer_time_in_the_future_is_refused_by_name(demo: Runtime,
                                                          clock: ManualClock) -> None:
    """何时转 cannot be tomorrow (or 2099): the summary would print it. A time written without
    a zone is the bureau's wall clock; a few minutes ahead of the server's is a phone's clock."""
    run_id = start(demo, unit="maluan", actor="maluan-commander")
    lifecycle.set_stage(demo, run_id=run_id, stage="severe", actor="maluan-commander")
    row = rows(demo, run_id)["transfer"][0]  # the clock: 2026-03-02 09:00 in Shanghai
    # Said in the bureau's time, as typed on the page, not as the ISO text the page sends.
    for late, said in (("2099-12-01T12:00:00+08:00", "2099-12-01 12:00"),
                       ("2026-03-02T09:10", "2026-03-02 09:10"),
                       ("2026-03-02T01:10:00Z", "2026-03-02 09:10")):
        with pytest.raises(InvalidInput) as caught:
            finish(demo, row, moved_at=late)
        assert caught.value.field == "outputs.moved_at", late
        assert f"不能晚于现在（2026-03-02 09:00）；收到 {said} /" in str(caught.value)
    assert rows(demo, run_id)["transfer"][0].status == "ready"
    assert finish(demo, row, moved_at="2026-03-02T09:03").status == "done"


def test_returns_that_do_not_add_up_to_the_people_moved_are_refused_at_the_form(
        demo: Runtime) -> None:
    """The return's check (`checks:`): returned + still sheltered = the people this community
    moved (its own transfer record), said on the returned box; the 防御总结 then adds up."""
    run_id = start(demo, unit="maluan", actor="maluan-commander")
    lifecycle.set_stage(demo, run_id=run_id, stage="severe", actor="maluan-commander")
    for n, row in enumerate(rows(demo, run_id)["transfer"]):
        finish(demo, row, people=12 + n, from_where="低洼地段", mover="网格员",
               shelter="社区服务中心", management="专人值守")
    lifecycle.set_stage(demo, run_id=run_id, stage="recovery", actor="maluan-commander")
    first, *others = rows(demo, run_id)["return"]
    with pytest.raises(InvalidInput) as caught:
        finish(demo, first, returned=20, remaining=5)  # 25 of the 12 moved: a typing slip
    assert caught.value.field == "outputs.returned"
    assert caught.value.message.startswith(
        "已返回 20 人与仍在安置 5 人之和应等于本社区转移人数 12 人，请核实后填报")
    assert rows(demo, run_id)["return"][0].status == "ready"
    finish(demo, first, returned=10, remaining=2)
    for n, row in enumerate(others, start=1):  # each against its own community's transfer
        with pytest.raises(InvalidInput, match=f"本社区转移人数 {12 + n} 人"):
            finish(demo, row, returned=12, remaining=0)
        finish(demo, row, returned=12 + n, remaining=0)
    for key in ("recovery-street", "recovery-community", "recovery-public"):
        finish_all(demo, run_id, key)
    drain_wakes(demo)
    with read_session(demo.db) as session:
        body = session.exec(select(Document.body).where(Document.run_id == run_id)).one()
    assert "人数不符" not in body


def test_a_response_is_not_ended_early_while_moved_people_wait_for_their_return(
        demo: Runtime, clock: ManualClock) -> None:
    """The typhoon turned away at 橙色/红色预警 after a community moved its people: ending there
    would call off their return with everyone still in the shelter. The early end is refused
    (409 naming the community and the follow-up) and changes nothing; entering 解除 hands that
    community its 转移人员返回, paired with its own transfer record."""
    commander = "maluan-commander"
    run_id = start(demo, unit="maluan", actor=commander)
    lifecycle.set_stage(demo, run_id=run_id, stage="severe", actor=commander)
    clock.advance(timedelta(minutes=30))
    moved = rows(demo, run_id)["transfer"][0]
    finish(demo, moved, people=120)
    before = {(r.id, r.status) for r in run_steps(demo, run_id)}
    with pytest.raises(Conflict) as refused:
        lifecycle.end_response(demo, run_id=run_id, actor=commander, note="台风转向，预警解除")
    said = str(refused.value)
    assert "转移人员返回" in said and "解除与灾后恢复" in said
    assert demo.org.unit_name(moved.unit_id) in said
    assert get_run(demo, run_id).status == "running"
    assert {(r.id, r.status) for r in run_steps(demo, run_id)} == before
    lifecycle.set_stage(demo, run_id=run_id, stage="recovery", actor=commander)
    returns = [r for r in rows(demo, run_id)["return"] if r.unit_id == moved.unit_id]
    assert [r.status for r in returns] == ["ready"]
