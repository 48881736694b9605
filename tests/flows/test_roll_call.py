"""The shipped 一键通抽查、随机签到 playbook (playbooks/roll-call.yaml, seeds/002 二(二)三) on the
demo district 坪山区: the duty room draws a random few of the communities under the run's unit
and calls their heads, each to answer (签到/叫应) within 10 minutes; an unanswered call is
escalated once to the street's head and commander, then to the district's duty leader; the
抽查通报 filed when the 30-minute window closes lists each person drawn, when called, when they
answered, the minutes taken, and who answered late or not at all; the run closes once everyone
drawn has answered. Real runtime and database, segments run bare, a ManualClock moved."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, complete_answered, make_runtime, run_steps
from factories import run_row as get_run
from sqlmodel import select

from flows import lifecycle
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.documents import Document
from models.errors import Forbidden
from models.escalation import Escalation
from models.outbox import Notification
from models.task import StepInstance

DUTY_OFFICER = "pingshan-duty-1"  # 黄磊, the district duty room


def start(rt: Runtime, count: int = 4, unit: str = "pingshan", actor: str = DUTY_OFFICER
          ) -> int:
    run = lifecycle.start_run(rt, playbook_id="roll-call", unit_id=unit,
                              params={"count": count}, actor=actor)
    return run.id or 0


def calls(rt: Runtime, run_id: int) -> list[StepInstance]:
    return [r for r in run_steps(rt, run_id) if r.step_key == "call"]


def tick(rt: Runtime, clock: ManualClock, minutes: int) -> None:
    clock.advance(timedelta(minutes=minutes))
    sweep_once(rt)
    drain_wakes(rt)


def escalations(rt: Runtime, run_id: int) -> list[Escalation]:
    with read_session(rt.db) as session:
        return list(session.exec(select(Escalation).where(
            Escalation.run_id == run_id, Escalation.kind == "escalate")
            .order_by(Escalation.id)).all())  # type: ignore[arg-type]


def test_the_playbook_loads_and_the_duty_room_may_start_it(demo: Runtime) -> None:
    playbook = demo.catalog.get("roll-call")
    assert playbook.title == "一键通抽查随机签到" and playbook.title_en
    call = playbook.step("call")
    assert call.for_each == "sample(units(type='community', within=run.unit), params.count)"
    assert call.role == "community_head" and call.due is not None
    assert call.due.after.seconds() == 10 * 60
    assert playbook.params["count"].min == 1
    start(demo, actor="liu-yang")  # the duty leader
    with pytest.raises(Forbidden):  # a community's grid worker does not spot-check anyone
        start(demo, unit="liuhe", actor="liuhe-grid")


def test_each_person_drawn_is_called_at_once_on_their_own_channels(
        demo: Runtime, clock: ManualClock) -> None:
    run_id = start(demo, count=4)
    drawn = calls(demo, run_id)
    assert len(drawn) == 4 and len({r.unit_id for r in drawn}) == 4
    assert {demo.org.unit(r.unit_id).type for r in drawn} == {"community"}
    for row in drawn:
        assert row.assignees == [f"{row.unit_id}-head"]
        assert row.title == f"一键通抽查签到（叫应）（{demo.org.unit(row.unit_id).name}）"
        assert row.due_at == clock.now() + timedelta(minutes=10)
    with read_session(demo.db) as session:
        told = session.exec(select(Notification.recipient).where(
            Notification.run_id == run_id, Notification.kind == "assigned")).all()
    assert sorted(set(told)) == sorted(r.assignees[0] for r in drawn)
    # Started at one street, only that street's communities are drawn; asking for more than
    # it has calls every one of them.
    street = start(demo, count=10, unit="maluan", actor="maluan-commander")
    assert [r.unit_id for r in calls(demo, street)] == ["maluan-community", "jiangling",
                                                        "pinghuan"]


def test_late_and_missing_answers_are_escalated_once_and_listed_in_the_bulletin(
        demo: Runtime, clock: ManualClock) -> None:
    run_id = start(demo, count=4)
    first, second, third, fourth = calls(demo, run_id)
    name = {r.unit_id: demo.org.unit(r.unit_id).name for r in (first, second, third, fourth)}
    head = {r.unit_id: demo.org.people[r.assignees[0]].name
            for r in (first, second, third, fourth)}

    clock.advance(timedelta(minutes=4))  # 09:04: the first answers, on duty
    complete_answered(demo, first, location="社区党群服务中心")
    tick(demo, clock, 6)  # 09:10: the deadline; three have not answered
    late = escalations(demo, run_id)
    assert sorted(e.step_id for e in late) == sorted(r.id for r in (second, third, fourth))
    assert {e.level for e in late} == {1}
    street = {r.unit_id: demo.org.unit(r.unit_id).parent_id for r in (second, third, fourth)}
    for e in late:
        unit = next(r.unit_id for r in (second, third, fourth) if r.id == e.step_id)
        # The community's head is chased with the street's head and commander.
        assert set(e.recipients) >= {f"{street[unit]}-head", f"{street[unit]}-commander"}

    clock.advance(timedelta(minutes=4))  # 09:14: the second answers late, away from post
    complete_answered(demo, second, on_duty=False, location="区政府会议室",
                      stand_in="参加区防指会议，由副书记代岗")
    tick(demo, clock, 1)
    assert len(escalations(demo, run_id)) == 3  # once each: nothing fired again
    tick(demo, clock, 15)  # 09:30: 20 minutes past due, the district's duty leader
    second_level = [e for e in escalations(demo, run_id) if e.level == 2]
    assert sorted(e.step_id for e in second_level) == sorted(r.id for r in (third, fourth))
    assert all("liu-yang" in e.recipients for e in second_level)

    # The window closed at 09:30: the 抽查通报 is filed and sent to the duty room's screen.
    with read_session(demo.db) as session:
        doc = session.exec(select(Document).where(Document.run_id == run_id)).one()
        sent = session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.kind == "notify")).all()
    body = doc.body
    assert body.startswith("# 一键通抽查通报")
    assert "**组织抽查**：黄磊" in body and "**抽查时间**：2026-03-02 09:00" in body
    assert ("本次从坪山区所辖 23 个社区中随机抽取 4 个社区的主要负责人进行一键通抽查，要求接到"
            "呼叫后 10 分钟内签到叫应。按时签到 1 人，超时签到 1 人，未签到 2 人。") in body
    assert (f"| 1 | {name[first.unit_id]} | {head[first.unit_id]} | 2026-03-02 09:00 "
            f"| 2026-03-02 09:04 | 4 | 是 | 按时签到 |") in body
    assert (f"| 2 | {name[second.unit_id]} | {head[second.unit_id]} | 2026-03-02 09:00 "
            f"| 2026-03-02 09:14 | 14 | 否 | 超时签到 |") in body
    for index, row in ((3, third), (4, fourth)):
        assert (f"| {index} | {name[row.unit_id]} | {head[row.unit_id]} | 2026-03-02 09:00 "
                f"| — | — | — | 未签到 |") in body
        assert f"- {name[row.unit_id]} {head[row.unit_id]}：截至通报时未签到" in body
    assert f"- {name[second.unit_id]} {head[second.unit_id]}：超时签到，用时 14 分钟" in body
    assert (f"- {name[second.unit_id]} {head[second.unit_id]}：参加区防指会议，由副书记代岗"
            f"（所在位置：区政府会议室）") in body
    assert [(n.recipient, n.title) for n in sent] == [
        ("district_duty_room", "【发送一键通抽查通报】一键通抽查随机签到·坪山区")]
    assert sent[0].body == body

    # The run stays open until everyone drawn has answered: the ladder goes on meanwhile.
    assert get_run(demo, run_id).status == "running"
    tick(demo, clock, 30)
    assert len([e for e in escalations(demo, run_id) if e.level == 2]) == 4  # every 30 min
    complete_answered(demo, third, location="社区")
    complete_answered(demo, fourth, location="社区")
    drain_wakes(demo)
    assert get_run(demo, run_id).status == "completed"


def test_the_bulletin_says_the_minutes_the_playbook_gives(tmp_path: Path,
                                                         clock: ManualClock) -> None:
    """A bureau that gives its heads 15 minutes (`due: 15m`, a value of the playbook) reads 15
    in its 通报, not the shipped playbook's 10 written into the paper."""
    books = tmp_path / "books"
    shutil.copytree(SHIPPED_PLAYBOOKS, books)
    source = (books / "roll-call.yaml").read_text(encoding="utf-8")
    assert source.count("\n    due: 10m\n") == 1
    (books / "roll-call.yaml").write_text(source.replace("\n    due: 10m\n", "\n    due: 15m\n"),
                                          encoding="utf-8")
    rt = make_runtime(tmp_path / "data", clock=clock, playbooks=books, org_path=DEMO_ORG)
    run_id = start(rt, count=2, unit="maluan", actor="maluan-commander")
    clock.advance(timedelta(minutes=12))  # late by the shipped 10 minutes, on time by 15
    for row in calls(rt, run_id):
        complete_answered(rt, row, location="社区")
    tick(rt, clock, 30)
    with read_session(rt.db) as session:
        body = session.exec(select(Document).where(Document.run_id == run_id)).one().body
    rt.db.dispose()
    assert "要求接到呼叫后 15 分钟内签到叫应。按时签到 2 人，超时签到 0 人，未签到 0 人。" in body
    assert "10 分钟" not in body


def test_everyone_on_time_reads_so(demo: Runtime, clock: ManualClock) -> None:
    run_id = start(demo, count=2, unit="maluan", actor="maluan-commander")
    clock.advance(timedelta(minutes=3))
    for row in calls(demo, run_id):
        complete_answered(demo, row, location="社区")
    tick(demo, clock, 30)
    assert escalations(demo, run_id) == []
    with read_session(demo.db) as session:
        body = session.exec(select(Document).where(Document.run_id == run_id)).one().body
    assert "本次从马峦街道所辖 3 个社区中随机抽取 2 个社区" in body
    assert "按时签到 2 人，超时签到 0 人，未签到 0 人。" in body
    assert "- 无，被抽查人员均按时签到。" in body and "不在岗人员" not in body
    # Nobody to follow up: the closing line does not ask the streets to.
    assert "督促整改" not in body and "被抽查人员均按时签到、在岗在位" in body
    assert get_run(demo, run_id).status == "completed"


def test_an_answer_within_the_minute_reads_less_than_one(demo: Runtime,
                                                       clock: ManualClock) -> None:
    run_id = start(demo, count=1, unit="maluan", actor="maluan-commander")
    clock.advance(timedelta(seconds=20))
    for row in calls(demo, run_id):
        complete_answered(demo, row, location="社区")
    tick(demo, clock, 30)
    with read_session(demo.db) as session:
        body = session.exec(select(Document).where(Document.run_id == run_id)).one().body
    [line] = [ln for ln in body.splitlines() if ln.startswith("| 1 |")]
    assert "| 不足1 |" in line and "| 0 |" not in line
