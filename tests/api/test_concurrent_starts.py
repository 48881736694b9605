"""A response started twice for the same place (flows/concurrent.py): a commander who taps
启动 twice, or retries after an answer lost on a weak signal. SPEC's start is unchanged (a
second start succeeds and its answer lists the first in `concurrent`); a start that asks
(`refuse_concurrent`, as the start page does first) is a 409 listing the running ones and
writes nothing. Same unit, a unit above and a unit below overlap; a sibling does not; a
hazard never does. On SQLite and on a real PostgreSQL, where two such starts at once must
not both pass."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime
from fastapi.testclient import TestClient
from sqlmodel import func, select

from flows import lifecycle
from flows.runtime import Runtime
from models.audit import AuditEvent
from models.clock import ManualClock
from models.db import read_session
from models.errors import ConcurrentRuns
from models.run import Run
from models.task import StepInstance

Json = dict[str, Any]
COMMANDER = "wang-qiang"  # district commander 王强
STREET_COMMANDER = "pingshan-street-commander"  # 坪山街道 (liuhe's street)


@pytest.fixture(params=["sqlite", "postgresql"])
def rt(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    rt = make_runtime(tmp_path / "rt", clock=clock, db_url=url, playbooks=SHIPPED_PLAYBOOKS,
                      org_path=DEMO_ORG)
    assert rt.catalog.errors == []
    yield rt
    rt.db.dispose()


def start(client: TestClient, auth: Any, unit: str, *, refuse: bool | None = None,
          who: str = COMMANDER, playbook: str = "gas-leak", location: str = "六和社区幸福里3栋"
          ) -> Any:
    body: Json = {"playbook": playbook, "unit": unit, "params": {"location": location}}
    if refuse is not None:
        body["refuse_concurrent"] = refuse
    return client.post("/api/runs", json=body, headers=auth(who))


def rows(rt: Runtime) -> tuple[int, int, int]:
    """Runs, step rows and audit events: a refused start must write none of them."""
    with read_session(rt.db) as session:
        return tuple(int(session.exec(select(func.count()).select_from(t)).one())  # type: ignore[return-value]
                     for t in (Run, StepInstance, AuditEvent))


def test_a_second_start_is_told_and_one_that_asks_is_refused(
        client: TestClient, auth: Any, rt: Runtime) -> None:
    first = start(client, auth, "liuhe")
    assert first.status_code == 201, first.text
    assert first.json()["concurrent"] == []
    first_id = first.json()["id"]
    # The answer has GET's shape: the timeline so far and the (no) escalations.
    assert [e["action"] for e in first.json()["timeline"]][0] == "run_started"
    assert first.json()["escalations"] == []

    # The start page's first send: refused, listing the running one, nothing written.
    before = rows(rt)
    refused = start(client, auth, "liuhe", refuse=True)
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["error"] == "concurrent_runs"
    [running] = body["runs"]
    assert (running["id"], running["unit_id"], running["unit_name"], running["started_by"],
            running["started_by_name"]) == (first_id, "liuhe", "六和社区", COMMANDER, "王强")
    assert running["title"] == first.json()["title"]
    assert running["started_at_local"] == first.json()["started_at_local"]
    assert body["detail"].startswith("六和社区已有进行中的“燃气泄漏")
    assert f"#{first_id} " in body["detail"] and "王强" in body["detail"]
    assert rows(rt) == before

    # Confirmed (another leak in the same community): started, and the answer says so.
    second = start(client, auth, "liuhe", refuse=False, location="六和社区另一栋")
    assert second.status_code == 201, second.text
    assert [r["id"] for r in second.json()["concurrent"]] == [first_id]
    # Newest first; the run just started is never its own concurrent.
    third = start(client, auth, "liuhe")
    assert [r["id"] for r in third.json()["concurrent"]] == [second.json()["id"], first_id]


@pytest.mark.parametrize(("unit", "who", "overlaps"), [
    ("pingshan-street", STREET_COMMANDER, True),  # the street above the community
    ("pingshan", COMMANDER, True),  # the district above both
    ("heping", COMMANDER, False),  # another community of the same street
    ("maluan", COMMANDER, False),  # another street
])
def test_above_and_below_overlap_siblings_do_not(
        client: TestClient, auth: Any, unit: str, who: str, overlaps: bool) -> None:
    first = start(client, auth, "liuhe")
    assert first.status_code == 201, first.text
    r = start(client, auth, unit, refuse=True, who=who)
    if overlaps:
        assert r.status_code == 409, r.text
        assert [x["id"] for x in r.json()["runs"]] == [first.json()["id"]]
        # And the other way round: below a run at `unit`.
        lifecycle.cancel_run(client.app.state.runtime, run_id=first.json()["id"],  # type: ignore[attr-defined]
                             actor=COMMANDER, reason="测试")
        above = start(client, auth, unit, who=who)
        assert above.status_code == 201, above.text
        below = start(client, auth, "liuhe", refuse=True)
        assert below.status_code == 409, below.text
        assert [x["id"] for x in below.json()["runs"]] == [above.json()["id"]]
    else:
        assert r.status_code == 201, r.text
        assert r.json()["concurrent"] == []


def test_finished_runs_other_playbooks_and_hazards_never_count(
        client: TestClient, auth: Any, rt: Runtime) -> None:
    first = start(client, auth, "liuhe").json()
    lifecycle.cancel_run(rt, run_id=first["id"], actor=COMMANDER, reason="误报")
    again = start(client, auth, "liuhe", refuse=True)
    assert again.status_code == 201, again.text
    # Another playbook running here is not the same response.
    typhoon = client.post("/api/runs", json={
        "playbook": "typhoon-633", "unit": "pingshan", "refuse_concurrent": True,
        "params": {"name": "2609 海葵"}}, headers=auth(COMMANDER))
    assert typhoon.status_code == 201, typhoon.text
    # A street's own typhoon response under the district's: refused, naming its stage.
    street = client.post("/api/runs", json={
        "playbook": "typhoon-633", "unit": "pingshan-street", "refuse_concurrent": True,
        "params": {"name": "海葵"}}, headers=auth(STREET_COMMANDER))
    assert street.status_code == 409, street.text
    [running] = street.json()["runs"]
    assert (running["id"], running["stage"], running["stage_title"]) == (
        typhoon.json()["id"], "message", "台风消息")
    assert "王强" in street.json()["detail"] and "台风消息）" in street.json()["detail"]
    # A community holds hundreds of open hazards: a register playbook is never refused.
    for n in range(2):
        hazard = client.post("/api/runs", json={
            "playbook": "hazard-3030", "unit": "liuhe", "refuse_concurrent": True,
            "params": {"location": f"六和社区仓库{n}号"}}, headers=auth(COMMANDER))
        assert hazard.status_code == 201, hazard.text
        assert hazard.json()["concurrent"] == []


def test_rights_come_before_what_is_running(client: TestClient, auth: Any) -> None:
    """Someone who may not start here learns nothing of what runs here."""
    assert start(client, auth, "liuhe").status_code == 201
    r = start(client, auth, "liuhe", refuse=True, who="maluan-commander")
    assert r.status_code == 403, r.text
    assert "runs" not in r.json()


def test_two_starts_at_once_asking_to_refuse_give_one_run(rt: Runtime) -> None:
    """Two commanders tapping 启动 at the same moment: one run, one clear refusal."""
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def tap(who: str) -> None:
        barrier.wait()
        try:
            lifecycle.start_run(rt, playbook_id="gas-leak", unit_id="liuhe",
                                params={"location": "六和社区幸福里3栋"}, actor=who,
                                refuse_concurrent=True)
            outcomes.append("started")
        except ConcurrentRuns:
            outcomes.append("refused")

    threads = [threading.Thread(target=tap, args=(who,))
               for who in (COMMANDER, STREET_COMMANDER)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["refused", "started"]
    with read_session(rt.db) as session:
        assert len(session.exec(select(Run.id).where(Run.playbook_id == "gas-leak")).all()) == 1
