"""当前环节、当前办理人 in the 整改清单: where each open hazard waits and whose move it is, read
off the real runs of the shipped hazard-3030 on the demo district. The rectifier while it is
theirs to do; once handed in, the inspectors who may re-inspect it (not the one who handed
it in); sent back, the rectifier again. The same in the list, on one hazard and in the export,
which looks them up a chunk at a time as it streams."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from test_retried_hand_in import RECTIFIER, VERIFIER, hand_in

from flows import exports
from flows.runtime import Runtime
from flows.sweeper import sweep_once
from models.clock import ManualClock

Auth = Callable[[str], dict[str, str]]
MANAGER = "sun-li"  # 孙丽, the district's manager
SAFETY_NAME = "尹秀英"
INSPECTORS = "邓思远、潘立新"


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo


def listed(client: TestClient, auth: Auth) -> dict[int, tuple[str, str, str]]:
    r = client.get("/api/registers/rectification", headers=auth(MANAGER))
    assert r.status_code == 200, r.text
    return {h["run_id"]: (h["current_step"], h["current_step_status"],
                          "、".join(h["current_holder_names"])) for h in r.json()["data"]}


def exported(client: TestClient, auth: Auth) -> dict[str, tuple[str, str]]:
    return {code: row[:2] for code, row in exported_rows(client, auth).items()}


def exported_rows(client: TestClient, auth: Auth) -> dict[str, tuple[str, str, str]]:
    """code -> (当前环节, 当前办理人, 督办级别) in the export."""
    r = client.get("/api/registers/rectification/export", params={"format": "csv"},
                   headers=auth(MANAGER))
    assert r.status_code == 200, r.text
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    at = rows[0].index("当前环节")
    assert rows[0][at + 1: at + 3] == ["当前办理人", "督办级别"]
    return {row[0]: (row[at], row[at + 1], row[at + 2]) for row in rows[1:]}


def test_whose_move_it_is_follows_the_hand_in_and_the_verdict(
        client: TestClient, auth: Auth) -> None:
    run_id, task_id, form = hand_in(client, auth)
    assert listed(client, auth)[run_id] == ("隐患整改", "ready", SAFETY_NAME)
    code = client.get(f"/api/hazards/{run_id}", headers=auth(MANAGER)).json()["code"]
    assert exported(client, auth)[code] == ("隐患整改", SAFETY_NAME)

    r = client.post(f"/api/tasks/{task_id}/complete", json=form, headers=auth(RECTIFIER))
    assert r.status_code == 200, r.text
    assert listed(client, auth)[run_id] == ("隐患整改", "submitted", INSPECTORS)
    one = client.get(f"/api/hazards/{run_id}", headers=auth(MANAGER)).json()
    assert one["current_holders"] == ["pingshan-street-inspector-1",
                                      "pingshan-street-inspector-2"]
    assert exported(client, auth)[code] == ("隐患整改", INSPECTORS)

    r = client.post(f"/api/tasks/{task_id}/verify", headers=auth(VERIFIER),
                    json={"approve": False, "note": "整改后照片未显示安全出口"})
    assert r.status_code == 200, r.text
    assert listed(client, auth)[run_id] == ("隐患整改", "rejected", SAFETY_NAME)


def test_the_export_looks_holders_up_chunk_by_chunk(
        client: TestClient, auth: Auth, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = [hand_in(client, auth)[0] for _ in range(5)]
    monkeypatch.setattr(exports, "HOLDERS_CHUNK", 2)  # 5 hazards: chunks of 2, 2 and 1
    got = exported(client, auth)
    codes = {client.get(f"/api/hazards/{r}", headers=auth(MANAGER)).json()["code"]
             for r in runs}
    assert {code: got[code] for code in codes} == dict.fromkeys(
        codes, ("隐患整改", SAFETY_NAME))


def test_a_closed_hazard_is_held_by_nobody(client: TestClient, auth: Auth) -> None:
    run_id, _, _ = hand_in(client, auth)
    r = client.post(f"/api/runs/{run_id}/cancel", headers=auth("pingshan-street-commander"),
                    json={"reason": "重复登记"})
    assert r.status_code == 200, r.text
    one = client.get(f"/api/hazards/{run_id}", headers=auth(MANAGER)).json()
    assert (one["current_step"], one["current_holders"]) == (None, [])


def test_the_rung_the_chase_has_reached_is_in_the_list_and_the_export(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    """"Why is this hazard 12 days overdue, and has anyone been chased?": 督办级别 says how far
    the rectification's ladder has climbed (督办函, then 提级督办函), and once handed in, the
    re-inspection's own ladder (none yet)."""
    run_id, task_id, form = hand_in(client, auth)
    code = client.get(f"/api/hazards/{run_id}", headers=auth(MANAGER)).json()["code"]

    def rung() -> str | None:
        one = client.get(f"/api/hazards/{run_id}", headers=auth(MANAGER)).json()
        assert exported_rows(client, auth)[code][2] == (one["current_escalation"] or "")
        return one["current_escalation"]  # type: ignore[no-any-return]

    assert rung() is None
    clock.advance(timedelta(days=31))  # past the 30-day deadline: level 1 fires
    sweep_once(rt)
    assert rung() == "第1级：督办函"
    clock.advance(timedelta(days=3))
    sweep_once(rt)
    assert rung() == "第2级：提级督办函"
    r = client.post(f"/api/tasks/{task_id}/complete", json=form, headers=auth(RECTIFIER))
    assert r.status_code == 200, r.text
    assert rung() is None  # with the re-inspectors now, whose ladder has not begun
