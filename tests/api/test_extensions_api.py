"""Requests for more time through the HTTP API (TestClient on a real SQLite runtime): asking,
listing, deciding, and every error as 401/403/404/409/422 naming the field, never a 500."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from fastapi.testclient import TestClient

from models.clock import ManualClock

Json = dict[str, Any]
Auth = Callable[[str], dict[str, str]]


def hazard_task(client: TestClient, auth: Auth, key: str = "rectify") -> Json:
    r = client.post("/api/runs", json={"playbook": "register-demo", "unit": "c1",
                                       "params": {"location": "一社区加油站"}},
                    headers=auth("s1-commander"))
    assert r.status_code == 201, r.text
    [step] = [s for s in r.json()["steps"] if s["step"] == key]
    return step  # type: ignore[no-any-return]


def later(task: Json, days: int = 5) -> str:
    due = datetime.fromisoformat(task["due_at"]) + timedelta(days=days)
    return due.isoformat().replace("+00:00", "Z")  # as the API writes UTC times


def ask(client: TestClient, auth: Auth, task: Json, who: str = "c1-grid",
        **body: Any) -> httpx.Response:
    body = {"due_at": later(task), "reason": "设备到货延迟", **body}
    return client.post(f"/api/tasks/{task['id']}/extension-requests", json=body,
                       headers=auth(who))


def decide(client: TestClient, auth: Auth, req_id: int, who: str = "s1-head",
           **body: Any) -> httpx.Response:
    return client.post(f"/api/extension-requests/{req_id}/decide",
                       json={"approve": True, **body}, headers=auth(who))


def field(r: httpx.Response) -> str:
    assert r.status_code == 422, r.text
    return r.json()["field"]  # type: ignore[no-any-return]


def test_request_approve_and_both_deadlines_visible(client: TestClient, auth: Auth) -> None:
    task = hazard_task(client, auth)
    r = ask(client, auth, task)
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["status"] == "pending" and req["task_id"] == task["id"]
    assert (req["requested_by"]["id"], req["requested_by"]["name"]) == ("c1-grid", "一社区网格员")
    assert req["old_due_at"] == task["due_at"] and req["new_due_at"] == later(task)
    assert req["decider_role"] == "street_head" and req["can_decide"] is False
    assert req["new_due_at_local"] and req["unit_name"] == "一社区"

    mine = client.get("/api/extension-requests?mine=true&status=pending",
                      headers=auth("s1-head")).json()
    assert mine["count"] == 1 and mine["data"][0]["id"] == req["id"]
    assert mine["data"][0]["can_decide"] is True

    r = decide(client, auth, req["id"], note="同意")
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "approved" and done["decided_by"]["id"] == "s1-head"
    assert done["old_due_at"] == task["due_at"] and done["new_due_at"] == later(task)
    assert done["original_due_at"] == task["due_at"]
    step = client.get(f"/api/tasks/{task['id']}", headers=auth("c1-grid")).json()
    assert step["due_at"] == later(task) and step["original_due_at"] == task["due_at"]
    timeline = client.get(f"/api/runs/{task['run_id']}", headers=auth("d1-admin")).json()
    actions = [e["action"] for e in timeline["timeline"]]
    assert actions.count("extension_requested") == 1
    assert actions.count("extension_approved") == 1
    assert decide(client, auth, req["id"]).status_code == 409  # deciding twice
    assert client.get("/api/extension-requests?mine=true&status=pending",
                      headers=auth("s1-head")).json()["count"] == 0
    got = client.get(f"/api/extension-requests/{req['id']}", headers=auth("c1-grid"))
    assert got.status_code == 200 and got.json()["status"] == "approved"


def test_refusal_keeps_the_deadline(client: TestClient, auth: Auth) -> None:
    task = hazard_task(client, auth)
    req = ask(client, auth, task).json()
    assert field(decide(client, auth, req["id"], approve=False)) == "note"
    r = decide(client, auth, req["id"], approve=False, note="理由不充分")
    assert r.status_code == 200 and r.json()["status"] == "refused"
    step = client.get(f"/api/tasks/{task['id']}", headers=auth("c1-grid")).json()
    assert step["due_at"] == task["due_at"] and step["original_due_at"] is None
    listed = client.get("/api/extension-requests?status=refused", headers=auth("c1-grid"))
    assert [x["id"] for x in listed.json()["data"]] == [req["id"]]


def test_errors_name_the_field(client: TestClient, auth: Auth, clock: ManualClock) -> None:
    task = hazard_task(client, auth)
    assert field(ask(client, auth, task, reason="")) == "reason"
    assert field(ask(client, auth, task, reason=None)) == "reason"
    assert field(ask(client, auth, task, due_at="tomorrow")) == "due_at"
    assert field(ask(client, auth, task, due_at="2026-03-01T18:00:00")) == "due_at"  # past
    assert field(ask(client, auth, task, due_at=task["due_at"])) == "due_at"  # not later
    assert field(ask(client, auth, task, due_at="2099-01-01T00:00:00+08:00")) == "due_at"
    assert field(ask(client, auth, task, due_at="9999-12-31T23:59:59+08:00")) == "due_at"
    assert field(ask(client, auth, task, urgent=True)) == "urgent"
    r = client.post(f"/api/tasks/{task['id']}/extension-requests", content=b"{",
                    headers={**auth("c1-grid"), "Content-Type": "application/json"})
    assert r.status_code == 422
    req = ask(client, auth, task).json()
    r = client.post(f"/api/extension-requests/{req['id']}/decide", json={"note": "x"},
                    headers=auth("s1-head"))
    assert field(r) == "approve"
    r = client.get("/api/extension-requests?status=maybe", headers=auth("s1-head"))
    assert field(r) == "status"
    assert field(client.get("/api/extension-requests/0", headers=auth("s1-head"))) == "request_id"
    assert field(client.get(f"/api/extension-requests/{2**63}",
                            headers=auth("s1-head"))) == "request_id"


def test_statuses_401_403_404_409(client: TestClient, auth: Auth) -> None:
    task = hazard_task(client, auth)
    assert client.post(f"/api/tasks/{task['id']}/extension-requests",
                       json={"due_at": later(task), "reason": "x"}).status_code == 401
    assert client.get("/api/extension-requests").status_code == 401
    assert client.get("/api/extension-requests",
                      headers={"Authorization": "Bearer nope"}).status_code == 401
    assert ask(client, auth, task, who="c2-grid").status_code == 403  # not the assignee
    assert ask(client, auth, {**task, "id": 999_999}).status_code == 404
    r = ask(client, auth, task)
    assert r.status_code == 201
    req = r.json()
    again = ask(client, auth, task)
    assert again.status_code == 409 and again.json()["current"] == "pending"
    own = decide(client, auth, req["id"], who="c1-grid")
    assert own.status_code == 403 and "own request" in own.json()["detail"]
    other = decide(client, auth, req["id"], who="d1-director")
    assert other.status_code == 403 and "street_head" in other.json()["detail"]
    assert decide(client, auth, 999_999).status_code == 404
    assert client.get("/api/extension-requests/999999",
                      headers=auth("s1-head")).status_code == 404
    # Another street may not read it; the district above may.
    assert client.get(f"/api/extension-requests/{req['id']}",
                      headers=auth("s2-insp")).status_code == 403
    assert client.get(f"/api/extension-requests/{req['id']}",
                      headers=auth("d1-manager")).status_code == 200
    assert client.get("/api/extension-requests", headers=auth("s2-insp")).json()["count"] == 0
    # A step without `extension:` takes no requests.
    quick = client.post("/api/runs", json={"playbook": "quick-escalation", "unit": "c1",
                                           "params": {"location": "x"}},
                        headers=auth("s1-commander")).json()
    receive = next(s for s in quick["steps"] if s["step"] == "receive")
    r = ask(client, auth, receive, who="s1-duty")
    assert r.status_code == 409 and "no requests for more time" in r.json()["detail"]


def test_list_filters_and_paging(client: TestClient, auth: Auth) -> None:
    first = ask(client, auth, hazard_task(client, auth)).json()
    second_task = hazard_task(client, auth)
    second = ask(client, auth, second_task).json()
    page = client.get("/api/extension-requests?mine=true&limit=1",
                      headers=auth("s1-head")).json()
    assert page["count"] == 2 and [x["id"] for x in page["data"]] == [second["id"]]
    page = client.get("/api/extension-requests?mine=true&limit=1&offset=1",
                      headers=auth("s1-head")).json()
    assert [x["id"] for x in page["data"]] == [first["id"]]
    page = client.get(f"/api/extension-requests?task={second_task['id']}",
                      headers=auth("c1-grid")).json()
    assert [x["id"] for x in page["data"]] == [second["id"]]
    assert client.get("/api/extension-requests?mine=true",
                      headers=auth("c1-grid")).json()["count"] == 0
    assert field(client.get("/api/extension-requests?limit=0",
                            headers=auth("s1-head"))) == "limit"


def test_a_date_asks_for_the_end_of_that_day_and_a_time_without_zone_is_local(
        client: TestClient, auth: Auth) -> None:
    task = hazard_task(client, auth)
    due = datetime.fromisoformat(task["due_at"])
    local_day = (due + timedelta(days=10)).astimezone(ZoneInfo("Asia/Shanghai")).date()
    r = ask(client, auth, task, due_at=local_day.isoformat())
    assert r.status_code == 201, r.text
    req = r.json()
    # 24:00 of that day in Shanghai, shown as that day's 24:00, not the next day's 00:00.
    end = datetime.combine(local_day + timedelta(days=1), datetime.min.time(),
                           tzinfo=ZoneInfo("Asia/Shanghai"))
    assert datetime.fromisoformat(req["new_due_at"].replace("Z", "+00:00")) == end
    assert req["new_due_at_local"].endswith("24:00")
    assert decide(client, auth, req["id"], approve=False, note="先按原期限").status_code == 200

    # The same end of day written as the product prints it: that day 24:00.
    for written in (f"{local_day.isoformat()} 24:00", f"{local_day.isoformat()}T24:00:00"):
        r = ask(client, auth, task, due_at=written)
        assert r.status_code == 201, r.text
        assert datetime.fromisoformat(r.json()["new_due_at"].replace("Z", "+00:00")) == end
        assert decide(client, auth, r.json()["id"], approve=False, note="不同意").status_code == 200
    assert field(ask(client, auth, task, due_at="2027-02-30 24:00")) == "due_at"

    wall = f"{local_day.isoformat()}T18:00"  # no zone: the bureau's clock
    r = ask(client, auth, task, due_at=wall)
    assert r.status_code == 201, r.text
    asked = datetime.fromisoformat(r.json()["new_due_at"].replace("Z", "+00:00"))
    assert asked == datetime.fromisoformat(wall).replace(tzinfo=ZoneInfo("Asia/Shanghai"))


def test_bad_dates_and_loose_booleans_are_422_in_chinese(client: TestClient,
                                                         auth: Auth) -> None:
    task = hazard_task(client, auth)
    for bad in ("2027-02-30", "9999-12-31", "明天", 20270115):
        r = ask(client, auth, task, due_at=bad)
        assert field(r) == "due_at", bad
    r = ask(client, auth, task)
    assert r.status_code == 201, r.text
    r = decide(client, auth, r.json()["id"], approve="yes")
    assert field(r) == "approve"
    assert "应为 true 或 false" in r.json()["detail"]
    r = client.post(f"/api/tasks/{task['id']}/extension-requests", json={"due_at": later(task)},
                    headers=auth("c1-grid"))
    assert field(r) == "reason" and "必填" in r.json()["detail"]


def test_not_found_and_conflicts_speak_chinese_first(client: TestClient, auth: Auth) -> None:
    r = client.get("/api/extension-requests/999", headers=auth("c1-grid"))
    assert r.status_code == 404
    assert r.json()["detail"].startswith("延期申请 999 不存在 / ")
    task = hazard_task(client, auth)
    req = ask(client, auth, task).json()
    assert decide(client, auth, req["id"]).status_code == 200
    r = decide(client, auth, req["id"])
    assert r.status_code == 409 and r.json()["detail"].startswith("该申请已同意延期 / ")


def test_lapsed_requests_are_listed_filterable_and_refused_as_lapsed(
    client: TestClient, auth: Auth
) -> None:
    """A request still pending when its task was done lapses; every view of requests shows
    it as such (one lapse used to make them all answer 500)."""
    task = hazard_task(client, auth)
    req = ask(client, auth, task).json()
    done = client.post(f"/api/tasks/{task['id']}/complete", json={"note": "已整改"},
                       headers=auth("c1-grid"))
    assert done.status_code == 200, done.text
    for who in ("s1-head", "c1-grid"):
        listed = client.get("/api/extension-requests", headers=auth(who))
        assert listed.status_code == 200, listed.text
        assert [(r["id"], r["status"]) for r in listed.json()["data"]] == [(req["id"], "lapsed")]
        one = client.get(f"/api/extension-requests/{req['id']}", headers=auth(who))
        assert one.status_code == 200 and one.json()["status"] == "lapsed"
    only = client.get("/api/extension-requests", params={"status": "lapsed"},
                      headers=auth("s1-head"))
    assert only.status_code == 200 and len(only.json()["data"]) == 1
    # Nothing to decide is the answer, with or without a note.
    refused = decide(client, auth, req["id"], approve=False)
    assert refused.status_code == 409 and "已失效" in refused.json()["detail"], refused.text


def test_a_request_after_the_deadline_is_409_past_deadline_and_one_in_time_is_still_decided(
        client: TestClient, auth: Auth, clock: ManualClock) -> None:
    task = hazard_task(client, auth)
    in_time = ask(client, auth, task, due_at=later(task, days=20))
    assert in_time.status_code == 201, in_time.text
    late = hazard_task(client, auth)
    clock.advance(timedelta(days=12))  # both past their deadline (10 days)
    r = ask(client, auth, late, due_at=later(late, days=20))
    assert r.status_code == 409, r.text
    answer = r.json()
    assert answer["error"] == "extension_past_deadline" and answer["current"] == "ready"
    assert answer["detail"].startswith(f"任务期限 {late['due_at_local']} 已过，不能再申请延期")
    assert client.get(f"/api/extension-requests?task={late['id']}",
                      headers=auth("c1-grid")).json()["count"] == 0
    # Asked in time, the decision may come after the deadline (its own days to decide).
    decided = decide(client, auth, in_time.json()["id"])
    assert decided.status_code == 200 and decided.json()["status"] == "approved"
    # The 409 is in the route's documentation.
    doc = client.get("/openapi.json").json()
    responses = doc["paths"]["/api/tasks/{task_id}/extension-requests"]["post"]["responses"]
    assert "extension_past_deadline" in responses["409"]["description"]
