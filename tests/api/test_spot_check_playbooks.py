"""The two duty-room playbooks of seeds/002 through the API, on the embedded defaults (shipped
playbooks, demo district): 卫星监测热点核查反馈 (hotspot-check) and 一键通抽查随机签到 (roll-call)
are listed by GET /api/playbooks and startable by the duty room with POST /api/runs; a bad value
is a 422 naming the field, and nothing is started."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from flows.runtime import Runtime

Auth = Callable[[str], dict[str, str]]
HOTSPOT = {"place": "马峦山北坡", "lat": 22.6531, "lon": 114.3702,
           "observed_at": "2026-03-02T08:42:00+08:00", "hotspot_no": "FY3D-20260302-017"}


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo


def test_both_are_listed_with_their_kinds(client: TestClient, auth: Auth) -> None:
    body = client.get("/api/playbooks", headers=auth("pingshan-duty-1")).json()
    listed = {p["id"]: p for p in body["data"]}
    assert body["errors"] == []
    assert (listed["hotspot-check"]["title"], listed["hotspot-check"]["kind"]) == (
        "卫星监测热点核查反馈", "response")
    assert (listed["roll-call"]["title"], listed["roll-call"]["kind"]) == (
        "一键通抽查随机签到", "duty-check")
    # The duty officer may start both where the duty room serves (the district and below).
    me = client.get("/api/me", headers=auth("pingshan-duty-1")).json()
    assert {"hotspot-check", "roll-call"} <= {p["id"] for p in me["startable"]}


def test_the_duty_room_starts_a_hotspot_check_and_a_bad_coordinate_is_named(
        client: TestClient, auth: Auth) -> None:
    headers = auth("pingshan-duty-1")
    r = client.post("/api/runs", headers=headers, json={
        "playbook": "hotspot-check", "unit": "jiangling", "params": HOTSPOT | {"lat": 95}})
    assert r.status_code == 422 and r.json()["field"] == "params.lat", r.text
    assert client.get("/api/runs", headers=headers).json()["count"] == 0
    r = client.post("/api/runs", headers=headers, json={
        "playbook": "hotspot-check", "unit": "jiangling", "params": HOTSPOT})
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["title"] == "卫星监测热点核查反馈·马峦山北坡·江岭社区"
    # The duty room's receipt is handed out; the rest are listed, not reached yet.
    assert [(s["step"], s["status"]) for s in run["steps"] if s["id"] is not None] == [
        ("receive", "ready")]
    assert run["steps"][0]["due_at"] is not None


def test_the_duty_room_starts_a_roll_call_and_sees_who_was_drawn(
        client: TestClient, auth: Auth) -> None:
    headers = auth("pingshan-duty-1")
    r = client.post("/api/runs", headers=headers, json={
        "playbook": "roll-call", "unit": "pingshan", "params": {"count": 0}})
    assert r.status_code == 422 and r.json()["field"] == "params.count", r.text
    r = client.post("/api/runs", headers=headers, json={
        "playbook": "roll-call", "unit": "pingshan", "params": {"count": 3}})
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    steps = client.get(f"/api/runs/{run_id}", headers=headers).json()["steps"]
    called = [s for s in steps if s["step"] == "call"]
    assert len(called) == 3 and {s["status"] for s in called} == {"ready"}
    assert all([p["id"] for p in s["assignees"]] == [f"{s['unit_id']}-head"] for s in called)
    # A community's head drawn finds the call in the inbox.
    head = called[0]["assignees"][0]["id"]
    inbox = client.get("/api/tasks", params={"mine": "true"}, headers=auth(head)).json()
    assert [t["id"] for t in inbox["data"]] == [called[0]["id"]]


def test_their_chinese_reads_without_gaps(rt: Runtime) -> None:
    """A folded (>-) description joins its lines with a space: in Chinese a gap mid-sentence
    (工业热源、 其他热源) on the grid worker's phone and the duty room's start page."""
    gap = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef] [\u3000-\u303f\u4e00-\u9fff"
                     r"\uff00-\uffef]")
    for playbook_id in ("hotspot-check", "roll-call"):
        playbook = rt.catalog.get(playbook_id)
        texts = [playbook.description or "", *(s.description or "" for s in playbook.steps)]
        assert [t for t in texts if gap.search(t)] == [], playbook_id
