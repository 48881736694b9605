"""A phone that lost the answer sends the same form again (SPEC §4: completing and verifying are
idempotent): the same hand-in or verdict by the same person is answered with the task as it
stands, recorded once; anything else on a task no longer open is still a 409. The shipped
hazard-3030 on the demo district, through the API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from factories import png_bytes
from fastapi.testclient import TestClient

from flows.runtime import Runtime

Auth = Callable[[str], dict[str, str]]
RECTIFIER = "liuhe-safety"
VERIFIER = "pingshan-street-inspector-2"


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo


def rectify_task(client: TestClient, auth: Auth) -> tuple[int, int]:
    r = client.post("/api/runs", headers=auth("liuhe-grid"), json={
        "playbook": "hazard-3030", "unit": "liuhe",
        "params": {"location": "六和社区横岭工业区12号3栋", "description": "安全出口锁闭"}})
    assert r.status_code == 201, r.text
    step = next(s for s in r.json()["steps"] if s["step"] == "rectify")
    return r.json()["id"], step["id"]


def hand_in(client: TestClient, auth: Auth) -> tuple[int, int, dict[str, Any]]:
    run_id, task_id = rectify_task(client, auth)
    ids = []
    for i, colour in enumerate([(200, 10, 10), (10, 200, 10)]):
        up = client.post("/api/evidence", headers=auth(RECTIFIER),
                         files={"file": (f"IMG_{i}.png", png_bytes(4, 4, colour), "image/png")})
        assert up.status_code == 201, up.text
        ids.append(up.json()["id"])
    form = {"note": "整改前后照片各一张", "evidence": ids,
            "evidence_labels": {ids[0]: "整改前", ids[1]: "整改后"},
            "outputs": {"done_measures": "已拆除门锁，恢复安全出口畅通", "cost": 0.8}}
    return run_id, task_id, form


def actions(client: TestClient, auth: Auth, run_id: int) -> list[str]:
    run = client.get(f"/api/runs/{run_id}", headers=auth(VERIFIER)).json()
    return [e["action"] for e in run["timeline"]]


def test_the_same_hand_in_sent_again_is_the_same_answer_recorded_once(
        client: TestClient, auth: Auth) -> None:
    run_id, task_id, form = hand_in(client, auth)
    first = client.post(f"/api/tasks/{task_id}/complete", json=form, headers=auth(RECTIFIER))
    assert first.status_code == 200, first.text
    again = client.post(f"/api/tasks/{task_id}/complete", json=form, headers=auth(RECTIFIER))
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "submitted"
    assert actions(client, auth, run_id).count("submitted") == 1
    inbox = client.get("/api/inbox", headers=auth(VERIFIER)).json()["data"]
    assert sum(n["kind"] == "verify" and n["step_id"] == task_id for n in inbox) == 1
    # Not the same form: still refused, naming the state.
    changed = client.post(f"/api/tasks/{task_id}/complete", headers=auth(RECTIFIER),
                          json={**form, "note": "另一份说明"})
    assert changed.status_code == 409 and changed.json()["current"] == "submitted"
    other = client.post(f"/api/tasks/{task_id}/complete", json=form, headers=auth(VERIFIER))
    assert other.status_code in (403, 409)


def test_the_same_verdict_sent_again_is_the_same_answer_recorded_once(
        client: TestClient, auth: Auth) -> None:
    run_id, task_id, form = hand_in(client, auth)
    assert client.post(f"/api/tasks/{task_id}/complete", json=form,
                       headers=auth(RECTIFIER)).status_code == 200
    reject = {"approve": False, "note": "照片未显示安全出口全貌，请补拍"}
    first = client.post(f"/api/tasks/{task_id}/verify", json=reject, headers=auth(VERIFIER))
    assert first.status_code == 200, first.text
    again = client.post(f"/api/tasks/{task_id}/verify", json=reject, headers=auth(VERIFIER))
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "rejected"
    assert actions(client, auth, run_id).count("rejected") == 1
    # Another verdict on work already sent back is not a retry.
    approve = client.post(f"/api/tasks/{task_id}/verify", json={"approve": True},
                          headers=auth(VERIFIER))
    assert approve.status_code == 409 and approve.json()["current"] == "rejected"

    assert client.post(f"/api/tasks/{task_id}/complete", json=form,
                       headers=auth(RECTIFIER)).status_code == 200
    ok = {"approve": True, "note": "复查合格"}
    assert client.post(f"/api/tasks/{task_id}/verify", json=ok,
                       headers=auth(VERIFIER)).status_code == 200
    again = client.post(f"/api/tasks/{task_id}/verify", json=ok, headers=auth(VERIFIER))
    assert again.status_code == 200 and again.json()["status"] == "done"
    assert actions(client, auth, run_id).count("verified") == 1
    # Someone else's verdict on the done task is a conflict, as before.
    late = client.post(f"/api/tasks/{task_id}/verify", json=ok,
                       headers=auth("pingshan-street-inspector-1"))
    assert late.status_code == 409 and late.json()["current"] == "done"


def test_a_rejection_sent_again_after_the_work_was_handed_in_anew_is_refused(
        client: TestClient, auth: Auth, clock: Any) -> None:
    """The verifier's answer to a rejection is lost; meanwhile the work is redone and handed in
    again; then the phone sends the rejection once more. It carries the hand-in it was about
    (`submitted_at` as read), so it is refused instead of sending back, unseen, work the reason
    was not written for."""
    run_id, task_id, form = hand_in(client, auth)
    assert client.post(f"/api/tasks/{task_id}/complete", json=form,
                       headers=auth(RECTIFIER)).status_code == 200
    seen = client.get(f"/api/tasks/{task_id}", headers=auth(VERIFIER)).json()["submitted_at"]
    reject = {"approve": False, "note": "照片未显示安全出口全貌，请补拍", "submitted_at": seen}
    assert client.post(f"/api/tasks/{task_id}/verify", json=reject,
                       headers=auth(VERIFIER)).status_code == 200
    clock.advance(timedelta(hours=2))
    redone = {**form, "note": "已补拍安全出口全貌"}
    assert client.post(f"/api/tasks/{task_id}/complete", json=redone,
                       headers=auth(RECTIFIER)).status_code == 200
    late = client.post(f"/api/tasks/{task_id}/verify", json=reject, headers=auth(VERIFIER))
    assert late.status_code == 409, late.text
    assert "重新提交" in late.json()["detail"] and late.json()["current"] == "submitted"
    assert actions(client, auth, run_id).count("rejected") == 1
    # A verdict on the hand-in as it now stands goes through.
    now_in = client.get(f"/api/tasks/{task_id}", headers=auth(VERIFIER)).json()["submitted_at"]
    ok = client.post(f"/api/tasks/{task_id}/verify", headers=auth(VERIFIER),
                     json={"approve": True, "note": "复查合格", "submitted_at": now_in})
    assert ok.status_code == 200 and ok.json()["status"] == "done", ok.text
