"""The HTTP API (SPEC §5) through FastAPI's TestClient on a real SQLite runtime with a movable
clock: starting and listing runs, who may see and do what (§3), the task actions and their
errors, evidence, stages, playbooks, the inbox, and that no request ever answers 500.

Every response passes through a hook that fails the test on a 5xx, so each test below also
checks "never a 500 for bad input" for every request it makes."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from factories import pdf_bytes, png_bytes, small_org_without_c2
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.auth import make_token
from api.main import create_app
from flows import lifecycle
from flows.runtime import Runtime
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import create_schema

Json = dict[str, Any]
Auth = Callable[[str], dict[str, str]]
SHANGHAI = ZoneInfo("Asia/Shanghai")


# --- helpers -------------------------------------------------------------------------------

def start(client: TestClient, auth: Auth, *, playbook: str = "quick-escalation",
          unit: str = "c1", params: Json | None = None, who: str = "s1-commander") -> Json:
    if params is None:
        params = {"location": "一社区3号楼"} if playbook == "quick-escalation" else {}
    r = client.post("/api/runs", json={"playbook": playbook, "unit": unit, "params": params},
                    headers=auth(who))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def run_of(client: TestClient, auth: Auth, run_id: int) -> Json:
    r = client.get(f"/api/runs/{run_id}", headers=auth("d1-admin"))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def task(client: TestClient, auth: Auth, run_id: int, key: str) -> Json:
    found = [s for s in run_of(client, auth, run_id)["steps"] if s["step"] == key]
    assert len(found) == 1, found
    return found[0]


def act(client: TestClient, auth: Auth, task_id: int, action: str, who: str,
        body: Json | None = None) -> httpx.Response:
    return client.post(f"/api/tasks/{task_id}/{action}", json=body, headers=auth(who))


def upload(client: TestClient, auth: Auth, who: str, data: bytes | None = None,
           name: str = "site.png", kind: str = "image/png") -> httpx.Response:
    return client.post("/api/evidence", files={"file": (name, data or png_bytes(), kind)},
                       headers=auth(who))


def receive_done(client: TestClient, auth: Auth, run_id: int) -> Json:
    """Complete the first step (duty officer) so the grid worker's inspection is ready."""
    r = act(client, auth, task(client, auth, run_id, "receive")["id"], "complete", "s1-duty",
            {"note": "已登记"})
    assert r.status_code == 200, r.text
    return task(client, auth, run_id, "inspect")


def submitted_inspection(client: TestClient, auth: Auth, run_id: int, who: str = "c1-grid"
                         ) -> Json:
    inspect = receive_done(client, auth, run_id)
    evidence = upload(client, auth, who).json()["id"]
    r = act(client, auth, inspect["id"], "complete", who,
            {"note": "阀门已关闭", "evidence": [evidence]})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def error_field(r: httpx.Response) -> str:
    assert r.status_code == 422, r.text
    return r.json()["field"]  # type: ignore[no-any-return]


def ids(page: Json) -> list[int]:
    return [item["id"] for item in page["data"]]


# --- starting runs -------------------------------------------------------------------------

def test_start_run_returns_201_with_steps_assignees_and_due(
    client: TestClient, auth: Auth, clock: ManualClock
) -> None:
    run = start(client, auth)
    assert run["status"] == "running" and run["playbook"] == "quick-escalation"
    assert run["unit_id"] == "c1" and run["unit_name"] == "一社区"
    assert run["started_by"] == "s1-commander"
    steps = {s["step"]: s for s in run["steps"]}
    assert list(steps) == ["receive", "inspect", "report", "record"]
    receive = steps["receive"]
    assert receive["status"] == "ready"
    assert [(p["id"], p["name"]) for p in receive["assignees"]] == [("s1-duty", "一街道值班员")]
    assert datetime.fromisoformat(receive["due_at"]) == clock.now() + timedelta(seconds=2)
    assert receive["due_at_local"] == "2026-03-02 09:00"
    assert steps["inspect"]["status"] == "pending" and steps["inspect"]["due_at"] is None


@pytest.mark.parametrize("header", [
    None,
    "Bearer junk",
    "Bearer cl1.czEtY29tbWFuZGVy.AAAA",
    "Basic czEtY29tbWFuZGVyOng=",
])
def test_start_run_without_a_valid_token_is_401(client: TestClient,
                                                 header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    r = client.post("/api/runs", json={"playbook": "quick-escalation", "unit": "c1",
                                       "params": {"location": "x"}}, headers=headers)
    assert r.status_code == 401
    assert r.json()["detail"]


def test_token_signed_with_another_secret_or_for_a_stranger_is_401(client: TestClient) -> None:
    for token in (make_token("s1-commander", "not-the-secret"),
                  make_token("nobody-here", "test-secret")):
        r = client.get("/api/runs", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"


def test_start_run_by_commander_of_another_street_is_403_with_reason(
    client: TestClient, auth: Auth
) -> None:
    r = client.post("/api/runs", json={"playbook": "quick-escalation", "unit": "c1",
                                       "params": {"location": "x"}},
                    headers=auth("s2-commander"))
    assert r.status_code == 403
    assert "commander" in r.json()["detail"] and "c1" in r.json()["detail"]


def test_start_run_by_a_person_without_commander_right_is_403(
    client: TestClient, auth: Auth
) -> None:
    r = client.post("/api/runs", json={"playbook": "quick-escalation", "unit": "c1",
                                       "params": {"location": "x"}}, headers=auth("c1-grid"))
    assert r.status_code == 403


@pytest.mark.parametrize(("body", "field"), [
    ({"playbook": "no-such-book", "unit": "c1", "params": {"location": "x"}}, "playbook"),
    ({"playbook": "quick-escalation", "unit": "atlantis", "params": {"location": "x"}}, "unit"),
    ({"playbook": "quick-escalation", "unit": "c1", "params": {}}, "params.location"),
    ({"playbook": "branching", "unit": "s1", "params": {"grade": "巨大"}}, "params.grade"),
    ({"playbook": "quick-escalation", "unit": "c1", "params": {"location": "x"}, "urgent": True},
     "urgent"),
    ({"playbook": "quick-escalation", "unit": "c1", "params": {"location": "x", "floor": 3}},
     "params.floor"),
    ({"playbook": "quick-escalation", "unit": "c1", "params": {"location": {"a": 1}}},
     "params.location"),
    ({"unit": "c1", "params": {}}, "playbook"),
    ({"playbook": 7, "unit": "c1", "params": {}}, "playbook"),
    ({"playbook": "quick-escalation", "unit": "c1", "params": "location=x"}, "params"),
])
def test_start_run_with_invalid_input_is_422_naming_the_field(
    client: TestClient, auth: Auth, body: Json, field: str
) -> None:
    r = client.post("/api/runs", json=body, headers=auth("s1-commander"))
    assert error_field(r) == field
    assert r.json()["detail"].startswith(field)


# --- not found -----------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "body"), [
    ("get", "/api/runs/9999", None),
    ("post", "/api/runs/9999/cancel", None),
    ("post", "/api/runs/9999/stage", {"stage": "warning"}),
    ("get", "/api/tasks/9999", None),
    ("post", "/api/tasks/9999/ack", None),
    ("post", "/api/tasks/9999/complete", {}),
    ("post", "/api/tasks/9999/verify", {"approve": True}),
    ("post", "/api/tasks/9999/extend", {"due_at": "2030-01-01T00:00:00+08:00", "reason": "x"}),
    ("post", "/api/tasks/9999/reassign", {"person": "s1-duty"}),
    ("get", "/api/evidence/0123456789abcdef", None),
    ("get", "/api/playbooks/no-such-book", None),
])
def test_unknown_run_task_evidence_or_playbook_is_404(
    client: TestClient, auth: Auth, method: str, path: str, body: Json | None
) -> None:
    r = client.request(method, path, json=body, headers=auth("d1-admin"))
    assert r.status_code == 404, r.text
    assert r.json()["error"] == "not_found"


# --- listing runs --------------------------------------------------------------------------

@pytest.fixture
def three_runs(client: TestClient, auth: Auth, clock: ManualClock) -> list[int]:
    """quick-escalation at c1 (t0), branching at s1 (t0+1h), quick-escalation at c2 (t0+2h,
    cancelled)."""
    first = start(client, auth)["id"]
    clock.advance(timedelta(hours=1))
    second = start(client, auth, playbook="branching", unit="s1")["id"]
    clock.advance(timedelta(hours=1))
    third = start(client, auth, unit="c2")["id"]
    r = client.post(f"/api/runs/{third}/cancel", json={"reason": "误报"},
                    headers=auth("s1-commander"))
    assert r.status_code == 200
    return [first, second, third]


def test_list_runs_filters_by_playbook_status_and_unit(
    client: TestClient, auth: Auth, three_runs: list[int]
) -> None:
    first, second, third = three_runs
    me = auth("d1-manager")

    def listed(**query: Any) -> list[int]:
        r = client.get("/api/runs", params=query, headers=me)
        assert r.status_code == 200, r.text
        return ids(r.json())

    assert listed() == [third, second, first]  # newest first
    assert listed(playbook="quick-escalation") == [third, first]
    assert listed(playbook="branching") == [second]
    assert listed(status="cancelled") == [third]
    assert listed(status="running") == [second, first]
    assert listed(status="completed") == []
    assert listed(unit="c1") == [first]
    assert listed(unit="s1") == [third, second, first]  # a unit and the units below it
    assert listed(unit="s2") == []
    assert listed(playbook="quick-escalation", status="running", unit="s1") == [first]


def test_list_runs_filters_by_since_and_until(
    client: TestClient, auth: Auth, three_runs: list[int], clock: ManualClock
) -> None:
    first, second, third = three_runs
    t0 = clock.now() - timedelta(hours=2)
    me = auth("d1-manager")

    def listed(**query: datetime) -> list[int]:
        r = client.get("/api/runs", params={k: v.isoformat() for k, v in query.items()},
                       headers=me)
        assert r.status_code == 200, r.text
        return ids(r.json())

    assert listed(since=t0 + timedelta(minutes=30)) == [third, second]
    assert listed(until=t0 + timedelta(minutes=90)) == [second, first]
    assert listed(since=t0 + timedelta(minutes=30),
                  until=t0 + timedelta(minutes=90)) == [second]
    assert listed(since=t0) == [third, second, first]  # since is inclusive
    assert listed(until=t0) == []  # until is exclusive
    # A time in the bureau's zone means the same instant.
    shanghai = (t0 + timedelta(minutes=30)).astimezone(SHANGHAI)
    assert listed(since=shanghai) == [third, second]


def test_list_runs_pages_with_count_limit_and_offset(
    client: TestClient, auth: Auth, three_runs: list[int]
) -> None:
    first, second, third = three_runs
    me = auth("d1-manager")
    page = client.get("/api/runs", params={"limit": 2}, headers=me).json()
    assert page["count"] == 3 and page["limit"] == 2 and page["offset"] == 0
    assert ids(page) == [third, second]
    page = client.get("/api/runs", params={"limit": 2, "offset": 2}, headers=me).json()
    assert page["count"] == 3 and page["offset"] == 2 and ids(page) == [first]
    page = client.get("/api/runs", params={"offset": 10}, headers=me).json()
    assert page["count"] == 3 and page["data"] == []


@pytest.mark.parametrize(("query", "field"), [
    ({"status": "finished"}, "status"),
    ({"unit": "atlantis"}, "unit"),
    ({"limit": 0}, "limit"),
    ({"limit": 501}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"offset": -1}, "offset"),
    ({"since": "yesterday"}, "since"),
    ({"until": "2026-13-45"}, "until"),
    ({"since": "0001-01-01"}, "since"),  # converting it to UTC overflowed: a 500 before
    ({"until": "9999-12-31T23:59:59-12:00"}, "until"),
    ({"since": "2027-01-01", "until": "2026-01-01"}, "until"),  # swapped: not "no runs"
])
def test_list_runs_with_bad_filter_is_422_naming_it(
    client: TestClient, auth: Auth, query: Json, field: str
) -> None:
    r = client.get("/api/runs", params=query, headers=auth("d1-manager"))
    assert error_field(r) == field


def test_person_of_another_street_neither_lists_nor_reads_the_run(
    client: TestClient, auth: Auth, three_runs: list[int]
) -> None:
    first, second, third = three_runs
    page = client.get("/api/runs", headers=auth("s2-insp")).json()
    assert page["count"] == 0 and page["data"] == []
    r = client.get(f"/api/runs/{first}", headers=auth("s2-insp"))
    assert r.status_code == 403
    assert "c1" in r.json()["detail"]
    tasks = client.get("/api/tasks", headers=auth("s2-insp")).json()
    assert tasks["count"] == 0
    receive = task(client, auth, first, "receive")
    assert client.get(f"/api/tasks/{receive['id']}", headers=auth("s2-insp")).status_code == 403


def test_district_manager_sees_every_run_below_the_district(
    client: TestClient, auth: Auth, three_runs: list[int]
) -> None:
    first, second, third = three_runs
    page = client.get("/api/runs", headers=auth("d1-manager")).json()
    assert page["count"] == 3
    r = client.get(f"/api/runs/{first}", headers=auth("d1-manager"))
    assert r.status_code == 200 and r.json()["id"] == first


def test_community_worker_sees_own_community_and_street_runs_not_the_neighbours(
    client: TestClient, auth: Auth, three_runs: list[int]
) -> None:
    first, second, third = three_runs
    page = client.get("/api/runs", headers=auth("c1-grid")).json()
    assert ids(page) == [second, first]
    assert client.get(f"/api/runs/{third}", headers=auth("c1-grid")).status_code == 403


# --- reading a run ---------------------------------------------------------------------------

def test_read_run_has_steps_escalations_and_timeline(
    client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock
) -> None:
    run_id = start(client, auth)["id"]
    clock.advance(timedelta(seconds=15))  # due at 2 s; level 1 at due, level 2 at due + 10 s
    sweep_once(rt)
    run = client.get(f"/api/runs/{run_id}", headers=auth("s1-commander")).json()
    assert [s["step"] for s in run["steps"]] == ["receive", "inspect", "report", "record"]
    receive = run["steps"][0]
    assert receive["overdue"] is True and receive["escalation_level"] == 2
    assert [(e["step"], e["kind"], e["level"], e["repeat"]) for e in run["escalations"]] == [
        ("receive", "escalate", 1, 0), ("receive", "escalate", 2, 0)]
    level1 = run["escalations"][0]
    assert sorted(level1["recipients"]) == ["d1-chief", "duty"]
    assert datetime.fromisoformat(level1["scheduled_at"]) == (
        datetime.fromisoformat(receive["due_at"]))
    actions = [e["action"] for e in run["timeline"]]
    assert actions[0] == "run_started"
    assert actions.count("escalate") == 2 and "overdue" in actions
    started = run["timeline"][0]
    assert started["actor"] == "s1-commander" and started["to_state"] == "running"
    assert started["at_local"] == "2026-03-02 09:00:00"
    ids_in_order = [e["id"] for e in run["timeline"]]
    assert ids_in_order == sorted(ids_in_order)


def test_timeline_records_who_moved_a_task_from_which_state(
    client: TestClient, auth: Auth
) -> None:
    run_id = start(client, auth)["id"]
    receive = task(client, auth, run_id, "receive")
    act(client, auth, receive["id"], "ack", "s1-duty")
    act(client, auth, receive["id"], "complete", "s1-duty", {"note": "已登记"})
    events = [(e["actor"], e["action"], e["from_state"], e["to_state"])
              for e in run_of(client, auth, run_id)["timeline"] if e["step_id"] == receive["id"]]
    assert ("s1-duty", "acked", "ready", "acked") in events
    assert ("s1-duty", "done", "acked", "done") in events


# --- listing tasks ---------------------------------------------------------------------------

def test_my_tasks_shows_only_the_callers_task(client: TestClient, auth: Auth) -> None:
    here = start(client, auth)["id"]
    there = start(client, auth, unit="c2")["id"]
    inspect_here = receive_done(client, auth, here)
    inspect_there = receive_done(client, auth, there)
    assert [(p["id"], p["name"]) for p in inspect_there["assignees"]] == [
        ("c2-grid", "二社区网格员")]
    mine = client.get("/api/tasks", params={"mine": "true"}, headers=auth("c1-grid")).json()
    assert ids(mine) == [inspect_here["id"]] and mine["count"] == 1
    assert [(p["id"], p["name"]) for p in mine["data"][0]["assignees"]] == [
        ("c1-grid", "一社区网格员")]
    theirs = client.get("/api/tasks", params={"mine": "true"}, headers=auth("c2-grid")).json()
    assert ids(theirs) == [inspect_there["id"]]


def test_my_tasks_is_empty_for_an_inspector_of_another_street(
    client: TestClient, auth: Auth
) -> None:
    run_id = start(client, auth)["id"]
    receive_done(client, auth, run_id)
    mine = client.get("/api/tasks", params={"mine": "true"}, headers=auth("s2-insp")).json()
    assert mine["count"] == 0 and mine["data"] == []


def test_my_tasks_follows_a_reassignment(client: TestClient, auth: Auth) -> None:
    run_id = start(client, auth)["id"]
    receive = task(client, auth, run_id, "receive")
    r = act(client, auth, receive["id"], "reassign", "s1-commander", {"person": "s1-insp2"})
    assert r.status_code == 200
    mine = client.get("/api/tasks", params={"mine": "true"}, headers=auth("s1-insp2")).json()
    assert ids(mine) == [receive["id"]]
    duty = client.get("/api/tasks", params={"mine": "true"}, headers=auth("s1-duty")).json()
    assert duty["count"] == 0


def test_list_tasks_status_filter(client: TestClient, auth: Auth) -> None:
    run_id = start(client, auth)["id"]
    inspect = receive_done(client, auth, run_id)
    receive = task(client, auth, run_id, "receive")
    me = auth("s1-commander")

    def listed(status: str) -> list[int]:
        r = client.get("/api/tasks", params={"status": status, "run": run_id}, headers=me)
        assert r.status_code == 200, r.text
        return ids(r.json())

    assert listed("open") == [inspect["id"]]
    assert listed("done") == [receive["id"]]
    assert listed("ready") == [inspect["id"]]
    assert sorted(listed("done,ready")) == sorted([receive["id"], inspect["id"]])
    assert listed("submitted") == []
    submitted_id = act(client, auth, inspect["id"], "complete", "c1-grid", {
        "note": "ok", "evidence": [upload(client, auth, "c1-grid").json()["id"]]}).json()["id"]
    assert listed("open") == [submitted_id]  # submitted still needs a person: the verifier
    assert listed("submitted") == [submitted_id]
    r = client.get("/api/tasks", params={"status": "finished"}, headers=me)
    assert error_field(r) == "status"


def test_list_tasks_overdue_filter_after_the_deadline_and_a_sweep(
    client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock
) -> None:
    run_id = start(client, auth)["id"]
    receive = task(client, auth, run_id, "receive")
    me = auth("s1-commander")

    def listed(overdue: bool) -> list[int]:
        r = client.get("/api/tasks", params={"overdue": str(overdue).lower(), "run": run_id,
                                              "status": "open"}, headers=me)
        return ids(r.json())

    assert listed(True) == []
    assert listed(False) == [receive["id"]]
    clock.advance(timedelta(seconds=3))
    assert listed(True) == []  # nothing is overdue until the sweeper has looked
    sweep_once(rt)
    assert listed(True) == [receive["id"]]
    assert listed(False) == []
    got = client.get(f"/api/tasks/{receive['id']}", headers=me).json()
    assert got["overdue"] is True and got["escalation_level"] == 1


def test_list_tasks_by_unit_and_run_with_paging(client: TestClient, auth: Auth) -> None:
    here = start(client, auth)["id"]
    there = start(client, auth, unit="c2")["id"]
    me = auth("d1-manager")
    by_unit = client.get("/api/tasks", params={"unit": "c2"}, headers=me).json()
    assert {t["run_id"] for t in by_unit["data"]} == {there}
    by_run = client.get("/api/tasks", params={"run": here}, headers=me).json()
    assert {t["run_id"] for t in by_run["data"]} == {here}
    assert {t["action"] for t in by_run["data"]} == {"task"}  # people's tasks only
    page = client.get("/api/tasks", params={"limit": 1}, headers=me).json()
    assert page["count"] == 2 and len(page["data"]) == 1  # one reached task per run
    rest = client.get("/api/tasks", params={"limit": 1, "offset": 1}, headers=me).json()
    assert ids(rest) != ids(page)
    assert error_field(client.get("/api/tasks", params={"unit": "x"}, headers=me)) == "unit"


# --- acknowledging and completing ------------------------------------------------------------

def test_second_ack_by_the_same_person_is_200_and_ack_of_a_done_task_is_409(
    client: TestClient, auth: Auth, clock: ManualClock
) -> None:
    run_id = start(client, auth)["id"]
    receive = task(client, auth, run_id, "receive")
    r = act(client, auth, receive["id"], "ack", "s1-duty")
    assert r.status_code == 200
    assert r.json()["status"] == "acked"
    acked_at = r.json()["acked_at"]
    assert datetime.fromisoformat(acked_at) == clock.now()
    clock.advance(timedelta(seconds=1))
    # A retried request or a second tap: the same answer, no second event, the first time kept.
    again = act(client, auth, receive["id"], "ack", "s1-duty")
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "acked" and again.json()["acked_at"] == acked_at
    timeline = run_of(client, auth, run_id)["timeline"]
    assert [e["action"] for e in timeline].count("acked") == 1
    assert act(client, auth, receive["id"], "complete", "s1-duty", {}).status_code == 200
    done = act(client, auth, receive["id"], "ack", "s1-duty")
    assert done.status_code == 409
    assert done.json()["current"] == "done" and "已完成" in done.json()["detail"]


def test_complete_then_completing_the_done_task_is_409(client: TestClient, auth: Auth) -> None:
    receive = start(client, auth)["steps"][0]
    r = act(client, auth, receive["id"], "complete", "s1-duty",
            {"note": "已登记", "outputs": {"caller": "张先生"}})
    assert r.status_code == 200
    done = r.json()
    assert done["status"] == "done" and done["submitted_by"] == "s1-duty"
    assert done["note"] == "已登记" and done["outputs"] == {"caller": "张先生"}
    again = act(client, auth, receive["id"], "complete", "s1-duty", {"note": "again"})
    assert again.status_code == 409
    assert again.json()["error"] == "conflict" and again.json()["current"] == "done"


def test_completing_an_automatic_step_is_refused(client: TestClient, auth: Auth) -> None:
    run_id = start(client, auth)["id"]
    assert task(client, auth, run_id, "report")["id"] is None  # not reached: no instance yet
    inspect = submitted_inspection(client, auth, run_id)
    assert act(client, auth, inspect["id"], "verify", "s1-insp1",
               {"approve": True}).status_code == 200
    report = task(client, auth, run_id, "report")
    assert report["status"] == "ready"  # waiting for a segment (none run in this app)
    r = act(client, auth, report["id"], "complete", "d1-admin", {})
    assert r.status_code in (403, 409)  # nobody is assigned; the engine completes it
    assert task(client, auth, run_id, "report")["status"] == "ready"


def test_acting_on_another_units_task_is_403(client: TestClient, auth: Auth) -> None:
    run_id = start(client, auth)["id"]
    inspect = receive_done(client, auth, run_id)
    for who, action, body in [
        ("c2-grid", "complete", {"note": "x"}),
        ("s2-insp", "ack", None),
        ("c2-grid", "ack", None),
        ("s2-commander", "reassign", {"person": "s2-insp"}),
        ("s2-commander", "extend", {"due_at": "2030-01-01T08:00:00+08:00", "reason": "x"}),
    ]:
        r = act(client, auth, inspect["id"], action, who, body)
        assert r.status_code == 403, (who, action, r.text)
        assert r.json()["detail"]
    assert task(client, auth, run_id, "inspect")["status"] == "ready"


def test_completing_without_required_evidence_is_422(client: TestClient, auth: Auth) -> None:
    run_id = start(client, auth)["id"]
    inspect = receive_done(client, auth, run_id)
    r = act(client, auth, inspect["id"], "complete", "c1-grid", {"note": "已核查"})
    assert error_field(r) == "evidence"
    photo = upload(client, auth, "c1-grid").json()["id"]
    r = act(client, auth, inspect["id"], "complete", "c1-grid", {"evidence": [photo]})
    assert error_field(r) == "note"
    r = act(client, auth, inspect["id"], "complete", "c1-grid",
            {"note": "x", "evidence": ["no-such-evidence"]})
    assert error_field(r) == "evidence[0]"
    assert task(client, auth, run_id, "inspect")["status"] == "ready"


# --- evidence ---------------------------------------------------------------------------------

def test_upload_png_returns_id_and_download_returns_the_same_bytes(
    client: TestClient, auth: Auth
) -> None:
    data = png_bytes(4, 3)
    r = upload(client, auth, "c1-grid", data)
    assert r.status_code == 201
    body = r.json()
    assert body["id"] and body["size"] == len(data)
    assert body["content_type"] == "image/png" and body["filename"] == "site.png"
    got = client.get(f"/api/evidence/{body['id']}", headers=auth("c1-grid"))
    assert got.status_code == 200
    assert got.content == data and got.headers["content-type"] == "image/png"
    # The stored type, not the browser's guess; the name it was uploaded with.
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-disposition"] == "inline; filename*=UTF-8''site.png"


def test_upload_pdf_is_accepted(client: TestClient, auth: Auth) -> None:
    r = upload(client, auth, "c1-grid", pdf_bytes(), name="notice.pdf", kind="application/pdf")
    assert r.status_code == 201 and r.json()["content_type"] == "application/pdf"


@pytest.mark.parametrize(("data", "name", "kind"), [
    (b"just some text, not a photo", "notes.txt", "text/plain"),
    (b"MZ\x90\x00\x03\x00\x00\x00", "photo.png", "image/png"),  # a renamed .exe
    (b"<html><script>alert(1)</script></html>", "x.jpg", "image/jpeg"),
])
def test_upload_of_non_image_or_pdf_is_422_on_file(
    client: TestClient, auth: Auth, data: bytes, name: str, kind: str
) -> None:
    r = upload(client, auth, "c1-grid", data, name=name, kind=kind)
    assert error_field(r) == "file"


def test_upload_empty_or_missing_file_is_422_on_file(client: TestClient, auth: Auth) -> None:
    r = client.post("/api/evidence", files={"file": ("a.png", b"", "image/png")},
                    headers=auth("c1-grid"))
    assert error_field(r) == "file"
    r = client.post("/api/evidence", data={"other": "x"}, headers=auth("c1-grid"))
    assert error_field(r) == "file"
    # The file's part sent as text: said as a person would fix it, not as a Python class.
    r = client.post("/api/evidence", data={"file": "a.png"}, files={"task": (None, "1")},
                    headers=auth("c1-grid"))
    assert error_field(r) == "file"
    assert "须为上传的文件" in r.json()["detail"] and "<class" not in r.json()["detail"]


def test_upload_without_token_is_401(client: TestClient) -> None:
    r = client.post("/api/evidence", files={"file": ("a.png", png_bytes(), "image/png")})
    assert r.status_code == 401


def test_complete_with_evidence_attaches_it_to_the_task(client: TestClient, auth: Auth) -> None:
    run_id = start(client, auth)["id"]
    submitted = submitted_inspection(client, auth, run_id)
    assert submitted["status"] == "submitted" and len(submitted["evidence"]) == 1
    evidence_id = submitted["evidence"][0]
    # Readers of the task may see the photo; a person of another street may not.
    for who in ("c1-grid", "s1-insp1", "d1-manager"):
        got = client.get(f"/api/evidence/{evidence_id}", headers=auth(who))
        assert got.status_code == 200 and got.content == png_bytes()
    assert client.get(f"/api/evidence/{evidence_id}", headers=auth("s2-insp")).status_code == 403
    # Evidence attached to one task cannot be reused for another.
    other = receive_done(client, auth, start(client, auth)["id"])
    r = act(client, auth, other["id"], "complete", "c1-grid",
            {"note": "x", "evidence": [evidence_id]})
    assert error_field(r) == "evidence[0]"


# --- verification (四眼) ------------------------------------------------------------------------

def test_verify_approves_submitted_work_and_the_run_moves_on(
    client: TestClient, auth: Auth
) -> None:
    run_id = start(client, auth)["id"]
    submitted = submitted_inspection(client, auth, run_id)
    r = act(client, auth, submitted["id"], "verify", "s1-insp1", {"approve": True, "note": "属实"})
    assert r.status_code == 200
    assert r.json()["status"] == "done" and r.json()["verified_by"] == "s1-insp1"
    again = act(client, auth, submitted["id"], "verify", "s1-insp2", {"approve": True})
    assert again.status_code == 409


def test_verify_reject_needs_a_reason_and_sends_the_task_back(
    client: TestClient, auth: Auth
) -> None:
    run_id = start(client, auth)["id"]
    submitted = submitted_inspection(client, auth, run_id)
    r = act(client, auth, submitted["id"], "verify", "s1-insp1", {"approve": False})
    assert error_field(r) == "note"
    r = act(client, auth, submitted["id"], "verify", "s1-insp1",
            {"approve": False, "note": "照片不清晰"})
    assert r.status_code == 200
    assert r.json()["status"] == "rejected" and r.json()["reject_reason"] == "照片不清晰"
    inbox = client.get("/api/inbox", headers=auth("c1-grid")).json()["data"]
    assert any(n["kind"] == "rejected" and "照片不清晰" in n["body"] for n in inbox)


def test_verifying_a_task_that_is_not_submitted_is_409(client: TestClient, auth: Auth) -> None:
    run_id = start(client, auth)["id"]
    inspect = receive_done(client, auth, run_id)
    r = act(client, auth, inspect["id"], "verify", "s1-insp1", {"approve": True})
    assert r.status_code == 409
    assert r.json()["current"] == "ready"


def test_verifying_your_own_work_is_403_four_eyes(client: TestClient, auth: Auth) -> None:
    run_id = start(client, auth)["id"]
    inspect = receive_done(client, auth, run_id)
    r = act(client, auth, inspect["id"], "reassign", "s1-commander", {"person": "s1-insp1"})
    assert r.status_code == 200
    photo = upload(client, auth, "s1-insp1").json()["id"]
    r = act(client, auth, inspect["id"], "complete", "s1-insp1",
            {"note": "自查", "evidence": [photo]})
    assert r.json()["status"] == "submitted"
    r = act(client, auth, inspect["id"], "verify", "s1-insp1", {"approve": True})
    assert r.status_code == 403
    assert "four-eyes" in r.json()["detail"]
    assert act(client, auth, inspect["id"], "verify", "s1-insp2",
               {"approve": True}).status_code == 200


def test_verifying_without_the_verifier_role_is_403(client: TestClient, auth: Auth) -> None:
    run_id = start(client, auth)["id"]
    submitted = submitted_inspection(client, auth, run_id)
    for who in ("c2-grid", "s2-insp", "s1-duty"):  # s2-insp: inspector, but not above c1
        r = act(client, auth, submitted["id"], "verify", who, {"approve": True})
        assert r.status_code == 403, who


# --- extending ---------------------------------------------------------------------------------

def test_extend_moves_the_deadline_and_keeps_the_original(
    client: TestClient, auth: Auth, clock: ManualClock
) -> None:
    receive = start(client, auth)["steps"][0]
    new_due = (clock.now() + timedelta(hours=2)).astimezone(SHANGHAI)
    r = act(client, auth, receive["id"], "extend", "s1-commander",
            {"due_at": new_due.isoformat(), "reason": "等待燃气公司到场"})
    assert r.status_code == 200
    body = r.json()
    assert datetime.fromisoformat(body["due_at"]) == new_due
    assert body["original_due_at"] == receive["due_at"]
    assert body["overdue"] is False and body["escalation_level"] == 0
    # A commander above may extend too; a second extension keeps the first original.
    later = new_due + timedelta(hours=1)
    r = act(client, auth, receive["id"], "extend", "d1-commander",
            {"due_at": later.isoformat(), "reason": "再延"})
    assert r.status_code == 200 and r.json()["original_due_at"] == receive["due_at"]
    # A manager reviews and exports (SPEC §3): moving a deadline is not theirs.
    r = act(client, auth, receive["id"], "extend", "d1-manager",
            {"due_at": (later + timedelta(hours=1)).isoformat(), "reason": "再延"})
    assert r.status_code == 403 and "直接调整期限需要指挥长" in r.json()["detail"], r.text
    after = task(client, auth, receive["run_id"], "receive")
    assert datetime.fromisoformat(after["due_at"]) == later


@pytest.mark.parametrize(("due_at", "field"), [
    ("2026-03-01T09:00:00+08:00", "due_at"),  # the day before the clock
    ("2026-03-02T09:00:00+08:00", "due_at"),  # exactly now
    ("2026-03-02T08:00:00", "due_at"),        # naive, read in the bureau's zone: past
    ("tomorrow", "due_at"),
    (12, "due_at"),
])
def test_extend_with_past_naive_or_malformed_due_is_422(
    client: TestClient, auth: Auth, due_at: Any, field: str
) -> None:
    receive = start(client, auth)["steps"][0]
    r = act(client, auth, receive["id"], "extend", "s1-commander",
            {"due_at": due_at, "reason": "x"})
    assert error_field(r) == field


def test_extend_needs_a_reason_and_commander_or_manager(client: TestClient, auth: Auth) -> None:
    receive = start(client, auth)["steps"][0]
    body = {"due_at": "2030-01-01T08:00:00+08:00", "reason": "  "}
    assert error_field(act(client, auth, receive["id"], "extend", "s1-commander",
                           body)) == "reason"
    del body["reason"]
    assert error_field(act(client, auth, receive["id"], "extend", "s1-commander",
                           body)) == "reason"
    body["reason"] = "x"
    r = act(client, auth, receive["id"], "extend", "s1-duty", body)  # the assignee
    assert r.status_code == 403
    assert "commander" in r.json()["detail"]


def test_extending_a_done_task_is_409(client: TestClient, auth: Auth) -> None:
    receive = start(client, auth)["steps"][0]
    act(client, auth, receive["id"], "complete", "s1-duty", {})
    r = act(client, auth, receive["id"], "extend", "s1-commander",
            {"due_at": "2030-01-01T08:00:00+08:00", "reason": "x"})
    assert r.status_code == 409


# --- reassigning -------------------------------------------------------------------------------

def test_reassign_hands_the_task_to_a_named_person(client: TestClient, auth: Auth) -> None:
    receive = start(client, auth)["steps"][0]
    r = act(client, auth, receive["id"], "reassign", "s1-commander", {"person": "s1-insp1"})
    assert r.status_code == 200
    assert [(p["id"], p["name"]) for p in r.json()["assignees"]] == [("s1-insp1", "检查员甲")]
    # The named person now holds it; the role holder no longer does.
    assert act(client, auth, receive["id"], "complete", "s1-duty", {}).status_code == 403
    inbox = client.get("/api/inbox", headers=auth("s1-insp1")).json()["data"]
    assert any(n["kind"] == "assigned" and n["step_id"] == receive["id"] for n in inbox)
    done = act(client, auth, receive["id"], "complete", "s1-insp1", {})
    assert done.status_code == 200
    # An action answers the task as GET shows it, its run named (the phone redraws from it).
    shown = client.get(f"/api/tasks/{receive['id']}", headers=auth("s1-insp1")).json()
    assert done.json()["run_title"] == shown["run_title"] and shown["run_title"]
    assert done.json() == shown


def test_assignee_may_hand_their_own_task_on(client: TestClient, auth: Auth) -> None:
    receive = start(client, auth)["steps"][0]
    r = act(client, auth, receive["id"], "reassign", "s1-duty", {"person": "s1-insp2"})
    assert r.status_code == 200 and r.json()["assignees"][0]["id"] == "s1-insp2"


def test_reassign_to_unknown_person_is_422(client: TestClient, auth: Auth) -> None:
    receive = start(client, auth)["steps"][0]
    r = act(client, auth, receive["id"], "reassign", "s1-commander", {"person": "ghost"})
    assert error_field(r) == "person"
    assert "ghost" in r.json()["detail"]
    r = act(client, auth, receive["id"], "reassign", "s1-commander", {})
    assert error_field(r) == "person"


def test_reassigning_a_done_task_is_409(client: TestClient, auth: Auth) -> None:
    receive = start(client, auth)["steps"][0]
    act(client, auth, receive["id"], "complete", "s1-duty", {})
    r = act(client, auth, receive["id"], "reassign", "s1-commander", {"person": "s1-insp1"})
    assert r.status_code == 409


# --- cancelling ----------------------------------------------------------------------------------

def test_cancel_by_commander_then_second_cancel_is_409(client: TestClient, auth: Auth) -> None:
    run = start(client, auth)
    r = client.post(f"/api/runs/{run['id']}/cancel", json={"reason": "误报"},
                    headers=auth("s1-commander"))
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled" and r.json()["finished_at"]
    statuses = {s["step"]: s["status"] for s in run_of(client, auth, run["id"])["steps"]}
    assert statuses["receive"] == "cancelled"
    timeline = run_of(client, auth, run["id"])["timeline"]
    assert timeline[-1]["action"] == "run_cancelled"
    assert timeline[-1]["detail"]["reason"] == "误报"
    again = client.post(f"/api/runs/{run['id']}/cancel", headers=auth("s1-commander"))
    assert again.status_code == 409 and again.json()["current"] == "cancelled"
    # Nothing can be done on a cancelled run's tasks.
    r = act(client, auth, run["steps"][0]["id"], "complete", "s1-duty", {})
    assert r.status_code == 409


def test_cancel_without_a_body_works_and_non_commander_is_403(
    client: TestClient, auth: Auth
) -> None:
    run_id = start(client, auth)["id"]
    for who in ("c1-grid", "s2-commander", "d1-manager"):
        r = client.post(f"/api/runs/{run_id}/cancel", headers=auth(who))
        assert r.status_code == 403, who
    r = client.post(f"/api/runs/{run_id}/cancel", headers=auth("d1-commander"))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"


# --- stages (typhoon) ----------------------------------------------------------------------------

def test_stage_change_fans_tasks_out_to_every_community(client: TestClient, auth: Auth) -> None:
    run = start(client, auth, playbook="branching", unit="s1")
    assert run["stage"] == "watch"
    assert [s["status"] for s in run["steps"] if s["step"] == "villages"] == ["pending"]
    r = client.post(f"/api/runs/{run['id']}/stage", json={"stage": "warning"},
                    headers=auth("s1-commander"))
    assert r.status_code == 200
    moved = r.json()
    assert moved["stage"] == "warning"
    villages = [s for s in moved["steps"] if s["step"] == "villages"]
    assert sorted((v["unit_id"], v["assignees"][0]["id"], v["status"]) for v in villages) == [
        ("c1", "c1-grid", "ready"), ("c2", "c2-grid", "ready")]
    assert all(v["due_at"] for v in villages)
    mine = client.get("/api/tasks", params={"mine": "true"}, headers=auth("c2-grid")).json()
    assert [t["step"] for t in mine["data"]] == ["villages"]
    timeline = run_of(client, auth, run["id"])["timeline"]
    assert any(e["action"] == "stage_changed" and e["from_state"] == "watch"
               and e["to_state"] == "warning" for e in timeline)


def test_stage_errors(client: TestClient, auth: Auth) -> None:
    run_id = start(client, auth, playbook="branching", unit="s1")["id"]
    url = f"/api/runs/{run_id}/stage"
    r = client.post(url, json={"stage": "typhoon"}, headers=auth("s1-commander"))
    assert error_field(r) == "stage" and "warning" in r.json()["detail"]
    assert error_field(client.post(url, json={}, headers=auth("s1-commander"))) == "stage"
    assert error_field(client.post(url, json={"stage": 3},
                                   headers=auth("s1-commander"))) == "stage"
    r = client.post(url, json={"stage": "watch"}, headers=auth("s1-commander"))
    assert r.status_code == 409  # already there
    assert client.post(url, json={"stage": "warning"},
                       headers=auth("c1-grid")).status_code == 403
    plain = start(client, auth)["id"]
    r = client.post(f"/api/runs/{plain}/stage", json={"stage": "warning"},
                    headers=auth("s1-commander"))
    assert error_field(r) == "stage"


def test_going_back_a_stage_calls_off_what_the_commander_names(
        client: TestClient, auth: Auth) -> None:
    run = start(client, auth, playbook="branching", unit="s1")
    url = f"/api/runs/{run['id']}/stage"
    moved = client.post(url, json={"stage": "warning"}, headers=auth("s1-commander")).json()
    assert moved["called_off"] is None and moved["kept_open"] is None  # forward: not asked
    villages = {s["unit_id"]: s["id"] for s in moved["steps"] if s["step"] == "villages"}
    r = client.post(url, json={"stage": "watch", "call_off": [villages["c1"]]},
                    headers=auth("s1-commander"))
    assert error_field(r) == "note"
    r = client.post(url, json={"stage": "watch", "call_off": [villages["c1"]],
                               "note": "预警解除"}, headers=auth("s1-commander"))
    assert r.status_code == 200, r.text
    back = r.json()
    assert back["stage"] == "watch"
    assert back["called_off"] == [villages["c1"]] and back["kept_open"] == [villages["c2"]]
    statuses = {s["unit_id"]: s["status"] for s in back["steps"] if s["step"] == "villages"}
    assert statuses == {"c1": "cancelled", "c2": "ready"}
    # Off c1's grid worker's list; told why, in the inbox.
    mine = client.get("/api/tasks", params={"mine": "true"}, headers=auth("c1-grid")).json()
    assert mine["data"] == []
    timeline = run_of(client, auth, run["id"])["timeline"]
    off = [e for e in timeline if e["action"] == "called_off"]
    assert [(e["step_id"], e["to_state"], e["detail"]["note"]) for e in off] == \
        [(villages["c1"], "cancelled", "预警解除")]
    change = [e for e in timeline if e["action"] == "stage_changed"][-1]
    assert change["detail"] == {"called_off": 1, "kept_open": 1, "note": "预警解除"}


def test_a_jump_forward_passes_over_the_stages_the_commander_names(
        client: TestClient, auth: Auth) -> None:
    """watch → emergency with warning passed over (and a note): warning's fan-out is not
    handed out, its steps read `skipped`, the run says which stages it passed over; a pass-over
    that does not fit the move is a 422 naming the field, and changes nothing."""
    run = start(client, auth, playbook="branching", unit="s1")
    url = f"/api/runs/{run['id']}/stage"
    commander = auth("s1-commander")
    for body, field in [({"stage": "emergency", "pass_over": ["warning"]}, "note"),
                        ({"stage": "emergency", "pass_over": ["emergency"], "note": "x"},
                         "pass_over"),
                        ({"stage": "emergency", "pass_over": "warning", "note": "x"},
                         "pass_over"),
                        ({"stage": "warning", "pass_over": ["warning"], "note": "x"},
                         "pass_over")]:
        assert error_field(client.post(url, json=body, headers=commander)) == field, body
    assert run_of(client, auth, run["id"])["stage"] == "watch"
    r = client.post(url, json={"stage": "emergency", "pass_over": ["warning"],
                               "note": "预警未升级到该级"}, headers=commander)
    assert r.status_code == 200, r.text
    moved = r.json()
    assert (moved["stage"], moved["passed_over_stages"]) == ("emergency", ["warning"])
    villages = [s for s in moved["steps"] if s["step"] == "villages"]
    assert [(v["id"], v["status"]) for v in villages] == [(None, "skipped")]
    assert client.get("/api/tasks", params={"mine": "true"},
                      headers=auth("c1-grid")).json()["data"] == []
    change = [e for e in run_of(client, auth, run["id"])["timeline"]
              if e["action"] == "stage_changed"][-1]
    assert change["detail"] == {"passed_over": ["warning"], "note": "预警未升级到该级"}


def test_coming_up_again_hands_out_the_called_off_tasks_again(
        client: TestClient, auth: Auth) -> None:
    run = start(client, auth, playbook="branching", unit="s1")
    url = f"/api/runs/{run['id']}/stage"
    first = client.post(url, json={"stage": "warning"}, headers=auth("s1-commander")).json()
    assert first["rehanded"] == []  # a first entry: nothing was called off
    villages = {s["unit_id"]: s for s in first["steps"] if s["step"] == "villages"}
    off = villages["c1"]["id"]
    r = client.post(url, json={"stage": "watch", "call_off": [off], "note": "预警解除"},
                    headers=auth("s1-commander"))
    assert r.status_code == 200, r.text
    assert r.json()["rehanded"] is None  # going back: not asked

    r = client.post(url, json={"stage": "warning"}, headers=auth("s1-commander"))
    assert r.status_code == 200, r.text
    up = r.json()
    assert up["called_off"] is None and up["kept_open"] is None
    rows = [s for s in up["steps"] if s["step"] == "villages"]
    again = [s for s in rows if s["unit_id"] == "c1"]
    assert [(s["status"], s["rehanded_from"]) for s in again] == \
        [("cancelled", None), ("ready", off)]
    new = again[1]
    assert up["rehanded"] == [new["id"]] and again[0]["rehanded_as"] == new["id"]
    assert new["due_at"] and [(p["id"], p["name"]) for p in new["assignees"]] == [
        ("c1-grid", "一社区网格员")]
    # The kept one is as it was: one instance, its first deadline.
    kept = [s for s in rows if s["unit_id"] == "c2"]
    assert [(s["id"], s["status"], s["due_at"]) for s in kept] == \
        [(villages["c2"]["id"], "ready", villages["c2"]["due_at"])]

    # On the grid worker's list again, told so; the called-off task says what replaced it.
    mine = client.get("/api/tasks", params={"mine": "true"}, headers=auth("c1-grid")).json()
    assert [t["id"] for t in mine["data"]] == [new["id"]]
    told = client.get("/api/inbox", headers=auth("c1-grid")).json()["data"]
    assert any(n["title"].startswith("【重新下达】") for n in told)
    old = client.get(f"/api/tasks/{off}", headers=auth("c1-grid")).json()
    assert old["status"] == "cancelled" and old["rehanded_as"] == new["id"]
    # The timeline has both: the call-off, then the new task's `ready` naming it.
    timeline = run_of(client, auth, run["id"])["timeline"]
    actions = [(e["action"], e["step_id"]) for e in timeline]
    assert actions.index(("called_off", off)) < actions.index(("ready", new["id"]))
    ready = next(e for e in timeline if e["action"] == "ready" and e["step_id"] == new["id"])
    assert ready["detail"]["rehanded_from"] == off
    summed = [e for e in timeline if e["action"] == "rehanded"]
    assert [(e["to_state"], e["detail"]) for e in summed] == \
        [("warning", {"rehanded": 1, "passed_over": 0, "waiting": 0})]


# --- playbooks ------------------------------------------------------------------------------------

def test_list_playbooks(client: TestClient, auth: Auth) -> None:
    r = client.get("/api/playbooks", headers=auth("c1-grid"))
    assert r.status_code == 200
    body = r.json()
    assert [p["id"] for p in body["data"]] == ["branching", "e2e-escalation", "quick-escalation",
                                               "register-demo"]
    assert body["count"] == 4 and body["errors"] == []
    branching = body["data"][0]
    assert branching["stages"] == ["watch", "warning", "emergency"] and branching["steps"] == 6
    assert client.get("/api/playbooks").status_code == 401


def test_read_playbook_gives_the_compiled_steps(client: TestClient, auth: Auth) -> None:
    r = client.get("/api/playbooks/quick-escalation", headers=auth("c1-grid"))
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == "quick-escalation" and body["version"] == 1
    assert [s["id"] for s in body["steps"]] == ["receive", "inspect", "report", "record"]
    assert body["params"]["location"]["required"] is True
    # The templates' texts stay with the versions runs pinned, not in what phones download.
    assert "templates" not in body


GOOD_PLAYBOOK = """\
id: drill
version: 1
title: 演练
params:
  location: {type: string, required: true}
steps:
  - id: receive
    title: 接警
    role: duty_officer
    due: 5m
    escalate:
      - {after: 0m, notify: [section_chief, duty]}
  - id: report
    title: 报告
    action: notify
    needs: [receive]
    template: short-report.md.j2
    to: [duty]
"""

BAD_PLAYBOOK = """\
id: drill
version: 1
title: 演练
steps:
  - id: receive
    title: 接警
    role: duty_officer
  - id: report
    title: 报告
    role: nobody_at_all
  - id: close
    title: 办结
    role: duty_officer
    needs: [recieve]
  - id: record
    title: 记录
    role: duty_officer
    due: soon
"""


def test_validate_good_playbook_is_200(client: TestClient, auth: Auth) -> None:
    r = client.post("/api/playbooks/validate", content=GOOD_PLAYBOOK.encode(),
                    headers=auth("c1-grid") | {"content-type": "application/yaml"})
    assert r.status_code == 200
    assert r.json() == {"valid": True, "id": "drill", "version": 1, "steps": 2}


def test_validate_bad_playbook_is_422_listing_every_error_with_its_line(
    client: TestClient, auth: Auth
) -> None:
    r = client.post("/api/playbooks/validate", params={"filename": "drill.yaml"},
                    content=BAD_PLAYBOOK.encode(), headers=auth("c1-grid"))
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "playbook_invalid"
    found = {(e["path"], e["line"]) for e in body["errors"]}
    assert found == {("steps[1].role", 10), ("steps[2].needs[0]", 14), ("steps[3].due", 18)}
    for e in body["errors"]:
        assert e["file"] == "drill.yaml" and e["col"] > 1
        # The printed line names the step by its id after its position; `path` stays plain.
        named = {"steps[1].role": "steps[1] (report).role", "steps[2].needs[0]":
                 "steps[2] (close).needs[0]", "steps[3].due": "steps[3] (record).due"}
        assert e["text"].startswith(
            f"drill.yaml:{e['line']}:{e['col']}: {named[e['path']]}: "), e["text"]
    messages = " ".join(e["message"] for e in body["errors"])
    assert "nobody_at_all" in messages and "recieve" in messages and "soon" in messages


def test_validate_reports_every_mistake_of_one_step_at_once(
    client: TestClient, auth: Auth
) -> None:
    """SPEC §2: unknown roles and bad durations are all caught; one mistake hides no other."""
    text = "\n".join([
        "id: drill", "version: 1", "title: 演练", "steps:",
        "  - id: receive", "    title: 接警", "    role: duty_officer",
        "  - id: report", "    title: 报告", "    role: nobody_at_all", "    due: soon", "",
    ])
    r = client.post("/api/playbooks/validate", content=text.encode(), headers=auth("c1-grid"))
    assert r.status_code == 422
    found = {(e["path"], e["line"]) for e in r.json()["errors"]}
    assert found == {("steps[1].role", 10), ("steps[1].due", 11)}


@pytest.mark.parametrize("text", [
    b"",
    b"- just\n- a list\n",
    b"id: [unclosed\n",
    b"\xff\xfe not utf-8",
    b"a: &x [1]\nb: *x\n",
    b"!!python/object/apply:os.system ['true']\n",
])
def test_validate_garbage_is_422(client: TestClient, auth: Auth, text: bytes) -> None:
    r = client.post("/api/playbooks/validate", content=text, headers=auth("c1-grid"))
    assert r.status_code == 422, r.text


def test_validate_deeply_nested_yaml_is_422_not_500(client: TestClient, auth: Auth) -> None:
    text = "[" * 2000 + "]" * 2000
    r = client.post("/api/playbooks/validate", content=text.encode(), headers=auth("c1-grid"))
    assert r.status_code == 422, r.text


# --- inbox and system -----------------------------------------------------------------------------

def test_inbox_shows_the_assigned_task_notification(client: TestClient, auth: Auth) -> None:
    run = start(client, auth)
    receive = run["steps"][0]
    inbox = client.get("/api/inbox", headers=auth("s1-duty")).json()["data"]
    assert len(inbox) == 1
    note = inbox[0]
    assert note["kind"] == "assigned" and note["run_id"] == run["id"]
    assert note["step_id"] == receive["id"] and "接警登记" in note["title"]
    assert note["at_local"] == "2026-03-02 09:00"
    assert client.get("/api/inbox", headers=auth("c1-grid")).json()["data"] == []
    receive_done(client, auth, run["id"])
    grid = client.get("/api/inbox", headers=auth("c1-grid")).json()["data"]
    assert [n["kind"] for n in grid] == ["assigned"] and "现场核查" in grid[0]["title"]
    assert client.get("/api/inbox").status_code == 401


def test_healthz_docs_and_openapi_answer_200(client: TestClient) -> None:
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["database"] == "sqlite"
    assert health.json()["playbooks"] == 4
    docs = client.get("/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    spec = client.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for path in ("/api/runs", "/api/runs/{run_id}", "/api/runs/{run_id}/cancel",
                 "/api/runs/{run_id}/stage", "/api/tasks", "/api/tasks/{task_id}/complete",
                 "/api/tasks/{task_id}/verify", "/api/tasks/{task_id}/extend",
                 "/api/tasks/{task_id}/reassign", "/api/evidence", "/api/playbooks",
                 "/api/playbooks/validate", "/healthz"):
        assert path in paths, path


# --- bad input never gives a 500 ------------------------------------------------------------

MALFORMED_BODIES: list[bytes] = [
    b"{",
    b"{'playbook': 'x'}",
    b"[]",
    b"[1, 2]",
    b"1",
    b'"text"',
    b"true",
    b"\xff\xfe\x00",
    b'{"a": ' * 50 + b"1" + b"}" * 50,
    b'{"playbook": "' + b"x" * 20000 + b'"}',
]

WRONG_TYPES: dict[str, dict[str, list[Any]]] = {
    "runs": {"playbook": [1, None, [], {}], "unit": [2, None, ["c1"]],
             "params": ["x", [1], 3]},
    "complete": {"note": [1, [], {}], "outputs": ["x", [1], 2], "evidence": ["x", {}, [1], 5]},
    "verify": {"approve": ["maybe", None, [], {}, "yes", "true", "false", 1, 0],
               "note": [1, []]},
    "extend": {"due_at": ["tomorrow", None, [], "2026-99-99T00:00:00+08:00"],
               "reason": [None, 1, []]},
    "reassign": {"person": [None, 1, [], {}]},
    "stage": {"stage": [None, 1, [], {}],
              # Past SQLite's integers (2**63) the query itself fails: refused as the others.
              "call_off": ["x", 1, {}, ["a"], [None], ["3"], [0], [2**63], [-2**63 - 1]],
              "call_off_all": ["yes", "true", 1, None, []], "note": [1, [], {}]},
    "cancel": {"reason": [1, [], {}]},
}


@pytest.fixture
def targets(client: TestClient, auth: Auth) -> dict[str, str]:
    run = start(client, auth)
    staged = start(client, auth, playbook="branching", unit="s1")
    tid = run["steps"][0]["id"]
    return {
        "runs": "/api/runs",
        "complete": f"/api/tasks/{tid}/complete",
        "verify": f"/api/tasks/{tid}/verify",
        "extend": f"/api/tasks/{tid}/extend",
        "reassign": f"/api/tasks/{tid}/reassign",
        "stage": f"/api/runs/{staged['id']}/stage",
        "cancel": f"/api/runs/{run['id']}/cancel",
    }


def test_malformed_json_bodies_are_4xx_on_every_endpoint(
    client: TestClient, auth: Auth, targets: dict[str, str]
) -> None:
    for name, url in targets.items():
        for body in MALFORMED_BODIES:
            for who in ("s1-commander", "d1-admin"):
                r = client.post(url, content=body,
                                headers=auth(who) | {"content-type": "application/json"})
                assert 400 <= r.status_code < 500, (name, body[:40], r.status_code, r.text)
    for body in MALFORMED_BODIES:  # a YAML body that is not a playbook
        r = client.post("/api/playbooks/validate", content=body, headers=auth("c1-grid"))
        assert r.status_code == 422, (body[:40], r.text)


def test_wrong_types_per_field_are_422_naming_the_field(
    client: TestClient, auth: Auth, targets: dict[str, str]
) -> None:
    valid: dict[str, Json] = {
        "runs": {"playbook": "quick-escalation", "unit": "c1", "params": {"location": "x"}},
        "complete": {"note": "n", "outputs": {}, "evidence": []},
        "verify": {"approve": True, "note": "n"},
        "extend": {"due_at": "2030-01-01T08:00:00+08:00", "reason": "r"},
        "reassign": {"person": "s1-insp1"},
        "stage": {"stage": "warning"},
        "cancel": {"reason": "r"},
    }
    for name, fields in WRONG_TYPES.items():
        for field, values in fields.items():
            for value in values:
                body = valid[name] | {field: value}
                r = client.post(targets[name], json=body, headers=auth("s1-commander"))
                assert r.status_code == 422, (name, field, value, r.status_code, r.text)
                assert r.json()["field"].split("[")[0].split(".")[0] == field, (
                    name, field, value, r.json())


def test_bad_query_and_path_values_are_4xx(
    client: TestClient, auth: Auth, targets: dict[str, str]
) -> None:
    me = auth("d1-admin")
    for url, params in [
        ("/api/runs", {"limit": "x"}), ("/api/runs", {"offset": "-"}),
        ("/api/runs", {"since": "2026-02-30T00:00:00Z"}), ("/api/runs", {"status": ""}),
        ("/api/tasks", {"mine": "perhaps"}), ("/api/tasks", {"overdue": "2"}),
        ("/api/tasks", {"run": "abc"}), ("/api/tasks", {"status": ",,"}),
        ("/api/tasks", {"limit": 100000}), ("/api/inbox", {"limit": 0}),
    ]:
        r = client.get(url, params=params, headers=me)
        assert r.status_code in (200, 422), (url, params, r.text)
    for method, path in [
        ("get", "/api/runs/abc"), ("get", "/api/runs/1.5"), ("get", "/api/tasks/abc"),
        ("post", "/api/tasks/abc/ack"), ("post", "/api/runs/xyz/cancel"),
        ("get", "/api/runs/-1"), ("get", "/api/tasks/0"), ("post", "/api/tasks/-7/ack"),
        ("get", "/api/evidence/..%2F..%2Fsecret"), ("get", "/api/playbooks/..%2Forg"),
        ("delete", "/api/runs/1"), ("put", "/api/tasks/1/complete"),
    ]:
        r = client.request(method, path, headers=me)
        assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text)


def test_ids_beyond_64_bits_are_4xx_not_500(client: TestClient, auth: Auth) -> None:
    huge = "99999999999999999999"
    me = auth("d1-admin")
    for method, path, body in [
        ("get", f"/api/runs/{huge}", None),
        ("get", f"/api/tasks/{huge}", None),
        ("post", f"/api/tasks/{huge}/ack", None),
        ("post", f"/api/runs/{huge}/cancel", None),
    ]:
        r = client.request(method, path, json=body, headers=me)
        assert r.status_code in (404, 422), (path, r.status_code)
    for url, params in [("/api/tasks", {"run": huge}), ("/api/runs", {"offset": huge}),
                        ("/api/tasks", {"offset": huge})]:
        r = client.get(url, params=params, headers=me)
        assert r.status_code in (200, 422), (url, params, r.status_code)


def test_naive_since_and_until_are_not_500(client: TestClient, auth: Auth) -> None:
    start(client, auth)
    for query in ({"since": "2026-03-02T00:00:00"}, {"until": "2026-03-03T00:00:00"},
                  {"since": "2026-03-02"}):
        r = client.get("/api/runs", params=query, headers=auth("d1-admin"))
        assert r.status_code in (200, 422), (query, r.status_code)


def test_extend_to_the_far_future_is_not_500(client: TestClient, auth: Auth) -> None:
    receive = start(client, auth)["steps"][0]
    r = act(client, auth, receive["id"], "extend", "s1-commander",
            {"due_at": "9999-12-31T23:59:59+00:00", "reason": "永不到期"})
    assert r.status_code in (200, 422), r.text
    if r.status_code == 422:
        assert r.json()["field"] == "due_at"


def test_a_step_passed_over_shows_as_skipped_without_an_instance(client: TestClient,
                                                                  auth: Auth) -> None:
    run = start(client, auth, playbook="branching", unit="s1")
    [first] = [s for s in run["steps"] if s["step"] == "start"]
    r = client.post(f"/api/tasks/{first['id']}/complete", json={}, headers=auth("s1-duty"))
    assert r.status_code == 200, r.text
    seen = run_of(client, auth, run["id"])
    steps = {s["step"]: s for s in seen["steps"]}
    assert (steps["major-only"]["status"], steps["major-only"]["id"]) == ("skipped", None)
    assert steps["after-major"]["status"] == "ready" and steps["after-major"]["id"]
    skipped = [e for e in seen["timeline"] if e["action"] == "skipped"]
    assert [e["detail"]["step"] for e in skipped] == ["major-only"]


def test_the_inbox_holds_open_tasks_and_status_done_shows_the_finished(
        client: TestClient, auth: Auth) -> None:
    run = start(client, auth, playbook="branching", unit="s1")
    [first] = [s for s in run["steps"] if s["step"] == "start"]
    inbox = client.get("/api/tasks", params={"mine": "true"}, headers=auth("s1-duty")).json()
    assert first["id"] in [t["id"] for t in inbox["data"]]
    r = client.post(f"/api/tasks/{first['id']}/complete", json={}, headers=auth("s1-duty"))
    assert r.status_code == 200, r.text
    inbox = client.get("/api/tasks", params={"mine": "true"}, headers=auth("s1-duty")).json()
    assert first["id"] not in [t["id"] for t in inbox["data"]]
    assert all(t["status"] in ("ready", "acked", "submitted", "rejected") for t in inbox["data"])
    done = client.get("/api/tasks", params={"mine": "true", "status": "done"},
                      headers=auth("s1-duty")).json()
    assert [t["id"] for t in done["data"]] == [first["id"]]


def test_healthz_says_degraded_while_sweeps_fail_and_ok_once_they_pass(
    make_rt: Callable[..., Runtime],
) -> None:
    """The server still answers when its sweeper cannot run (here the lease table is gone from
    the database): deadlines are not being kept, which is not "ok"."""
    rt = make_rt(settings={"sweep_interval": "1s"})
    app = create_app(rt, prefect=False)
    with TestClient(app) as c:
        assert wait_for(lambda: c.get("/healthz").json()["sweeper"]["last"] is not None)
        assert c.get("/healthz").json()["status"] == "ok"
        with rt.db.begin() as conn:
            conn.execute(text("DROP TABLE lease"))
        assert wait_for(lambda: c.get("/healthz").json()["status"] == "degraded")
        body = c.get("/healthz").json()
        assert body["sweeper"]["failing"] is True and body["sweeper"]["errors"] >= 1
        create_schema(rt.db)
        assert wait_for(lambda: c.get("/healthz").json()["status"] == "ok")


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_an_admin_reads_and_cancels_a_run_whose_unit_left_the_org_chart(
    make_rt: Callable[..., Runtime],
) -> None:
    """Community c2 leaves the org file while one of its runs is open: nobody else may act in
    a unit that no longer exists, but the admin can still read the run and close it out."""
    before = make_rt()
    run = lifecycle.start_run(before, playbook_id="quick-escalation", unit_id="c2",
                              params={"location": "二社区"}, actor="s1-commander")
    url = str(before.db.url)
    before.db.dispose()
    after = make_rt(org_text=small_org_without_c2(), db_url=url)
    admin = {"Authorization": f"Bearer {make_token('d1-admin', after.settings.signing_secret())}"}
    with TestClient(create_app(after, background=False, prefect=False)) as c:
        got = c.get(f"/api/runs/{run.id}", headers=admin)
        assert got.status_code == 200, got.text
        assert got.json()["unit_id"] == "c2"
        cancelled = c.post(f"/api/runs/{run.id}/cancel", json={"reason": "社区已撤并"},
                           headers=admin)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"


def test_healthz_names_units_with_running_runs_that_the_org_chart_lost(
    make_rt: Callable[..., Runtime],
) -> None:
    before = make_rt()
    lifecycle.start_run(before, playbook_id="quick-escalation", unit_id="c2",
                        params={"location": "二社区"}, actor="s1-commander")
    url = str(before.db.url)
    before.db.dispose()
    after = make_rt(org_text=small_org_without_c2(), db_url=url)
    with TestClient(create_app(after, prefect=False)) as c:
        assert wait_for(lambda: c.get("/healthz").json()["sweeper"]["units_missing_from_org"]
                        == ["c2"])
