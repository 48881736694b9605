"""Rules of the runs and tasks endpoints found by the exploratory test, on the shipped playbooks
and the demo district 坪山区: text params checked on POST /api/runs (blank, NaN, length, control
and bidi characters), a title that fits its column, `unit` narrowing an inbox, comma lists and
known playbooks in the runs list, both languages in every filter error, and one rule for reading
a run and its steps."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime
from fastapi.testclient import TestClient

from api.auth import make_token
from api.main import create_app
from flows.params import MAX_TEXT
from flows.runtime import Runtime
from models.clock import ManualClock

Json = dict[str, Any]


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo


def start(client: TestClient, auth: Any, params: Json, *, unit: str = "liuhe",
          who: str = "wang-qiang", playbook: str = "gas-leak") -> Json:
    r = client.post("/api/runs", json={"playbook": playbook, "unit": unit, "params": params},
                    headers=auth(who))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def refused(r: Any, field: str) -> str:
    """The message of a 422 on `field` (without the field name the detail starts with)."""
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field, r.text
    return r.json()["errors"][0]["message"]  # type: ignore[no-any-return]


def ids(page: Json) -> list[int]:
    return [item["id"] for item in page["data"]]


# --- text params on POST /api/runs -----------------------------------------------------------

# NaN, NUL and bodies over 1 MB never reach the params: the HTTP layer refuses them as `body`.
# What does reach them is held to flows.params (tests/flows/test_params_text.py covers the rest).
@pytest.mark.parametrize(("location", "words"), [
    ("", "不能为空白"),
    ("   ", "must not be blank"),
    ("\u3000", "must not be blank"),
    ("x" * (MAX_TEXT + 1), f"at most {MAX_TEXT}"),
    ("六和\x07社区", "U+0007"),
    ("六和\x1b[2J社区", "U+001B"),
    ("六和\u202e区社", "U+202E"),
    ("六和\u2067社区", "U+2067"),
])
def test_start_refuses_a_location_that_is_no_location(
    client: TestClient, auth: Any, location: str, words: str
) -> None:
    r = client.post("/api/runs", json={"playbook": "gas-leak", "unit": "liuhe",
                                       "params": {"location": location}},
                    headers=auth("wang-qiang"))
    message = refused(r, "params.location")
    assert words in message and " / " in message
    assert client.get("/api/runs", headers=auth("wang-qiang")).json()["count"] == 0


def test_a_location_over_the_cap_is_refused_and_the_list_stays_small(
    client: TestClient, auth: Any
) -> None:
    r = client.post("/api/runs", json={"playbook": "gas-leak", "unit": "liuhe",
                                       "params": {"location": "坪" * 100_000}},
                    headers=auth("wang-qiang"))
    refused(r, "params.location")
    assert len(r.content) < 1000  # the value is not echoed back
    start(client, auth, {"location": "坪" * MAX_TEXT})
    listed = client.get("/api/runs", headers=auth("wang-qiang"))
    assert listed.json()["count"] == 1 and len(listed.content.decode()) < 3 * MAX_TEXT


def test_a_run_with_a_long_location_gets_a_title_of_at_most_300_characters(
    client: TestClient, auth: Any
) -> None:
    run = start(client, auth, {"location": "坪山区六和社区幸福里" * 200})
    assert len(run["title"]) == 300 and run["title"].endswith("…")
    assert run["params"]["location"] == "坪山区六和社区幸福里" * 200


def test_a_negative_casualty_count_is_refused(client: TestClient, auth: Any) -> None:
    r = client.post("/api/runs", json={"playbook": "gas-leak", "unit": "liuhe",
                                       "params": {"location": "六和社区", "casualties": -5}},
                    headers=auth("wang-qiang"))
    assert refused(r, "params.casualties") == "不能小于 0；收到 -5 / must be at least 0; got -5"


# --- an inbox narrowed to a unit -------------------------------------------------------------

def test_my_tasks_in_a_unit_are_only_those_in_that_unit_and_below(
    client: TestClient, auth: Any
) -> None:
    # The district duty room takes the alert (gas-leak `at: district`); then the street duty
    # officer dispatches the rescue team for every community of 坪山街道 (and no other).
    liuhe = start(client, auth, {"location": "六和社区"}, unit="liuhe")
    heping = start(client, auth, {"location": "和平社区"}, unit="heping")
    for run in (liuhe, heping):
        receive = next(s for s in run["steps"] if s["step"] == "receive")
        r = client.post(f"/api/tasks/{receive['id']}/complete", json={"outputs": {}},
                        headers=auth("pingshan-duty-1"))
        assert r.status_code == 200, r.text
    liuhe, heping = liuhe["id"], heping["id"]
    me = auth("pingshan-street-duty")

    def inbox(**query: str) -> list[int]:
        r = client.get("/api/tasks", params={"mine": "true", **query}, headers=me)
        assert r.status_code == 200, r.text
        assert r.json()["count"] == len(r.json()["data"])
        return sorted(t["run_id"] for t in r.json()["data"])

    assert inbox() == [liuhe, heping]
    assert inbox(unit="maluan") == []  # another street: it returned all of them before
    assert inbox(unit="liuhe") == [liuhe]
    assert inbox(unit="pingshan-street") == [liuhe, heping]  # a unit and the units below it
    assert inbox(unit="pingshan") == [liuhe, heping]
    r = client.get("/api/tasks", params={"mine": "true", "unit": "nowhere"}, headers=me)
    assert refused(r, "unit") == "没有单位 nowhere / unknown unit 'nowhere'"


# --- filter errors in both languages -------------------------------------------------------------

@pytest.mark.parametrize(("path", "query", "field", "words"), [
    ("/api/runs", {"unit": "nowhere"}, "unit", "没有单位 nowhere / unknown unit 'nowhere'"),
    ("/api/tasks", {"unit": "nowhere"}, "unit", "没有单位 nowhere / unknown unit 'nowhere'"),
    ("/api/tasks", {"status": "bogus"}, "status", "不认识的状态 bogus，可选：open, pending, "),
    ("/api/tasks", {"status": "open,bogus"}, "status", " / unknown status 'bogus' (known: "),
    ("/api/runs", {"status": "bogus"}, "status", "不认识的状态 bogus，可选：running, "),
])
def test_filter_errors_speak_chinese_then_english(
    client: TestClient, auth: Any, path: str, query: Json, field: str, words: str
) -> None:
    detail = refused(client.get(path, params=query, headers=auth("sun-li")), field)
    assert words in detail


# --- the runs list: status lists and known playbooks ---------------------------------------------

def test_runs_status_takes_a_comma_list_checking_each(client: TestClient, auth: Any) -> None:
    running = start(client, auth, {"location": "六和社区"})["id"]
    cancelled = start(client, auth, {"location": "和平社区"}, unit="heping")["id"]
    r = client.post(f"/api/runs/{cancelled}/cancel", json={"reason": "误报"},
                    headers=auth("wang-qiang"))
    assert r.status_code == 200
    me = auth("sun-li")

    def listed(status: str) -> list[int]:
        r = client.get("/api/runs", params={"status": status}, headers=me)
        assert r.status_code == 200, r.text
        return ids(r.json())

    assert listed("running,cancelled") == [cancelled, running]
    assert listed("cancelled,running,cancelled") == [cancelled, running]
    assert listed("running") == [running]
    assert listed("completed,failed") == []
    r = client.get("/api/runs", params={"status": "running,bogus"}, headers=me)
    assert "unknown status 'bogus'" in refused(r, "status")
    r = client.get("/api/runs", params={"status": "running,"}, headers=me)
    assert "unknown status ''" in refused(r, "status")


def test_runs_of_an_unknown_playbook_is_422_listing_the_known(
    client: TestClient, auth: Any, rt: Runtime
) -> None:
    start(client, auth, {"location": "六和社区"})
    r = client.get("/api/runs", params={"playbook": "nope"}, headers=auth("sun-li"))
    known = ", ".join(sorted(rt.catalog.current))
    assert "gas-leak, hazard-3030" in known
    assert refused(r, "playbook") == (f"没有流程 nope，可选：{known} / unknown playbook 'nope' "
                                      f"(known: {known})")
    # A loaded playbook with no runs yet is a fine filter.
    r = client.get("/api/runs", params={"playbook": "campaign-3030"}, headers=auth("sun-li"))
    assert r.status_code == 200 and r.json()["count"] == 0


def test_runs_of_a_playbook_removed_since_stay_listable(tmp_path: Path,
                                                        clock: ManualClock) -> None:
    books = tmp_path / "playbooks"
    shutil.copytree(SHIPPED_PLAYBOOKS, books)
    rt = make_runtime(tmp_path / "data", clock=clock, playbooks=books, org_path=DEMO_ORG)
    try:
        secret = rt.settings.signing_secret()
        me = {"Authorization": f"Bearer {make_token('sun-li', secret)}"}
        boss = {"Authorization": f"Bearer {make_token('wang-qiang', secret)}"}
        with TestClient(create_app(rt, background=False, prefect=False)) as client:
            r = client.post("/api/runs", headers=boss, json={
                "playbook": "gas-leak", "unit": "liuhe", "params": {"location": "六和社区"}})
            assert r.status_code == 201, r.text
            run_id = r.json()["id"]
            (books / "gas-leak.yaml").unlink()
            rt.catalog.reload()
            assert "gas-leak" not in rt.catalog.current
            r = client.get("/api/runs", params={"playbook": "gas-leak"}, headers=me)
            assert r.status_code == 200, r.text
            assert ids(r.json()) == [run_id]
            r = client.get("/api/runs", params={"playbook": "nope"}, headers=me)
            assert r.status_code == 422
            known = ", ".join(sorted({*rt.catalog.current, "gas-leak"}))
            assert f"(known: {known})" in r.json()["detail"]
    finally:
        rt.db.dispose()


# --- reading a run and its steps: one rule ----------------------------------------------

@pytest.fixture
def street_run(client: TestClient, auth: Any) -> Json:
    """A gas leak handled by 坪山街道 itself: its steps are in the street, above 六和社区, or
    held at the district (the duty room's, `at: district`)."""
    run = start(client, auth, {"location": "坪山街道办门前"}, unit="pingshan-street",
                who="pingshan-street-commander")
    assert {s["unit_id"] for s in run["steps"]} == {"pingshan-street", "pingshan"}
    return run


def test_who_may_read_a_run_may_read_each_of_its_steps(
    client: TestClient, auth: Any, street_run: Json
) -> None:
    grid = auth("liuhe-grid")  # 六和社区's grid worker: the street is above their community
    shown = client.get(f"/api/runs/{street_run['id']}", headers=grid)
    assert shown.status_code == 200
    steps = [s for s in shown.json()["steps"] if s["id"] is not None]  # null: not reached yet
    assert steps
    for step in steps:
        r = client.get(f"/api/tasks/{step['id']}", headers=grid)
        assert r.status_code == 200, r.text
        assert r.json() == step
    # The run's tasks list alike, whatever unit they are in.
    tasks = client.get("/api/tasks", params={"run": street_run["id"]}, headers=grid).json()
    assert ids(tasks) == [s["id"] for s in steps if s["action"] == "task"]


def test_who_may_not_read_the_run_reads_none_of_its_steps(
    client: TestClient, auth: Any, street_run: Json
) -> None:
    other = auth("maluan-community-grid")  # 马峦街道: another branch of the tree
    assert client.get(f"/api/runs/{street_run['id']}", headers=other).status_code == 403
    for step in (s for s in street_run["steps"] if s["id"] is not None):
        assert client.get(f"/api/tasks/{step['id']}", headers=other).status_code == 403
    tasks = client.get("/api/tasks", params={"run": street_run["id"]}, headers=other).json()
    assert tasks["count"] == 0


def test_the_task_list_without_a_run_keeps_to_the_callers_unit_and_below(
    client: TestClient, auth: Any, street_run: Json
) -> None:
    # Across runs, /api/tasks is the work of one's own unit and below: a grid worker is not
    # shown every street task of every district-wide run; within one run (above) they are.
    listed = client.get("/api/tasks", headers=auth("liuhe-grid")).json()
    assert listed["count"] == 0



# --- cancelling needs a reason where it leaves a register ---------------------------------

@pytest.mark.parametrize("body", [None, {}, {"reason": None}, {"reason": ""},
                                  {"reason": " \u3000 "}])
def test_a_hazard_is_cancelled_only_with_a_reason(
    client: TestClient, auth: Any, body: Json | None
) -> None:
    """A cancelled hazard leaves the registers, its campaign and the monthly ranking (where,
    overdue, it would count against its unit): the timeline must say why."""
    hazard = start(client, auth, {"location": "六和社区仓库", "grade": "一般"},
                   playbook="hazard-3030")
    kwargs = {} if body is None else {"json": body}
    r = client.post(f"/api/runs/{hazard['id']}/cancel", headers=auth("wang-qiang"), **kwargs)
    assert "撤销隐患须说明理由" in refused(r, "reason")
    after = client.get(f"/api/runs/{hazard['id']}", headers=auth("wang-qiang")).json()
    assert after["status"] == "running"
    assert [s["status"] for s in after["steps"] if s["id"]] == \
        [s["status"] for s in hazard["steps"] if s["id"]]
    listed = client.get(f"/api/hazards/{hazard['id']}", headers=auth("wang-qiang")).json()
    assert listed["closed_at"] is None and listed["status"] != "已撤销"

    r = client.post(f"/api/runs/{hazard['id']}/cancel", json={"reason": "重复登记，见 YH0001"},
                    headers=auth("wang-qiang"))
    assert r.status_code == 200, r.text
    timeline = client.get(f"/api/runs/{hazard['id']}", headers=auth("wang-qiang")).json()
    [event] = [e for e in timeline["timeline"] if e["action"] == "run_cancelled"]
    assert event["detail"]["reason"] == "重复登记，见 YH0001"


def test_a_response_may_still_be_called_off_at_once_without_a_reason(
    client: TestClient, auth: Any
) -> None:
    leak = start(client, auth, {"location": "六和社区"})
    r = client.post(f"/api/runs/{leak['id']}/cancel", headers=auth("wang-qiang"))
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
