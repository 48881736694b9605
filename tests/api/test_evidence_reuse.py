"""A photo already handed in for a task of another run is told at upload (POST /api/evidence
with the `task` it is for), in the same cases completing that task with it is refused, and
names the earlier task only to someone who may read it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from factories import png_bytes
from fastapi.testclient import TestClient
from sqlmodel import func, select

from flows.runtime import Runtime
from models.db import read_session
from models.documents import Evidence

Auth = Callable[[str], dict[str, str]]  # the `auth` fixture (tests/api/conftest.py)

Json = dict[str, Any]
PHOTO = png_bytes(7, 5)


def start(client: TestClient, auth: Auth, unit: str, location: str) -> Json:
    r = client.post("/api/runs", headers=auth("s1-commander"), json={
        "playbook": "quick-escalation", "unit": unit, "params": {"location": location}})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def step(client: TestClient, auth: Auth, run: Json, key: str) -> int:
    """The task's id, read now: a step not yet reached has none in the start's answer."""
    got = client.get(f"/api/runs/{run['id']}", headers=auth("d1-admin")).json()
    return next(s["id"] for s in got["steps"] if s["step"] == key)  # type: ignore[no-any-return]


def act(client: TestClient, auth: Auth, task_id: int, who: str, body: Json) -> httpx.Response:
    return client.post(f"/api/tasks/{task_id}/complete", json=body, headers=auth(who))


def upload(client: TestClient, auth: Auth, who: str, task: int | None = None,
           data: bytes = PHOTO) -> httpx.Response:
    form = {"task": str(task)} if task is not None else None
    return client.post("/api/evidence", files={"file": ("现场.png", data, "image/png")},
                       data=form, headers=auth(who))


def inspect_ready(client: TestClient, auth: Auth, run: Json) -> int:
    r = act(client, auth, step(client, auth, run, "receive"), "s1-duty", {"note": "已登记"})
    assert r.status_code == 200, r.text
    return step(client, auth, run, "inspect")


def hand_in(client: TestClient, auth: Auth, task: int, who: str, evidence_id: str
            ) -> httpx.Response:
    return act(client, auth, task, who, {"note": "现场已处置", "evidence": [evidence_id]})


def test_upload_for_a_task_warns_when_the_photo_was_handed_in_for_another_run(
    client: TestClient, auth: Auth
) -> None:
    first = start(client, auth, "c1", "一社区3号楼")
    earlier = inspect_ready(client, auth, first)
    r = upload(client, auth, "c1-grid", earlier)
    assert r.status_code == 201 and r.json()["reused"] == [] and r.json()["warning"] is None
    assert hand_in(client, auth, earlier, "c1-grid", r.json()["id"]).status_code == 200

    later = inspect_ready(client, auth, start(client, auth, "c1", "一社区7号楼"))
    r = upload(client, auth, "c1-grid", later)  # last week's photo, uploaded for a new hazard
    assert r.status_code == 201, r.text  # stored all the same: completing is what refuses
    body = r.json()
    assert body["reused"] == [{"task_id": earlier, "task_title": "现场核查",
                               "run_id": first["id"], "run_title": first["title"]}]
    assert body["warning"].startswith(
        f"这张照片已用于「{first['title']}」的任务「现场核查」，作为本任务的证据提交时会被拒绝，"
        "请重新拍照 / ")
    # The warning says what completing does with it.
    refused = hand_in(client, auth, later, "c1-grid", body["id"])
    assert refused.status_code == 422 and "另一流程实例" in refused.json()["detail"]
    # Without `task` nothing is said (the run it is for is unknown); a new photo is fine.
    assert upload(client, auth, "c1-grid").json()["reused"] == []
    fresh = upload(client, auth, "c1-grid", later, png_bytes(2, 9)).json()
    assert fresh["reused"] == [] and fresh["warning"] is None
    assert hand_in(client, auth, later, "c1-grid", fresh["id"]).status_code == 200


def test_upload_does_not_warn_of_a_step_of_the_same_run(client: TestClient, auth: Auth) -> None:
    # The scene as found at registration, and again in the inspection: one incident, allowed.
    run = start(client, auth, "c1", "一社区3号楼")
    receive = step(client, auth, run, "receive")
    found = upload(client, auth, "s1-duty", receive).json()["id"]
    assert hand_in(client, auth, receive, "s1-duty", found).status_code == 200
    inspect = step(client, auth, run, "inspect")
    again = upload(client, auth, "c1-grid", inspect).json()
    assert again["reused"] == [] and again["warning"] is None
    assert hand_in(client, auth, inspect, "c1-grid", again["id"]).status_code == 200


def test_upload_does_not_name_a_task_the_uploader_may_not_read(
    client: TestClient, auth: Auth
) -> None:
    neighbours = start(client, auth, "c2", "二社区幸福路5号")
    theirs = inspect_ready(client, auth, neighbours)
    photo = upload(client, auth, "c2-grid", theirs).json()["id"]
    assert hand_in(client, auth, theirs, "c2-grid", photo).status_code == 200

    mine = inspect_ready(client, auth, start(client, auth, "c1", "一社区3号楼"))
    r = upload(client, auth, "c1-grid", mine)
    assert r.json()["reused"] == [{"task_id": None, "task_title": None, "run_id": None,
                                   "run_title": None}]
    assert r.json()["warning"].startswith("这张照片已用于另一流程实例中的任务，")
    assert "幸福路" not in r.text and neighbours["title"] not in r.text
    # Their street's inspector, who reads both, is told which.
    assert upload(client, auth, "s1-insp1", mine).json()["reused"][0]["task_id"] == theirs


def test_upload_for_a_task_one_may_not_read_is_refused_before_storing(
    client: TestClient, auth: Auth, rt: Runtime
) -> None:
    task = step(client, auth, start(client, auth, "c1", "一社区3号楼"), "receive")
    assert upload(client, auth, "s2-insp", task).status_code == 403  # another street's
    assert upload(client, auth, "c1-grid", 999_999).status_code == 404
    assert upload(client, auth, "c1-grid", 0).status_code == 422
    with read_session(rt.db) as session:
        assert session.exec(select(func.count()).select_from(Evidence)).one() == 0
