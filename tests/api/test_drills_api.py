"""Drills (演练) through the API on the shipped playbooks and the demo district: starting one
(`drill` on POST /api/runs), the mark it carries on the run, its tasks and the runs list, the
`drill` filter, what may not be drilled, a drill and a real response never held up by each
other, and the evaluation (GET/POST /api/runs/{id}/evaluation) with who may read and write it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from factories import SHIPPED_PLAYBOOKS
from fastapi.testclient import TestClient
from sqlmodel import select

from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.audit import AuditEvent
from models.clock import ManualClock
from models.db import read_session
from models.run import Run

Auth = Callable[[str], dict[str, str]]
COMMANDER = "wang-qiang"  # 王强, district commander
MANAGER = "sun-li"  # 孙丽, district manager (综合科)
DUTY = "pingshan-duty-1"  # 黄磊, writes the first report
GAS = {"location": "六和社区幸福里小区3栋", "grade": "一般"}
DRILL = {"kind": "桌面推演", "title": "2026年度燃气泄漏桌面推演"}


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo


def start(client: TestClient, auth: Auth, *, drill: dict[str, Any] | None = None,
          who: str = COMMANDER, **extra: Any) -> Any:
    body: dict[str, Any] = {"playbook": "gas-leak", "unit": "liuhe", "params": GAS, **extra}
    if drill is not None:
        body["drill"] = drill
    return client.post("/api/runs", json=body, headers=auth(who))


def test_a_drill_is_started_and_shown_as_one_everywhere(
        client: TestClient, auth: Auth, rt: Runtime) -> None:
    r = start(client, auth, drill=DRILL)
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["drill"] == {"kind": "桌面推演", "title": "2026年度燃气泄漏桌面推演",
                            "mark": "【演练】"}
    assert all(s["drill"] == run["drill"] for s in run["steps"])
    started = [e for e in run["timeline"] if e["action"] == "run_started"]
    assert started[0]["detail"]["drill"] == {"kind": "桌面推演", "title": DRILL["title"]}
    with read_session(rt.db) as session:
        row = session.get(Run, run["id"])
        assert row is not None and (row.drill_kind, row.drill_title) == (
            "桌面推演", DRILL["title"])
    # The duty officer's inbox and the task page say so too.
    inbox = client.get("/api/tasks", params={"mine": "true"}, headers=auth(DUTY)).json()
    mine = [t for t in inbox["data"] if t["run_id"] == run["id"]]
    assert mine and all(t["drill"]["kind"] == "桌面推演" for t in mine)
    task = client.get(f"/api/tasks/{mine[0]['id']}", headers=auth(DUTY)).json()
    assert task["drill"]["mark"] == "【演练】"


def test_a_real_run_carries_no_drill_mark(client: TestClient, auth: Auth) -> None:
    run = start(client, auth).json()
    assert run["drill"] is None and all(s["drill"] is None for s in run["steps"])
    inbox = client.get("/api/tasks", params={"mine": "true"}, headers=auth(DUTY)).json()
    assert all(t["drill"] is None for t in inbox["data"])
    assert "演练" not in str(client.get(f"/api/runs/{run['id']}", headers=auth(COMMANDER)).json())


def test_the_runs_list_filters_drills_and_shows_both_by_default(
        client: TestClient, auth: Auth) -> None:
    drill = start(client, auth, drill={"kind": "盲演"}).json()["id"]
    real = start(client, auth).json()["id"]
    both = client.get("/api/runs", headers=auth(COMMANDER)).json()
    assert {r["id"]: r["drill"] and r["drill"]["kind"] for r in both["data"]} == {
        drill: "盲演", real: None}
    only = client.get("/api/runs", params={"drill": "true"}, headers=auth(COMMANDER)).json()
    assert [r["id"] for r in only["data"]] == [drill] and only["count"] == 1
    none = client.get("/api/runs", params={"drill": "false"}, headers=auth(COMMANDER)).json()
    assert [r["id"] for r in none["data"]] == [real] and none["count"] == 1
    bad = client.get("/api/runs", params={"drill": "maybe"}, headers=auth(COMMANDER))
    assert bad.status_code == 422 and "drill" in bad.text


@pytest.mark.parametrize(("drill", "field"), [
    ({"kind": "演习"}, "drill.kind"),
    ({"kind": "桌面推演", "title": "长" * 121}, "drill.title"),
    ({"kind": "桌面推演", "who": "x"}, "drill"),
    ({}, "drill"),
])
def test_a_bad_drill_is_refused_naming_the_field_and_starts_nothing(
        client: TestClient, auth: Auth, rt: Runtime, drill: dict[str, Any], field: str) -> None:
    r = start(client, auth, drill=drill)
    assert r.status_code == 422, r.text
    assert field in r.text
    with read_session(rt.db) as session:
        assert session.exec(select(Run)).all() == []


def test_register_playbooks_and_campaigns_are_never_drills(
        client: TestClient, auth: Auth, rt: Runtime) -> None:
    hazard = client.post("/api/runs", headers=auth("liuhe-grid"), json={
        "playbook": "hazard-3030", "unit": "liuhe", "drill": {"kind": "桌面推演"},
        "params": {"location": "某厂房", "grade": "一般", "category": "消防安全",
                   "description": "安全出口堵塞"}})
    assert hazard.status_code == 422 and "不能演练" in hazard.text
    campaign = client.post("/api/runs", headers=auth("pingshan-street-commander"), json={
        "playbook": "campaign-3030", "unit": "pingshan-street", "drill": {"kind": "桌面推演"},
        "params": {}})
    assert campaign.status_code == 422 and "不能演练" in campaign.text
    with read_session(rt.db) as session:
        assert session.exec(select(Run)).all() == []


def test_only_who_may_start_the_playbook_may_start_its_drill(
        client: TestClient, auth: Auth) -> None:
    r = start(client, auth, drill=DRILL, who="liuhe-grid")
    assert r.status_code == 403


def test_a_drill_and_a_real_event_never_hold_each_other_up(
        client: TestClient, auth: Auth) -> None:
    drill = start(client, auth, drill=DRILL, refuse_concurrent=True)
    assert drill.status_code == 201
    # A real gas leak during the drill starts at once: the drill is not "already running".
    real = start(client, auth, refuse_concurrent=True)
    assert real.status_code == 201 and real.json()["concurrent"] == []
    # A second drill of the same response is asked about, as a second real one would be.
    again = start(client, auth, drill=DRILL, refuse_concurrent=True)
    assert again.status_code == 409
    assert [r["id"] for r in again.json()["runs"]] == [drill.json()["id"]]
    # Said as a drill: the commander must not read of a real gas leak "already running".
    assert again.json()["runs"][0]["drill"] is True
    detail = again.json()["detail"]
    assert f"“燃气泄漏模块化应急处置”演练：#{drill.json()['id']} 【演练】燃气泄漏" in detail
    assert "如确属另一场演练" in detail
    second = start(client, auth, refuse_concurrent=True)
    assert second.status_code == 409 and second.json()["runs"][0]["drill"] is False
    assert "演练" not in second.json()["detail"] and "如确属另一起事件" in second.json()["detail"]


def _task(client: TestClient, auth: Auth, run_id: int, step: str) -> dict[str, Any]:
    steps = client.get(f"/api/runs/{run_id}", headers=auth(COMMANDER)).json()["steps"]
    return next(s for s in steps if s["step"] == step and s["id"] is not None)


def test_the_evaluation_times_each_task_against_its_deadline(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    run_id = start(client, auth, drill=DRILL).json()["id"]
    receive = _task(client, auth, run_id, "receive")  # due 3 minutes from the alert
    assert client.post(f"/api/tasks/{receive['id']}/ack", headers=auth(DUTY)).status_code == 200
    clock.advance(timedelta(minutes=5))
    sweep_once(rt)  # the duty leader is told it is late (level 1)
    assert client.post(f"/api/tasks/{receive['id']}/complete", headers=auth(DUTY), json={
        "outputs": {"scene": "立管接口泄漏"}}).status_code == 200
    drain_wakes(rt)
    write = _task(client, auth, run_id, "report.write")  # the first report: 5 minutes
    clock.advance(timedelta(minutes=3))
    done = client.post(f"/api/tasks/{write['id']}/complete", headers=auth(DUTY), json={
        "outputs": {"enterprise": "深圳市燃气集团坪山分公司", "occurred_at": "2026-03-02 08:55",
                    "scene": "立管接口泄漏", "brief": "居民报警", "casualties": 0,
                    "missing": 0, "est_loss": "0.5", "measures": "已关阀"}})
    assert done.status_code == 200, done.text
    drain_wakes(rt)  # the first report goes to the county office at minute 8
    r = client.get(f"/api/runs/{run_id}/evaluation", headers=auth(MANAGER))
    assert r.status_code == 200, r.text
    ev = r.json()
    assert ev["heading"] == "演练评估报告" and ev["drill"]["kind"] == "桌面推演"
    rows = {s["step"]: s for s in ev["steps"]}
    late = rows["receive"]
    assert (late["outcome"], late["late_minutes"], late["taken_minutes"]) == ("late", 2, 5)
    assert late["acked_by_name"] == "黄磊" and late["finished_by_name"] == "黄磊"
    assert late["escalation_level"] == 1 and late["acked_at_local"]
    assert (rows["report.write"]["outcome"], rows["report.write"]["late_minutes"]) == (
        "late", 3)
    assert rows["report.send"]["outcome"] == "no_deadline"
    summary = ev["summary"]
    assert summary["late"] == 2 and summary["first_report_minutes"] == 8
    assert [d["late_minutes"] for d in summary["longest_delays"]][:2] == [3, 2]
    assert ev["report"].startswith("**【演练】演练文书，非真实事件**")
    assert "# 演练评估报告" in ev["report"] and "撰写突发事件首报" in ev["report"]
    assert "（尚未填写评估意见）" in ev["report"] and "演练文书" in ev["html"]


def test_a_drill_ended_by_cancelling_it_still_shows_what_it_missed(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    """A gas-leak drill has no last stage to end: the commander cancels it when the exercise
    is over. Its tasks still open past their deadlines were missed (未完成, how late by the
    end), not 已撤销; those whose deadline had not come were not owed."""
    run_id = start(client, auth, drill=DRILL).json()["id"]
    receive = _task(client, auth, run_id, "receive")
    clock.advance(timedelta(minutes=1))
    assert client.post(f"/api/tasks/{receive['id']}/complete", headers=auth(DUTY), json={
        "outputs": {"scene": "立管接口泄漏"}}).status_code == 200
    drain_wakes(rt)
    clock.advance(timedelta(minutes=6))  # the first report (5 minutes) never written
    ended = client.post(f"/api/runs/{run_id}/cancel", headers=auth(COMMANDER),
                        json={"reason": "演练结束"})
    assert ended.status_code == 200, ended.text
    ev = client.get(f"/api/runs/{run_id}/evaluation", headers=auth(MANAGER)).json()
    rows = {s["step"]: s for s in ev["steps"]}
    assert rows["receive"]["outcome"] == "on_time"
    assert (rows["report.write"]["outcome"], rows["report.write"]["late_minutes"]) == (
        "missed", 2)
    assert rows["report.write"]["outcome_zh"] == "未完成"
    assert rows["verify"]["outcome"] == "called_off"  # 15 minutes: not yet owed
    assert ev["summary"]["missed"] == sum(s["outcome"] == "missed" for s in ev["steps"]) >= 1
    assert "未完成：0 项" not in ev["report"]


def test_an_assessment_is_a_new_event_each_time_never_an_edit(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    run_id = start(client, auth, drill=DRILL).json()["id"]
    first = client.post(f"/api/runs/{run_id}/evaluation", headers=auth(MANAGER),
                        json={"assessment": "一、首报超时3分钟。\n二、建议值班员熟悉模板。"})
    assert first.status_code == 200, first.text
    assert "一、首报超时3分钟。" in first.json()["report"]
    assert "二、建议值班员熟悉模板。" in first.json()["report"]
    clock.advance(timedelta(minutes=1))
    second = client.post(f"/api/runs/{run_id}/evaluation", headers=auth(COMMANDER),
                         json={"assessment": "补充：疏散组到场偏慢。"})
    ev = second.json()
    assert ev["assessment"]["assessment"] == "补充：疏散组到场偏慢。"
    assert ev["assessment"]["by_name"] == "王强"
    assert [a["assessment"] for a in ev["assessments"]] == [
        "一、首报超时3分钟。\n二、建议值班员熟悉模板。", "补充：疏散组到场偏慢。"]
    with read_session(rt.db) as session:
        events = session.exec(select(AuditEvent).where(
            AuditEvent.run_id == run_id, AuditEvent.action == "evaluation_assessed")).all()
    assert [e.actor for e in events] == [MANAGER, COMMANDER]
    timeline = client.get(f"/api/runs/{run_id}", headers=auth(COMMANDER)).json()["timeline"]
    assert [e["action_name"] for e in timeline if e["action"] == "evaluation_assessed"] == [
        "填写评估意见（问题与整改建议）"] * 2


def test_a_real_event_has_the_same_view_as_a_review(client: TestClient, auth: Auth) -> None:
    run_id = start(client, auth).json()["id"]
    ev = client.get(f"/api/runs/{run_id}/evaluation", headers=auth(COMMANDER)).json()
    assert ev["heading"] == "复盘报告" and ev["drill"] is None
    assert "演练" not in ev["report"]
    # Refused, it is still called a 复盘, not a drill's 演练评估.
    refused = client.get(f"/api/runs/{run_id}/evaluation", headers=auth(DUTY))
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("复盘由六和社区") and "演练" not in refused.text
    drill_id = start(client, auth, drill=DRILL).json()["id"]
    refused = client.get(f"/api/runs/{drill_id}/evaluation", headers=auth(DUTY))
    assert refused.json()["detail"].startswith("演练评估由六和社区")


def test_a_drills_documents_are_headed_as_a_drills(
        client: TestClient, auth: Auth, rt: Runtime) -> None:
    """The document page's heading and tab title, and the run page's list, read `heading`: a
    drill's 首报 must not be headed 突发事件首报 alone, like a real one."""
    drill_id = start(client, auth, drill=DRILL).json()["id"]
    real_id = start(client, auth).json()["id"]
    for run_id in (drill_id, real_id):
        receive = _task(client, auth, run_id, "receive")
        assert client.post(f"/api/tasks/{receive['id']}/complete", headers=auth(DUTY), json={
            "outputs": {"scene": "立管接口泄漏"}}).status_code == 200
        drain_wakes(rt)
        write = _task(client, auth, run_id, "report.write")
        assert client.post(f"/api/tasks/{write['id']}/complete", headers=auth(DUTY), json={
            "outputs": {"scene": "立管接口泄漏", "casualties": 0, "missing": 0}}
            ).status_code == 200
        drain_wakes(rt)
    docs = {run_id: client.get(f"/api/runs/{run_id}/documents", headers=auth(COMMANDER)
                               ).json()["data"] for run_id in (drill_id, real_id)}
    assert [d["heading"] for d in docs[drill_id]] == ["【演练】突发事件首报"]
    assert [d["heading"] for d in docs[real_id]] == ["突发事件首报"]


@pytest.mark.parametrize("body", [{"assessment": "  "}, {"assessment": "长" * 4001},
                                  {"assessment": 3}, {}])
def test_a_bad_assessment_is_refused_and_writes_nothing(
        client: TestClient, auth: Auth, rt: Runtime, body: dict[str, Any]) -> None:
    run_id = start(client, auth, drill=DRILL).json()["id"]
    r = client.post(f"/api/runs/{run_id}/evaluation", headers=auth(MANAGER), json=body)
    assert r.status_code == 422 and "assessment" in r.text
    with read_session(rt.db) as session:
        assert session.exec(select(AuditEvent).where(
            AuditEvent.action == "evaluation_assessed")).all() == []


def test_only_commanders_and_managers_evaluate(client: TestClient, auth: Auth) -> None:
    run_id = start(client, auth, drill=DRILL).json()["id"]
    for person in (DUTY, "liuhe-grid"):
        assert client.get(f"/api/runs/{run_id}/evaluation", headers=auth(person)
                          ).status_code == 403
        assert client.post(f"/api/runs/{run_id}/evaluation", headers=auth(person),
                           json={"assessment": "好"}).status_code == 403
    # A commander of another street reads no run of this one.
    assert client.get(f"/api/runs/{run_id}/evaluation", headers=auth("maluan-commander")
                      ).status_code == 403
    assert client.get("/api/runs/999/evaluation", headers=auth(COMMANDER)).status_code == 404


def test_imported_hazards_are_never_drills(client: TestClient, auth: Auth, rt: Runtime,
                                          clock: ManualClock) -> None:
    clock.set(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))  # after the sample's finding times
    sample = SHIPPED_PLAYBOOKS / "samples" / "隐患清单示例.csv"
    r = client.post("/api/hazards/import", headers=auth(MANAGER),
                    files={"file": (sample.name, sample.read_bytes(), "text/csv")})
    assert r.status_code == 201, r.text
    with read_session(rt.db) as session:
        kinds = session.exec(select(Run.drill_kind)).all()
    assert kinds and set(kinds) == {None}
    drills = client.get("/api/runs", params={"drill": "true"}, headers=auth(MANAGER)).json()
    assert drills["count"] == 0
