"""GET /api/tasks by unit, for steps a playbook holds above their event (`at: district`).

The gas leak's duty-room steps are the district duty room's (unit_id pingshan) whichever
community the leak is in; the leak in community 六和 (liuhe) is still liuhe's event. A list by
the unit where the event is finds its tasks, and a street commander's own list (the work of
their unit and below) has the duty-room steps of the runs in their street; doing them stays
with the duty room. On SQLite and on a real PostgreSQL, through the shipped playbooks and the
demo district 坪山区 (plus one fan-out playbook whose items are held at their street)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime, run_steps, step_row
from fastapi.testclient import TestClient
from gas_leak_walk import finish, start

from flows import lifecycle
from flows.access import can_read_step
from flows.bulk_plan import NewRun
from flows.bulk_start import bulk_start
from flows.params import validate_params
from flows.runtime import Runtime
from models.clock import ManualClock
from models.db import session_scope

Auth = Callable[[str], dict[str, str]]

DISTRICT_COMMANDER = "wang-qiang"  # 王强, pingshan (the district)
DUTY_OFFICER = "pingshan-duty-1"  # 黄磊, the district duty room: the leak's `receive` is his
STREET_COMMANDER = "pingshan-street-commander"  # 胡红霞, 坪山街道 (liuhe, heping are below it)
STREET_DUTY = "pingshan-street-duty"  # 梁子健, the street's duty officer
OTHER_STREET_COMMANDER = "maluan-commander"  # 郝家豪, 马峦街道

# Roll call of every community of the run's unit, each item held at its street: a run of the
# street itself keeps every instance at the street, while each item's event is its community.
ROLL_CALL = """id: roll-call
version: 1
title: 社区叫应
kind: test
params:
  location: {type: string, required: true}
steps:
  - id: call
    title: 叫应
    role: duty_officer
    at: street
    for_each: "units(type='community')"
"""


# A district-held step that takes requests for more time: one about a liuhe event.
HELD_EXTENSION = """id: held-ext
version: 1
title: 区级办理
kind: test
params:
  location: {type: string, required: true}
steps:
  - id: work
    title: 区值班室办理
    role: duty_officer
    at: district
    due: 1d
    extension: {role: duty_leader}
"""


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("books") / "playbooks"
    shutil.copytree(SHIPPED_PLAYBOOKS, folder)
    (folder / "roll-call.yaml").write_text(ROLL_CALL, encoding="utf-8")
    (folder / "held-ext.yaml").write_text(HELD_EXTENSION, encoding="utf-8")
    return folder


@pytest.fixture(params=["sqlite", "postgresql"])
def rt(request: pytest.FixtureRequest, books: Path, tmp_path: Path,
       clock: ManualClock) -> Iterator[Runtime]:
    db_url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    rt = make_runtime(tmp_path / "demo", clock=clock, playbooks=books, org_path=DEMO_ORG,
                      db_url=db_url)
    assert rt.catalog.errors == []
    assert rt.db.dialect.name == request.param
    yield rt
    rt.db.dispose()


def leak(client: TestClient, auth: Auth, unit: str = "liuhe") -> dict[str, Any]:
    r = client.post("/api/runs", headers=auth(DISTRICT_COMMANDER), json={
        "playbook": "gas-leak", "unit": unit, "params": {"location": "六和社区幸福里3栋"}})
    assert r.status_code == 201, r.text
    run: dict[str, Any] = r.json()
    return run


def listed(client: TestClient, auth: Auth, who: str, **query: Any) -> list[tuple[int, str]]:
    """(run, step) of every task the list gives `who` (one page holds them all here)."""
    r = client.get("/api/tasks", params={"limit": 500, **query}, headers=auth(who))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == len(body["data"])
    return [(t["run_id"], t["step"]) for t in body["data"]]


# --- the defect ---------------------------------------------------------------------------------

@pytest.mark.parametrize("who", [DISTRICT_COMMANDER, DUTY_OFFICER, STREET_COMMANDER])
def test_a_unit_filter_finds_the_duty_room_step_of_an_event_there(
        client: TestClient, auth: Auth, who: str) -> None:
    run = leak(client, auth)
    receive = next(s for s in run["steps"] if s["step"] == "receive")
    assert (receive["status"], receive["unit_id"]) == ("ready", "pingshan")  # held above
    assert receive["origin_unit_id"] == "liuhe"  # the view says why it is liuhe's too
    for unit in ("liuhe", "pingshan-street"):
        assert (run["id"], "receive") in listed(client, auth, who, unit=unit), (who, unit)
    # Narrowed to a neighbouring community, it is not there.
    assert (run["id"], "receive") not in listed(client, auth, who, unit="heping")


@pytest.mark.parametrize("query", [{}, {"unit": "pingshan-street"}, {"unit": "pingshan"},
                                   {"status": "open"}, {"unit": "liuhe", "status": "ready"}])
def test_a_street_commanders_list_has_the_duty_room_steps_of_runs_in_the_street(
        client: TestClient, auth: Auth, query: dict[str, str]) -> None:
    run = leak(client, auth)
    assert (run["id"], "receive") in listed(client, auth, STREET_COMMANDER, **query)
    # The run filter always showed it; the list without one now agrees with it.
    assert (run["id"], "receive") in listed(client, auth, STREET_COMMANDER, run=run["id"])


def test_the_duty_officers_inbox_narrowed_to_the_events_unit_keeps_its_task(
        client: TestClient, auth: Auth) -> None:
    run = leak(client, auth)
    inbox = listed(client, auth, DUTY_OFFICER, mine="true", unit="liuhe")
    assert inbox == [(run["id"], "receive")]
    assert listed(client, auth, DUTY_OFFICER, mine="true", unit="heping") == []


def test_a_step_held_where_its_event_is_is_found_as_before(
        client: TestClient, auth: Auth) -> None:
    # A leak reported at the district itself: held where it is, nothing else to remember.
    run = leak(client, auth, unit="pingshan")
    assert (run["id"], "receive") in listed(client, auth, DISTRICT_COMMANDER, unit="pingshan")
    assert (run["id"], "receive") not in listed(client, auth, DISTRICT_COMMANDER,
                                                unit="pingshan-street")
    assert (run["id"], "receive") not in listed(client, auth, STREET_COMMANDER)


# --- and no further -----------------------------------------------------------------------------

def test_another_street_neither_lists_nor_opens_it(client: TestClient, auth: Auth) -> None:
    run = leak(client, auth)
    receive = next(s for s in run["steps"] if s["step"] == "receive")
    assert (run["id"], "receive") not in listed(client, auth, OTHER_STREET_COMMANDER)
    r = client.get("/api/tasks", params={"unit": "liuhe"},
                   headers=auth(OTHER_STREET_COMMANDER))
    assert r.status_code == 403, r.text  # not an empty list: liuhe is outside 马峦街道
    assert client.get(f"/api/tasks/{receive['id']}",
                      headers=auth(OTHER_STREET_COMMANDER)).status_code == 403


def test_the_street_duty_officer_sees_the_district_duty_rooms_step_but_does_not_do_it(
        client: TestClient, auth: Auth) -> None:
    run = leak(client, auth)
    receive = next(s for s in run["steps"] if s["step"] == "receive")
    assert (run["id"], "receive") in listed(client, auth, STREET_DUTY)
    assert client.get(f"/api/tasks/{receive['id']}", headers=auth(STREET_DUTY)).status_code \
        == 200
    # Not in their inbox, and not theirs to acknowledge: the duty room at the district holds it.
    assert (run["id"], "receive") not in listed(client, auth, STREET_DUTY, mine="true")
    refused = client.post(f"/api/tasks/{receive['id']}/ack", headers=auth(STREET_DUTY))
    assert refused.status_code == 403, refused.text
    assert client.post(f"/api/tasks/{receive['id']}/ack",
                       headers=auth(DUTY_OFFICER)).status_code == 200


def test_reading_a_task_follows_the_lists_rule_without_the_run_too(
        rt: Runtime, client: TestClient, auth: Auth) -> None:
    run = leak(client, auth)
    receive = step_row(rt, run["id"], "receive")
    # By the step alone (no run unit given): the street's people read it, 马峦's do not.
    assert can_read_step(rt.org, STREET_DUTY, receive)
    assert can_read_step(rt.org, "liuhe-grid", receive)
    assert not can_read_step(rt.org, OTHER_STREET_COMMANDER, receive)
    assert not can_read_step(rt.org, "heping-grid", receive)


# --- what each step row remembers ----------------------------------------------------------------

def test_each_step_row_keeps_where_its_event_is_when_at_holds_it_elsewhere(
        rt: Runtime, client: TestClient, auth: Auth) -> None:
    run_id = start(rt)
    finish(rt, run_id, "receive")  # the first report (at: district) and the rescue follow
    rows = run_steps(rt, run_id)
    held = {s.step_key for s in rows if s.unit_id == "pingshan"}
    local = {s.step_key for s in rows if s.unit_id == "liuhe"}
    assert "receive" in held and any(k.startswith("report.") for k in held)
    assert any(k.startswith("rescue.") for k in local)
    assert held | local == {s.step_key for s in rows}
    for s in rows:  # set only where it differs from the unit that holds the step
        assert s.origin_unit_id == ("liuhe" if s.unit_id == "pingshan" else None), s.step_key
    tasks = {k for r, k in listed(client, auth, STREET_COMMANDER, unit="liuhe") if r == run_id}
    assert tasks == {s.step_key for s in rows if s.action == "task"}


def test_runs_started_in_bulk_keep_it_too(rt: Runtime, client: TestClient, auth: Auth) -> None:
    one = lifecycle.start_run(rt, playbook_id="gas-leak", unit_id="liuhe",
                              params={"location": "六和社区"}, actor=DISTRICT_COMMANDER)
    playbook = rt.catalog.get("gas-leak")
    with session_scope(rt.db) as session:
        result = bulk_start(session, rt, playbook=playbook, actor=DISTRICT_COMMANDER, runs=[
            NewRun(unit, validate_params(playbook, {"location": "某地"}))
            for unit in ("liuhe", "pingshan")])
    assert result.fast == 2

    def rows(run_id: int) -> list[tuple[str, str, str | None, str | None]]:
        return [(s.step_key, s.unit_id, s.origin_unit_id, s.assignee_unit_id)
                for s in run_steps(rt, run_id)]

    in_liuhe, at_district = result.run_ids
    assert rows(in_liuhe) == rows(one.id or 0)
    assert rows(in_liuhe) == [("receive", "pingshan", "liuhe", "pingshan")]
    assert rows(at_district) == [("receive", "pingshan", None, "pingshan")]
    found = listed(client, auth, STREET_COMMANDER, unit="liuhe")
    assert (in_liuhe, "receive") in found and (one.id, "receive") in found
    assert (at_district, "receive") not in found


def test_a_fan_out_item_is_listed_under_its_own_unit(
        rt: Runtime, client: TestClient, auth: Auth) -> None:
    r = client.post("/api/runs", headers=auth(STREET_COMMANDER), json={
        "playbook": "roll-call", "unit": "pingshan-street", "params": {"location": "全街道"}})
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    rows = run_steps(rt, run_id)
    by_item = {s.item["id"]: s for s in rows}
    assert {s.unit_id for s in rows} == {"pingshan-street"}  # every item held at the street
    assert by_item["liuhe"].origin_unit_id == "liuhe"
    assert by_item["heping"].origin_unit_id == "heping"
    for unit in ("liuhe", "heping"):
        r = client.get("/api/tasks", params={"unit": unit, "run": run_id},
                       headers=auth(STREET_COMMANDER))
        assert [t["id"] for t in r.json()["data"]] == [by_item[unit].id], unit
    # The street's duty officer does each one: the inbox narrowed to a community has its item.
    inbox = client.get("/api/tasks", params={"mine": "true", "unit": "heping"},
                       headers=auth(STREET_DUTY)).json()["data"]
    assert [t["id"] for t in inbox] == [by_item["heping"].id]


def test_a_street_commander_lists_requests_for_more_time_on_held_steps_of_the_street(
        client: TestClient, auth: Auth, rt: Runtime) -> None:
    run = client.post("/api/runs", headers=auth(DISTRICT_COMMANDER), json={
        "playbook": "held-ext", "unit": "liuhe", "params": {"location": "六和社区"}}).json()
    work = next(s for s in run["steps"] if s["step"] == "work")
    asked = client.post(f"/api/tasks/{work['id']}/extension-requests", headers=auth(DUTY_OFFICER),
                        json={"due_at": "2026-12-31T18:00:00+08:00", "reason": "等待检测结果"})
    assert asked.status_code == 201, asked.text
    for who in (STREET_COMMANDER, DISTRICT_COMMANDER):
        r = client.get("/api/extension-requests", headers=auth(who))
        assert r.status_code == 200, r.text
        assert [q["task_id"] for q in r.json()["data"]] == [work["id"]], who
    other = client.get("/api/extension-requests", headers=auth(OTHER_STREET_COMMANDER))
    assert other.json()["count"] == 0


def test_the_extension_request_list_narrows_by_unit(
        client: TestClient, auth: Auth, rt: Runtime) -> None:
    run = client.post("/api/runs", headers=auth(DISTRICT_COMMANDER), json={
        "playbook": "held-ext", "unit": "liuhe", "params": {"location": "六和社区"}}).json()
    work = next(s for s in run["steps"] if s["step"] == "work")
    assert client.post(f"/api/tasks/{work['id']}/extension-requests", headers=auth(DUTY_OFFICER),
                       json={"due_at": "2026-12-31T18:00:00+08:00", "reason": "等待检测结果"}
                       ).status_code == 201

    def count(unit: str) -> int:
        r = client.get("/api/extension-requests", params={"unit": unit},
                       headers=auth(DISTRICT_COMMANDER))
        assert r.status_code == 200, r.text
        return int(r.json()["count"])

    assert (count("liuhe"), count("pingshan-street"), count("heping"), count("maluan")) == \
        (1, 1, 0, 0)
    r = client.get("/api/extension-requests", params={"unit": "nowhere"},
                   headers=auth(DISTRICT_COMMANDER))
    assert r.status_code == 422 and r.json()["field"] == "unit"
