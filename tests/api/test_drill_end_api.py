"""结束演练 through POST /api/runs/{id}/complete, on the shipped gas leak and the demo district:
a drill ends at any point as completed (never 已取消), its open tasks called off and listed in
the timeline, their escalations stopped, those who held them told once 【演练】演练结束; who may
end it; a real run answered exactly as before; and the evaluation of an ended drill (what the
end overtook past its deadline is 未完成, what was not yet due is 演练结束时未到期, the summary
says when and by whom), its 单位 column the unit of who did the task, and its answer described
field by field in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from factories import complete_answered, run_steps
from fastapi.testclient import TestClient
from sqlmodel import col, select

from flows.evaluation import evaluate
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.audit import AuditEvent
from models.clock import ManualClock
from models.db import read_session
from models.outbox import Notification
from models.run import Run
from models.task import StepInstance

Auth = Callable[[str], dict[str, str]]
COMMANDER = "wang-qiang"  # 王强, district commander
MANAGER = "sun-li"  # 孙丽, district manager (综合科): evaluates, may not cancel
DUTY = "pingshan-duty-1"  # 黄磊
POLICE = "tang-jian"  # 唐健, of the district, holds the cordon at 六和社区
GAS = {"location": "六和社区幸福里小区3栋", "grade": "一般"}
DRILL = {"kind": "实战演练", "title": "2026年度燃气泄漏实战演练"}


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo


def start(client: TestClient, auth: Auth, *, drill: dict[str, Any] | None = DRILL) -> int:
    body: dict[str, Any] = {"playbook": "gas-leak", "unit": "liuhe", "params": GAS}
    if drill is not None:
        body["drill"] = drill
    r = client.post("/api/runs", json=body, headers=auth(COMMANDER))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def task(client: TestClient, auth: Auth, run_id: int, step: str) -> dict[str, Any]:
    steps = client.get(f"/api/runs/{run_id}", headers=auth(COMMANDER)).json()["steps"]
    return next(s for s in steps if s["step"] == step and s["id"] is not None)


def notices(rt: Runtime, run_id: int) -> list[Notification]:
    with read_session(rt.db) as session:
        return list(session.exec(select(Notification).where(
            Notification.run_id == run_id).order_by(col(Notification.id))).all())


def exercised(client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> int:
    """A drill 7 minutes in: the alert taken on time, the cordon signed for by the police, the
    first report (due at minute 5) never written, the grid worker's check (15) not yet due."""
    run_id = start(client, auth)
    receive = task(client, auth, run_id, "receive")
    clock.advance(timedelta(minutes=1))
    assert client.post(f"/api/tasks/{receive['id']}/complete", headers=auth(DUTY), json={
        "outputs": {"scene": "立管接口泄漏"}}).status_code == 200
    drain_wakes(rt)
    cordon = task(client, auth, run_id, "cordon")
    assert client.post(f"/api/tasks/{cordon['id']}/ack", headers=auth(POLICE)).status_code == 200
    clock.advance(timedelta(minutes=6))
    sweep_once(rt)
    return run_id


def test_a_drill_ends_as_completed_its_open_tasks_called_off_and_listed(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    run_id = exercised(client, auth, rt, clock)
    open_before = [s for s in client.get(f"/api/runs/{run_id}", headers=auth(COMMANDER))
                   .json()["steps"] if s["id"] is not None and s["status"] in (
                       "pending", "ready", "acked", "submitted", "rejected")]
    assert len(open_before) >= 5
    r = client.post(f"/api/runs/{run_id}/complete", headers=auth(COMMANDER),
                    json={"note": "演练科目全部完成"})
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["status"] == "completed" and run["finished_at"] is not None
    assert all(s["status"] != "ready" for s in run["steps"] if s["id"] is not None)
    [ended] = [e for e in run["timeline"] if e["action"] == "run_completed"]
    assert ended["actor"] == COMMANDER and ended["detail"]["drill_end"] is True
    assert ended["detail"]["note"] == "演练科目全部完成"
    assert ended["detail"]["unanswered"] == [s["title"] for s in open_before]
    assert ended["detail"]["called_off_ids"] == [s["id"] for s in open_before]
    assert ended["detail"]["steps_called_off"] == len(open_before)
    assert run["people_away"] == [] == ended["detail"]["people_away"]  # a gas leak moves nobody
    with read_session(rt.db) as session:
        rows = session.exec(select(StepInstance).where(
            col(StepInstance.id).in_([s["id"] for s in open_before]))).all()
        assert {s.status for s in rows} == {"cancelled"}
        assert all(s.next_check_at is None for s in rows)
        row = session.get(Run, run_id)
        assert row is not None and row.status == "completed"
    # The runs list reads it as done, not cancelled.
    listed = client.get("/api/runs", params={"drill": "true"}, headers=auth(COMMANDER)).json()
    assert [(r["id"], r["status"]) for r in listed["data"]] == [(run_id, "completed")]


def test_those_who_held_open_tasks_are_told_once_and_nothing_more_is_sent(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    run_id = exercised(client, auth, rt, clock)
    write = task(client, auth, run_id, "report.write")  # late, and sent to the county office
    assert client.post(f"/api/tasks/{write['id']}/complete", headers=auth(DUTY), json={
        "outputs": {"scene": "立管接口泄漏", "casualties": 0, "missing": 0}}).status_code == 200
    drain_wakes(rt)
    assert any(n.recipient_kind == "channel" for n in notices(rt, run_id))
    holders = {p["id"] for s in client.get(f"/api/runs/{run_id}", headers=auth(COMMANDER))
               .json()["steps"] if s["status"] in ("ready", "acked") for p in s["assignees"]}
    before = {n.id for n in notices(rt, run_id)}
    assert client.post(f"/api/runs/{run_id}/complete", headers=auth(COMMANDER),
                       json={"note": "演练科目全部完成"}).status_code == 200
    told = [n for n in notices(rt, run_id) if n.id not in before]
    assert told and {n.kind for n in told} == {"ended"}
    to_people = [n for n in told if n.recipient_kind == "person"]
    assert {n.recipient for n in to_people} >= holders and POLICE in holders
    for n in told:
        assert n.title.startswith("【演练】演练结束：燃气泄漏"), n.title
        assert n.body.startswith("【演练】本消息为演练，非真实事件。\n")
        assert "演练已由王强宣布结束，说明：演练科目全部完成。" in n.body
    mine = [n for n in to_people if n.recipient == POLICE]
    assert len(mine) == 1 and "你在此演练中的未完成任务已停止，无需再办理。" in mine[0].body
    # The county duty office that took the drill's alert hears the exercise is over too.
    channels = [n for n in told if n.recipient_kind == "channel"]
    assert channels and all("所涉演练已结束" in n.body for n in channels)
    # Hours later: no reminder, no escalation, no letter for any task of the ended drill.
    after = {n.id for n in notices(rt, run_id)}
    for _ in range(4):
        clock.advance(timedelta(hours=1))
        sweep_once(rt)
        drain_wakes(rt)
    assert {n.id for n in notices(rt, run_id)} == after


def test_the_evaluation_of_an_ended_drill_reads_each_task_against_the_end(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    run_id = exercised(client, auth, rt, clock)
    assert client.post(f"/api/runs/{run_id}/complete", headers=auth(COMMANDER),
                       json={"note": "演练科目全部完成"}).status_code == 200
    ev = client.get(f"/api/runs/{run_id}/evaluation", headers=auth(MANAGER)).json()
    rows = {s["step"]: s for s in ev["steps"]}
    assert rows["receive"]["outcome"] == "on_time"
    # Due at minute 5, ended at minute 7: missed, 2 minutes late to the end.
    assert (rows["report.write"]["outcome"], rows["report.write"]["late_minutes"],
            rows["report.write"]["outcome_zh"]) == ("missed", 2, "未完成")
    # Due at minute 16: the exercise ended before it was owed.
    assert (rows["verify"]["outcome"], rows["verify"]["outcome_zh"], rows["verify"][
        "late_minutes"]) == ("ended_not_due", "演练结束时未到期", None)
    summary = ev["summary"]
    assert summary["ended_not_due"] == sum(
        s["outcome"] == "ended_not_due" for s in ev["steps"]) >= 3
    assert summary["missed"] == sum(s["outcome"] == "missed" for s in ev["steps"]) >= 1
    assert "called_off" not in {s["outcome"] for s in ev["steps"]}
    ended = summary["ended"]
    assert (ended["how"], ended["how_zh"], ended["by"], ended["by_name"], ended["note"]) == (
        "drill_end", "结束演练", COMMANDER, "王强", "演练科目全部完成")
    assert ended["at_local"] == ev["finished_at_local"] and ended["called_off"] >= 4
    assert "（结束演练，王强）" in ev["report"]
    assert "**结束说明**：演练科目全部完成" in ev["report"]
    assert f"演练结束时未到期：{summary['ended_not_due']} 项" in ev["report"]
    assert "演练结束时未到期" in ev["html"]


def test_a_cancelled_drill_and_a_running_one_are_read_as_before(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    """Cancelled, a task not yet due stays 已撤销 (nobody said the exercise was done); running,
    the summary has no end."""
    run_id = exercised(client, auth, rt, clock)
    running = client.get(f"/api/runs/{run_id}/evaluation", headers=auth(MANAGER)).json()
    assert running["summary"]["ended"] is None and running["summary"]["ended_not_due"] == 0
    assert client.post(f"/api/runs/{run_id}/cancel", headers=auth(COMMANDER),
                       json={"reason": "现场下雨，演练中止"}).status_code == 200
    ev = client.get(f"/api/runs/{run_id}/evaluation", headers=auth(MANAGER)).json()
    rows = {s["step"]: s for s in ev["steps"]}
    assert rows["verify"]["outcome"] == "called_off"
    assert rows["report.write"]["outcome"] == "missed"
    assert (ev["summary"]["ended"]["how_zh"], ev["summary"]["ended"]["note"]) == (
        "取消", "现场下雨，演练中止")
    assert "演练结束时未到期" not in ev["report"]


def test_the_unit_column_is_the_unit_of_who_did_the_task(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    """The cordon is handed to 六和社区 and held by the district's police officer: the drill
    tested the police, so the row says 坪山区; a task nobody held keeps its own unit."""
    run_id = exercised(client, auth, rt, clock)
    ev = client.get(f"/api/runs/{run_id}/evaluation", headers=auth(MANAGER)).json()
    rows = {s["step"]: s for s in ev["steps"]}
    assert (rows["cordon"]["unit_name"], rows["cordon"]["step_unit_name"]) == (
        "坪山区", "六和社区")
    assert rows["verify"]["acked_by_name"] is None
    assert (rows["verify"]["unit_name"], rows["verify"]["step_unit_name"]) == (
        "六和社区", "六和社区")
    assert "| 设置警戒区、禁绝火源 | 坪山区 |" in ev["report"]


def test_only_a_commander_over_the_drill_may_end_it(
        client: TestClient, auth: Auth, rt: Runtime) -> None:
    run_id = start(client, auth)
    for person in (MANAGER, DUTY, "liuhe-grid", "maluan-commander"):
        r = client.post(f"/api/runs/{run_id}/complete", headers=auth(person), json={})
        assert r.status_code == 403, (person, r.text)
    # The street's commander is over 六和社区: they may, as they may cancel it.
    r = client.post(f"/api/runs/{run_id}/complete", headers=auth("pingshan-street-commander"))
    assert r.status_code == 200 and r.json()["status"] == "completed"
    again = client.post(f"/api/runs/{run_id}/complete", headers=auth(COMMANDER))
    assert again.status_code == 409 and again.json()["current"] == "completed"
    with read_session(rt.db) as session:
        assert len(session.exec(select(AuditEvent).where(
            AuditEvent.run_id == run_id, AuditEvent.action == "run_completed")).all()) == 1
    assert client.post("/api/runs/99999/complete", headers=auth(COMMANDER)).status_code == 404


@pytest.mark.parametrize("body", [{"note": 3}, {"note": "x" * 2001}, {"reason": "演练结束"}])
def test_a_bad_end_is_refused_naming_the_field_and_changes_nothing(
        client: TestClient, auth: Auth, rt: Runtime, body: dict[str, Any]) -> None:
    run_id = start(client, auth)
    r = client.post(f"/api/runs/{run_id}/complete", headers=auth(COMMANDER), json=body)
    assert r.status_code == 422, r.text
    assert list(body)[0] in r.text
    with read_session(rt.db) as session:
        row = session.get(Run, run_id)
        assert row is not None and row.status == "running"


def test_a_cancelled_drill_cannot_be_ended(client: TestClient, auth: Auth) -> None:
    run_id = start(client, auth)
    assert client.post(f"/api/runs/{run_id}/cancel", headers=auth(COMMANDER)).status_code == 200
    r = client.post(f"/api/runs/{run_id}/complete", headers=auth(COMMANDER))
    assert r.status_code == 409 and r.json()["current"] == "cancelled"


def test_a_real_gas_leak_is_still_not_ended_this_way(
        client: TestClient, auth: Auth, rt: Runtime) -> None:
    """A real run keeps today's rules: a playbook without stages ends with its last step or is
    cancelled (422 naming `run`), and nothing changes."""
    run_id = start(client, auth, drill=None)
    r = client.post(f"/api/runs/{run_id}/complete", headers=auth(COMMANDER),
                    json={"note": "处置完毕"})
    assert r.status_code == 422
    assert r.json()["field"] == "run" and "不分阶段" in r.json()["detail"]
    with read_session(rt.db) as session:
        row = session.get(Run, run_id)
        assert row is not None and row.status == "running"
        assert session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.kind == "ended")).all() == []


def test_the_evaluation_answer_is_described_field_by_field(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    """/docs shows the evaluation's fields, and the answer keeps every key the engine gives."""
    spec = client.get("/openapi.json").json()
    for method in ("get", "post"):
        answer = spec["paths"]["/api/runs/{run_id}/evaluation"][method]["responses"]["200"]
        assert answer["content"]["application/json"]["schema"]["$ref"].endswith(
            "/EvaluationPublic")
    shapes = spec["components"]["schemas"]
    assert "ended_not_due" in shapes["EvaluationStep"]["properties"]["outcome"]["enum"]
    assert "ended" in shapes["EvaluationSummary"]["properties"]
    run_id = exercised(client, auth, rt, clock)
    client.post(f"/api/runs/{run_id}/complete", headers=auth(COMMANDER))
    answer = client.get(f"/api/runs/{run_id}/evaluation", headers=auth(MANAGER)).json()
    engine = evaluate(rt, run_id=run_id, actor=MANAGER)
    assert set(answer) == set(engine) | {"html"}
    assert set(answer["summary"]) == set(engine["summary"])
    assert set(answer["steps"][0]) == set(engine["steps"][0])
    assert set(answer["summary"]["ended"]) == set(engine["summary"]["ended"])


def test_a_typhoon_drill_ended_with_people_moved_says_who_is_still_away(
        client: TestClient, auth: Auth, rt: Runtime) -> None:
    """A real response is refused (409) while people are moved and not back, naming each
    community; a drill ends all the same, and its answer, timeline and 演练结束 notice say
    which communities its records still have away."""
    street = "maluan-commander"
    r = client.post("/api/runs", headers=auth(street), json={
        "playbook": "typhoon-633", "unit": "maluan", "params": {"name": "山竹（1822）"},
        "drill": {"kind": "桌面推演", "title": "台风防御推演"}})
    assert r.status_code == 201, r.text
    run_id = int(r.json()["id"])
    assert client.post(f"/api/runs/{run_id}/stage", headers=auth(street),
                       json={"stage": "severe"}).status_code == 200
    transfer = [s for s in run_steps(rt, run_id) if s.step_key == "transfer"][0]
    complete_answered(rt, transfer, people=120)
    drain_wakes(rt)
    r = client.post(f"/api/runs/{run_id}/complete", headers=auth(street))
    assert r.status_code == 200, r.text
    unit = rt.org.unit_name(transfer.unit_id)
    detail = "已填报“【橙色/红色预警】危险区人员转移”，未填报“【解除与灾后恢复】转移人员返回”"
    assert r.json()["people_away"] == [{"unit_id": transfer.unit_id, "unit_name": unit,
                                        "step": "return", "detail": detail}]
    [ended] = [e for e in r.json()["timeline"] if e["action"] == "run_completed"]
    assert ended["detail"]["people_away"] == r.json()["people_away"]
    told = [n for n in notices(rt, run_id) if n.kind == "ended"]
    assert told
    for n in told:
        assert f"按演练记录，仍有转移人员未返回：{unit}（{detail}）。" in n.body, n.body
