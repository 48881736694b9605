"""Who may read each register, as the registers page asks for it (the person's own unit when
no unit is chosen): the hazard list answers everyone for their own branch; the rectification
and risk registers and every export answer exactly those /api/me calls `manager` (the manager
right in their own unit, which an admin holds too) and refuse everyone else with a 403 that
names the role and who holds it now. The page draws its refusal from that flag, so the two
must agree for every person of the demo district."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from flows.runtime import Runtime

MANAGERS_ONLY = ["/api/registers/rectification", "/api/risks", "/api/hazards/export",
                 "/api/registers/rectification/export", "/api/risks/export"]


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo


def test_the_manager_flag_is_exactly_who_reads_the_managers_registers(
        client: TestClient, auth: Any, rt: Runtime) -> None:
    managers = []
    for person in sorted(rt.org.people):
        who = client.get("/api/me", headers=auth(person)).json()
        mine = {"unit": who["unit_id"], "limit": 1}
        r = client.get("/api/hazards", params=mine, headers=auth(person))
        assert r.status_code == 200, (person, r.text)
        for path in MANAGERS_ONLY:
            r = client.get(path, params=mine, headers=auth(person))
            assert r.status_code == (200 if who["manager"] else 403), (person, path, r.text)
            if r.status_code == 403:
                assert r.json()["detail"].startswith("需要科室负责人"), r.text
                assert "孙丽" in r.json()["detail"], r.text
        if who["manager"]:
            managers.append(person)
    # The demo district's: its 综合科 manager and the administrator, nobody else.
    assert managers == ["pingshan-admin", "sun-li"]
