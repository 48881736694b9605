"""The run view names who did each thing as people read it: a person by the org chart, 系统 for
the engine's own moves, 运维命令行 for a run started at the console without --as."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient

from flows import lifecycle
from flows.runtime import Runtime
from flows.sweeper import sweep_once
from models.audit import CLI
from models.clock import ManualClock

Auth = Callable[[str], dict[str, str]]


def test_started_by_and_timeline_actors_have_names(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    console = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                                  params={"location": "一社区"}, actor=CLI, check_rights=False)
    person = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                                 params={"location": "一社区"}, actor="s1-commander")
    clock.advance(timedelta(seconds=3))
    sweep_once(rt)  # an escalation: the engine's move
    me = auth("s1-commander")
    shown = client.get(f"/api/runs/{console.id}", headers=me).json()
    assert (shown["started_by"], shown["started_by_name"]) == ("cli", "运维命令行")
    names = {(e["actor"], e["actor_name"]) for e in shown["timeline"]}
    assert ("cli", "运维命令行") in names and ("system", "系统") in names
    shown = client.get(f"/api/runs/{person.id}", headers=me).json()
    assert shown["started_by_name"] == rt.org.people["s1-commander"].name


def test_escalation_recipients_and_refusals_name_people_and_units(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "一社区"}, actor="s1-commander")
    clock.advance(timedelta(seconds=3))
    sweep_once(rt)
    shown = client.get(f"/api/runs/{run.id}", headers=auth("s1-commander")).json()
    fired = shown["escalations"][0]
    assert len(fired["recipient_names"]) == len(fired["recipients"])
    for rid, name in zip(fired["recipients"], fired["recipient_names"], strict=True):
        assert name == (rt.org.people[rid].name if rid in rt.org.people else rid)
    assert any(r in rt.org.people and n != r for r, n in
               zip(fired["recipients"], fired["recipient_names"], strict=True))
    refused = client.get(f"/api/runs/{run.id}", headers=auth("s2-commander"))
    assert refused.status_code == 403
    assert "属于一社区，c1" in refused.json()["detail"]
