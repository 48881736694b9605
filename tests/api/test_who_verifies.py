"""Who verifies work handed in, asked everywhere the same way (flows.access.verifiers): with
`distinct: false` that includes the inspector who handed it in (completing lets them verify
it), with `distinct` (the default) only the others. 当前卡点 names them, the 【待核验】 note goes
to them, and a late verdict is chased among them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from factories import books_with
from fastapi.testclient import TestClient
from sqlmodel import select

from flows.runtime import Runtime
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.escalation import Escalation
from models.outbox import Notification

CHECK = """id: check
version: 1
title: 街道巡查
kind: test
steps:
  - id: rounds
    title: 巡查
    role: inspector
    due: 1d
    verify: {role: inspector, distinct: DISTINCT, due: 2h}
"""


@pytest.fixture(params=[False, True], ids=["not-distinct", "distinct"])
def rt(request: pytest.FixtureRequest, make_rt: Callable[..., Runtime],
       tmp_path: Path) -> Runtime:
    distinct = "true" if request.param else "false"
    return make_rt(playbooks=books_with(tmp_path, {"check.yaml": CHECK.replace(
        "DISTINCT", distinct)}))


def handed_in(client: TestClient, auth: Callable[[str], dict[str, str]]) -> tuple[int, int]:
    """A round started for s1 and handed in by s1-insp1, one of its two inspectors."""
    r = client.post("/api/runs", headers=auth("s1-commander"),
                    json={"playbook": "check", "unit": "s1", "params": {}})
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    [task] = r.json()["steps"]
    r = client.post(f"/api/tasks/{task['id']}/complete", headers=auth("s1-insp1"),
                    json={"note": "已巡查"})
    assert r.status_code == 200 and r.json()["status"] == "submitted", r.text
    return run_id, task["id"]


def who_verifies(rt: Runtime) -> list[str]:
    distinct = rt.catalog.get("check").step("rounds").verify.distinct  # type: ignore[union-attr]
    return ["s1-insp2"] if distinct else ["s1-insp1", "s1-insp2"]


def test_work_handed_in_is_held_by_whoever_may_verify_it(
    rt: Runtime, client: TestClient, auth: Callable[[str], dict[str, str]]
) -> None:
    run_id, _ = handed_in(client, auth)
    [held] = client.get(f"/api/runs/{run_id}", headers=auth("s1-commander")).json()["holdup"]
    assert [p["id"] for p in held["holders"]] == who_verifies(rt)


def test_the_verify_note_and_the_late_verdict_chase_reach_whoever_may_verify(
    rt: Runtime, client: TestClient, auth: Callable[[str], dict[str, str]],
    clock: ManualClock,
) -> None:
    _, step_id = handed_in(client, auth)
    with read_session(rt.db) as session:
        told = sorted({n.recipient for n in session.exec(select(Notification).where(
            Notification.step_id == step_id, Notification.kind == "verify")).all()})
    assert told == who_verifies(rt)  # not a 【待核验】 the one who handed it in cannot act on
    clock.advance(timedelta(hours=2))  # the verdict is due: the verifiers are chased
    assert sweep_once(rt).fired == 1
    with read_session(rt.db) as session:
        [chase] = session.exec(select(Escalation).where(Escalation.step_id == step_id)).all()
    assert (chase.kind, sorted(chase.recipients)) == ("verify", who_verifies(rt))
