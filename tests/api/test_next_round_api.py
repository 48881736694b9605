"""POST /api/runs/{id}/rounds: the next round of a recurring step handed out now, when the
situation changes (情况发生重大变化时随时续报), with a note saying why; the regular times go
on after it. Who may, what it refuses (a round still open, rounds not begun or ended, a step
that does not recur, no note), and how the run shows the round written ahead. Real app
through TestClient on SQLite; the clock moved."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import books_with
from fastapi.testclient import TestClient
from rounds_books import SITREP, TEMPLATE

from api.auth import make_token
from api.main import create_app
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def rt(make_rt: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    return make_rt(playbooks=books_with(tmp_path, {"sitrep.yaml": SITREP,
                                                   "templates/send.txt.j2": TEMPLATE}))


def shanghai(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 2, hour, minute, tzinfo=UTC) - timedelta(hours=8)


def steps(client: TestClient, auth: Auth, run_id: int) -> list[dict[str, Any]]:
    r = client.get(f"/api/runs/{run_id}", headers=auth("s1-commander"))
    assert r.status_code == 200, r.text
    return r.json()["steps"]


def of(client: TestClient, auth: Auth, run_id: int, key: str) -> list[dict[str, Any]]:
    return [s for s in steps(client, auth, run_id) if s["step"] == key]


def complete(client: TestClient, auth: Auth, step: dict[str, Any]) -> None:
    said = {"outputs": {"progress": "泄漏已控制"}} if step["step"] == "follow-up" else {}
    r = client.post(f"/api/tasks/{step['id']}/complete", json={"note": "已报"} | said,
                    headers=auth("s1-duty"))
    assert r.status_code == 200, r.text


def ask(client: TestClient, auth: Auth, run_id: int, person: str = "s1-duty",
        **body: Any) -> Any:
    return client.post(f"/api/runs/{run_id}/rounds",
                       json={"step": "follow-up", "note": "现场发现1人受伤送医"} | body,
                       headers=auth(person))


def test_the_next_round_is_handed_out_now_and_the_regular_times_go_on(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    r = client.post("/api/runs", json={"playbook": "sitrep", "unit": "s1", "params": {}},
                    headers=auth("s1-commander"))
    run_id = r.json()["id"]
    assert ask(client, auth, run_id).status_code == 409  # rounds not begun: no 续报 yet
    complete(client, auth, of(client, auth, run_id, "first")[0])
    first, ahead = of(client, auth, run_id, "follow-up")
    assert (ahead["status"], ahead["scheduled_at_local"]) == ("pending", "2026-03-02 16:00")
    assert first["scheduled_at"] is None

    drain_wakes(rt)
    r = ask(client, auth, run_id)  # the first round is still open: the change goes into it
    assert r.status_code == 409 and "“续报”尚未完成" in r.json()["detail"]
    complete(client, auth, first)

    clock.set(shanghai(11, 30))
    assert ask(client, auth, run_id, note="").status_code == 422
    r = ask(client, auth, run_id, note=None)
    assert r.status_code == 422 and r.json()["field"] == "note"
    r = ask(client, auth, run_id, step="first")
    assert r.status_code == 422 and r.json()["field"] == "step"
    assert "可选：follow-up" in r.json()["detail"]
    r = ask(client, auth, run_id, person="s2-insp")
    assert r.status_code == 403
    # Both who may, and who they are now: the duty officer who writes it, the commander.
    assert r.json()["detail"].startswith(
        "需要值班员（duty_officer）（一街道或上级单位；现任：")
    assert "或指挥长（commander）（一街道或上级单位；现任：" in r.json()["detail"]

    r = ask(client, auth, run_id)
    assert r.status_code == 200, r.text
    now = r.json()
    assert (now["status"], now["title"], now["due_at_local"]) == (
        "ready", "续报（第2次，03-02 12:30前）", "2026-03-02 12:30")
    assert now["assignees"][0]["id"] == "s1-duty"
    _, second, following = of(client, auth, run_id, "follow-up")
    assert second["id"] == now["id"]
    assert (following["status"], following["scheduled_at_local"], following["title"]) == (
        "pending", "2026-03-02 16:00", "续报（第3次，03-02 17:00前）")
    events = client.get(f"/api/runs/{run_id}", headers=auth("s1-commander")).json()["timeline"]
    [round_event] = [e for e in events if e["action"] == "round"]
    assert round_event["actor"] == "s1-duty"
    assert round_event["detail"]["note"] == "现场发现1人受伤送医"
    assert round_event["detail"]["early"] is True

    # The commander may ask too; the close ends the rounds, and then nobody may.
    complete(client, auth, second)
    assert ask(client, auth, run_id, person="s1-commander").status_code == 200
    complete(client, auth, of(client, auth, run_id, "follow-up")[2])
    complete(client, auth, of(client, auth, run_id, "close")[0])
    drain_wakes(rt)
    r = ask(client, auth, run_id)
    assert r.status_code == 409
    assert [s["status"] for s in of(client, auth, run_id, "follow-up")] == [
        "done", "done", "done", "cancelled"]


def test_a_round_asked_for_within_the_hour_before_the_next_stands_for_it(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    """Asked at 15:30, due 16:30: that is the 17:00 report. 16:00's round is not handed out
    beside it (the duty room would write the same report twice, half an hour apart, both
    chased); the next regular one is Tuesday 08:00's, and the timeline says so."""
    r = client.post("/api/runs", json={"playbook": "sitrep", "unit": "s1", "params": {}},
                    headers=auth("s1-commander"))
    run_id = r.json()["id"]
    complete(client, auth, of(client, auth, run_id, "first")[0])
    complete(client, auth, of(client, auth, run_id, "follow-up")[0])
    clock.set(shanghai(15, 30))
    r = ask(client, auth, run_id)
    assert r.status_code == 200, r.text
    assert r.json()["title"] == "续报（第2次，03-02 16:30前）"
    following = of(client, auth, run_id, "follow-up")[-1]
    assert (following["status"], following["scheduled_at_local"], following["title"]) == (
        "pending", "2026-03-03 07:00", "续报（第3次，03-03 08:00前）")
    clock.set(shanghai(16, 0) + timedelta(seconds=30))
    assert sweep_once(rt).rounds_started == 0
    assert [s["status"] for s in of(client, auth, run_id, "follow-up")] == [
        "done", "ready", "pending"]
    events = client.get(f"/api/runs/{run_id}", headers=auth("s1-commander")).json()["timeline"]
    [round_event] = [e for e in events if e["action"] == "round"]
    assert round_event["detail"]["stands_for_title"] == "03-02 17:00前"


def test_a_role_the_playbook_names_may_ask_too(make_rt: Callable[..., Runtime],
                                                tmp_path: Path, clock: ManualClock) -> None:
    """`recur.early_by: [duty_leader]`: the duty leader, who judges that the situation has
    changed, may ask for the round at once; without it they are refused, told who may."""
    text = SITREP.replace('recur: {at: ["07:00", "16:00"], until: [close]}',
                          'recur: {at: ["07:00", "16:00"], early_by: [duty_leader], '
                          'until: [close]}')
    assert text != SITREP
    for book, answer in ((SITREP, 403), (text, 200)):
        rt = make_rt(playbooks=books_with(tmp_path / str(answer), {
            "sitrep.yaml": book, "templates/send.txt.j2": TEMPLATE}))
        secret = rt.settings.signing_secret()
        with TestClient(create_app(rt, background=False, prefect=False)) as client:
            def auth(person: str, secret: str = secret) -> dict[str, str]:
                return {"Authorization": f"Bearer {make_token(person, secret)}"}
            run_id = client.post("/api/runs", json={"playbook": "sitrep", "unit": "s1",
                                                    "params": {}},
                                 headers=auth("s1-commander")).json()["id"]
            complete(client, auth, of(client, auth, run_id, "first")[0])
            complete(client, auth, of(client, auth, run_id, "follow-up")[0])
            drain_wakes(rt)
            r = ask(client, auth, run_id, person="d1-leader")
            assert r.status_code == answer, r.text
            if answer == 403:
                assert "值班员" in r.json()["detail"] and "带班领导" not in r.json()["detail"]
