"""What re-inspection (复查) reads and leaves, through the API: the 整改前/整改后 marks go in
with the hand-in (`evidence_labels`), come back on the task and in the run's timeline, and a
hand-in missing the scene before is a 422 naming the field a page marks; work sent back is
listed as 退回整改, not as work never handed in. The shipped hazard-3030 on the demo
district."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from test_retried_hand_in import RECTIFIER, VERIFIER, hand_in

from flows.runtime import Runtime

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo


def test_the_marks_come_back_on_the_task_and_in_the_timeline(
        client: TestClient, auth: Auth) -> None:
    run_id, task_id, form = hand_in(client, auth)
    before, after = form["evidence"]
    r = client.post(f"/api/tasks/{task_id}/complete", json=form, headers=auth(RECTIFIER))
    assert r.status_code == 200, r.text
    marks = {before: "整改前", after: "整改后"}
    assert r.json()["evidence_labels"] == marks
    task = client.get(f"/api/tasks/{task_id}", headers=auth(VERIFIER)).json()
    assert task["evidence_labels"] == marks
    run = client.get(f"/api/runs/{run_id}", headers=auth(VERIFIER)).json()
    [submitted] = [e for e in run["timeline"] if e["action"] == "submitted"]
    assert submitted["detail"]["evidence_labels"] == marks
    playbook = client.get("/api/playbooks/hazard-3030", headers=auth(VERIFIER)).json()
    rectify = next(s for s in playbook["steps"] if s["id"] == "rectify")
    assert rectify["evidence"]["labels"] == ["整改前", "整改后"]


def test_a_hand_in_without_the_scene_before_is_a_422_naming_what_is_missing(
        client: TestClient, auth: Auth) -> None:
    _, task_id, form = hand_in(client, auth)
    form["evidence_labels"] = dict.fromkeys(form["evidence"], "整改后")
    r = client.post(f"/api/tasks/{task_id}/complete", json=form, headers=auth(RECTIFIER))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "evidence_labels.整改前"
    assert "缺少整改前照片" in r.json()["detail"]
    task = client.get(f"/api/tasks/{task_id}", headers=auth(RECTIFIER)).json()
    assert task["status"] == "ready" and task["evidence"] == [] and task["evidence_labels"] == {}


def test_marks_that_are_not_an_object_of_texts_are_refused_by_name(
        client: TestClient, auth: Auth) -> None:
    _, task_id, form = hand_in(client, auth)
    for bad in (["整改前", "整改后"], {form["evidence"][0]: 1}):
        r = client.post(f"/api/tasks/{task_id}/complete", json=form | {"evidence_labels": bad},
                        headers=auth(RECTIFIER))
        assert r.status_code == 422, r.text
        assert r.json()["field"].startswith("evidence_labels"), r.text


def test_a_rectification_sent_back_is_listed_as_such_and_found_by_that_status(
        client: TestClient, auth: Auth) -> None:
    run_id, task_id, form = hand_in(client, auth)
    r = client.post(f"/api/tasks/{task_id}/complete", json=form, headers=auth(RECTIFIER))
    assert r.status_code == 200, r.text
    assert client.get(f"/api/hazards/{run_id}", headers=auth(VERIFIER)).json()["status"] == "复查中"
    r = client.post(f"/api/tasks/{task_id}/verify", headers=auth(VERIFIER),
                    json={"approve": False, "note": "整改后照片未显示安全出口"})
    assert r.status_code == 200, r.text
    assert client.get(f"/api/hazards/{run_id}", headers=auth(VERIFIER)).json()["status"] == \
        "退回整改"
    known = client.get("/api/registers/vocabulary", headers=auth(VERIFIER)).json()
    assert "退回整改" in known["statuses"]
    listed = client.get("/api/hazards", params={"status": "退回整改"}, headers=auth(VERIFIER))
    assert listed.status_code == 200, listed.text
    assert [h["run_id"] for h in listed.json()["data"]] == [run_id]
    # Handed in again: back to 复查中.
    r = client.post(f"/api/tasks/{task_id}/complete", json=form | {"note": "已补拍"},
                    headers=auth(RECTIFIER))
    assert r.status_code == 200, r.text
    assert client.get(f"/api/hazards/{run_id}", headers=auth(VERIFIER)).json()["status"] == "复查中"
