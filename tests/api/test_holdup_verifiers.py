"""当前卡点 of work handed in names whoever may verify it: with `distinct: false` that includes
the inspector who handed it in (completing lets them verify it), with `distinct` (the default)
only the others."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from factories import books_with
from fastapi.testclient import TestClient

from flows.runtime import Runtime

CHECK = """id: check
version: 1
title: 街道巡查
kind: test
steps:
  - id: rounds
    title: 巡查
    role: inspector
    due: 1d
    verify: {role: inspector, distinct: DISTINCT}
"""


@pytest.fixture(params=[False, True], ids=["not-distinct", "distinct"])
def rt(request: pytest.FixtureRequest, make_rt: Callable[..., Runtime],
       tmp_path: Path) -> Runtime:
    distinct = "true" if request.param else "false"
    return make_rt(playbooks=books_with(tmp_path, {"check.yaml": CHECK.replace(
        "DISTINCT", distinct)}))


def test_work_handed_in_is_held_by_whoever_may_verify_it(
    rt: Runtime, client: TestClient, auth: Callable[[str], dict[str, str]]
) -> None:
    r = client.post("/api/runs", headers=auth("s1-commander"),
                    json={"playbook": "check", "unit": "s1", "params": {}})
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    [task] = r.json()["steps"]
    r = client.post(f"/api/tasks/{task['id']}/complete", headers=auth("s1-insp1"),
                    json={"note": "已巡查"})
    assert r.status_code == 200 and r.json()["status"] == "submitted", r.text
    [held] = client.get(f"/api/runs/{run_id}", headers=auth("s1-commander")).json()["holdup"]
    distinct = rt.catalog.get("check").step("rounds").verify.distinct  # type: ignore[union-attr]
    assert [p["id"] for p in held["holders"]] == (
        ["s1-insp2"] if distinct else ["s1-insp1", "s1-insp2"])
