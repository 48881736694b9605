"""GET /api/me: who the pages are drawn for, and the server's clock they count down from."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from flows.runtime import Runtime
from models.clock import ManualClock


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo


def test_an_inspector_sees_their_unit_and_below_and_what_they_may_start(
        client: TestClient, auth, clock: ManualClock) -> None:
    who = client.get("/api/me", headers=auth("pingshan-street-inspector-1")).json()
    assert (who["id"], who["name"], who["unit_id"], who["unit_type"]) == (
        "pingshan-street-inspector-1", "邓思远", "pingshan-street", "street")
    assert who["roles"] == [{"role": "inspector", "name": "检查员"}]
    assert who["commander"] is False and who["admin"] is False and who["manager"] is False
    assert who["publisher"] is False
    units = [u["id"] for u in who["units"]]
    assert units[0] == "pingshan-street" and "liuhe" in units and "pingshan" not in units
    assert [p["id"] for p in who["startable"]] == ["hazard-3030"]
    assert who["now"].startswith(clock.now().strftime("%Y-%m-%dT%H:%M"))
    assert who["now_local"] == "2026-03-02 09:00:00"
    assert who["timezone"] == "Asia/Shanghai"
    assert who["max_evidence_bytes"] == 20 * 1024 * 1024  # the page checks a photo against it


def test_a_commander_may_start_every_playbook_and_an_admin_sees_the_whole_chart(
        client: TestClient, auth, demo: Runtime) -> None:
    commander = client.get("/api/me", headers=auth("wang-qiang")).json()
    assert commander["commander"] is True
    assert {p["id"] for p in commander["startable"]} == set(demo.catalog.current)
    # Emergencies first: the start page preselects the first, and at 3 a.m. it is a leak.
    assert [p["id"] for p in commander["startable"]] == [
        "gas-leak", "hotspot-check", "typhoon-633", "campaign-3030", "hazard-3030",
        "roll-call"]
    admin = client.get("/api/me", headers=auth("pingshan-admin")).json()
    assert admin["admin"] is True and admin["manager"] is True
    manager = client.get("/api/me", headers=auth("sun-li")).json()
    assert (manager["manager"], manager["commander"]) == (True, False)
    assert manager["publisher"] is True  # the district's manager publishes the ranking
    assert len(admin["units"]) == len(demo.org.units)


def test_no_token_is_a_401(client: TestClient) -> None:
    r = client.get("/api/me")
    assert r.status_code == 401
    assert "令牌" in r.json()["detail"]


def test_the_register_vocabulary_is_what_the_filters_accept(client: TestClient, auth) -> None:
    headers = auth("sun-li")
    known = client.get("/api/registers/vocabulary", headers=headers).json()
    assert known["statuses"][:2] == ["open", "closed"] and "整改中" in known["statuses"]
    assert set(known["grades"]) == {"一般", "重大"}
    assert "群众举报" in known["sources"]
    assert known["risk_levels"] == ["重大", "较大", "一般", "低"]
    # Every value the pages offer is one the lists take (and one they don't is refused).
    for field, values in (("status", known["statuses"]), ("grade", known["grades"]),
                          ("source", known["sources"])):
        for value in values:
            r = client.get("/api/hazards", params={field: value}, headers=headers)
            assert r.status_code == 200, (field, value, r.text)
        assert client.get("/api/hazards", params={field: "没有这个"},
                          headers=headers).status_code == 422
    for level in known["risk_levels"]:
        assert client.get("/api/risks", params={"level": level},
                          headers=headers).status_code == 200


def test_views_name_roles_and_notification_recipients_as_people_read_them(
        client: TestClient, auth) -> None:
    headers = auth("wang-qiang")
    run = client.post("/api/runs", headers=headers, json={
        "playbook": "gas-leak", "unit": "liuhe",
        "params": {"location": "六和社区某小区3栋", "grade": "一般"}}).json()
    receive = next(s for s in run["steps"] if s["step"] == "receive")
    assert (receive["role"], receive["role_name"]) == ("duty_officer", "值班员")
    pending = next(s for s in run["steps"] if s["id"] is None and s["role"])
    assert pending["role_name"] and pending["role_name"] != pending["role"]
    notes = client.get(f"/api/runs/{run['id']}/notifications", headers=headers).json()["data"]
    assert notes, "the duty room is told of its new task"
    names = {n["recipient"]: n["recipient_name"] for n in notes}
    assert names.get("pingshan-duty-1") == "黄磊"
    # An inbox card names its run without fetching it; so does a task read on its own.
    inbox = client.get("/api/tasks?mine=true", headers=auth("pingshan-duty-1")).json()["data"]
    assert inbox and {t["run_title"] for t in inbox} == {run["title"]}
    one = client.get(f"/api/tasks/{inbox[0]['id']}", headers=auth("pingshan-duty-1")).json()
    assert one["run_title"] == run["title"]


def test_who_is_on_duty_in_the_duty_room_is_named_with_the_end_of_the_shift(
        client: TestClient, auth, clock: ManualClock) -> None:
    """The demo rosters the district's three duty officers from 2026-01-01, changing at
    08:30: on 03-02 at 09:00 it is 黄磊's turn (60 days on, 60 % 3 == 0) until 03-03 08:30."""
    commander = client.get("/api/me", headers=auth("wang-qiang")).json()
    assert commander["on_duty"] == [{
        "unit_id": "pingshan", "unit_name": "坪山区", "role": "duty_officer",
        "role_name": "值班员", "person": "pingshan-duty-1", "person_name": "黄磊",
        "swapped": False, "until": "2026-03-03T00:30:00Z", "until_local": "03-03 08:30",
    }]
    # A street's inspector is served by the district's duty room too.
    inspector = client.get("/api/me", headers=auth("pingshan-street-inspector-1")).json()
    assert [s["person_name"] for s in inspector["on_duty"]] == ["黄磊"]
    clock.advance(timedelta(days=1, minutes=-30))  # 03-03 08:30: the shift changes
    after = client.get("/api/me", headers=auth("wang-qiang")).json()["on_duty"]
    assert [(s["person_name"], s["until_local"]) for s in after] == [("吴静", "03-04 08:30")]
