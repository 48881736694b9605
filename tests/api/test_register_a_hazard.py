"""Whoever finds a hazard registers it (hazard-3030 `started_by`): a street inspector on the
rounds, a community grid worker or safety officer, an enterprise's safety officer; in their
own unit and below, through POST /api/runs on the shipped playbooks and demo district."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from flows.runtime import Runtime

Auth = Callable[[str], dict[str, str]]
HAZARD = {"location": "六和社区某厂房二楼", "description": "消防通道堵塞", "category": "消防安全"}


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo


def register(client: TestClient, auth: Auth, who: str, unit: str = "liuhe",
             playbook: str = "hazard-3030", **extra: Any) -> Any:
    return client.post("/api/runs", headers=auth(who), json={
        "playbook": playbook, "unit": unit, "params": {**HAZARD, **extra}})


def test_an_inspector_registers_the_hazard_found_and_follows_it(
        client: TestClient, auth: Auth) -> None:
    r = register(client, auth, "pingshan-street-inspector-1")
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["started_by"] == "pingshan-street-inspector-1"
    rectify = next(s for s in run["steps"] if s["step"] == "rectify")
    assert rectify["status"] == "ready" and rectify["assignees"][0]["id"] == "liuhe-safety"
    # The inspector reads what they registered, and it is in the register with them as finder.
    me = auth("pingshan-street-inspector-1")
    assert client.get(f"/api/runs/{run['id']}", headers=me).status_code == 200
    hazard = client.get(f"/api/hazards/{run['id']}", headers=me)
    assert hazard.status_code == 200, hazard.text
    assert (hazard.json()["found_by"], hazard.json()["found_by_name"]) == \
        ("pingshan-street-inspector-1", "邓思远")


@pytest.mark.parametrize("who", ["liuhe-grid", "liuhe-safety"])
def test_a_communitys_grid_worker_and_safety_officer_register_in_their_community(
        client: TestClient, auth: Auth, who: str) -> None:
    assert register(client, auth, who).status_code == 201
    refused = register(client, auth, who, unit="heping")  # the neighbouring community
    assert refused.status_code == 403, refused.text
    assert "检查员（inspector）" in refused.json()["detail"]


def test_an_inspector_of_another_street_may_not_register_here(
        client: TestClient, auth: Auth) -> None:
    r = register(client, auth, "maluan-inspector-1")
    assert r.status_code == 403, r.text
    # The refusal names who may: the commanders over 六和社区, and the roles of started_by.
    detail = r.json()["detail"]
    assert "指挥长（commander）" in detail and "胡红霞" in detail
    assert "网格员" in detail or "grid_worker" in detail


def test_an_inspector_still_may_not_start_a_response(client: TestClient, auth: Auth) -> None:
    r = register(client, auth, "pingshan-street-inspector-1", playbook="gas-leak")
    assert r.status_code == 403, r.text


def test_a_hazard_nobody_could_rectify_is_refused_and_nothing_is_written(
        client: TestClient, auth: Auth, rt: Runtime) -> None:
    # A street has no safety officer, nor has the district: the rectification would go to no
    # one and its 督办函 be served on no one. The import refuses that row; so does a
    # registration, naming the unit, the role and the step.
    r = register(client, auth, "pingshan-street-inspector-1", unit="pingshan-street",
                 grade="重大")
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "unit"
    message = r.json()["errors"][0]["message"]
    assert message.startswith(
        "单位 pingshan-street（坪山街道）及其上级均无安全员（safety_officer），")
    assert "无人可办" in message and "nobody could do step" in message
    listed = client.get("/api/runs", headers=auth("wang-qiang")).json()
    assert listed["count"] == 0
    # A commander is refused alike: it is the unit that is wrong, not the rights.
    assert register(client, auth, "wang-qiang", unit="pingshan-street").status_code == 422


def test_a_code_taken_in_another_street_is_refused_without_naming_that_hazard(
        client: TestClient, auth: Auth) -> None:
    first = register(client, auth, "pingshan-street-inspector-1", code="PS-0001")
    assert first.status_code == 201, first.text
    # 马峦街道's inspector may not read 六和社区's hazard: told the code is taken, not which.
    again = register(client, auth, "maluan-inspector-1", unit="maluan", code="PS-0001")
    assert again.status_code == 422 and again.json()["field"] == "params.code", again.text
    assert "已经登记过" in again.json()["detail"]
    assert f"#{first.json()['id']}" not in again.json()["detail"]
