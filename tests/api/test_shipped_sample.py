"""The sample hazard list shipped for new users (playbooks/samples/) imports cleanly on the
embedded defaults (shipped playbooks, demo district), as README shows it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from factories import SHIPPED_PLAYBOOKS
from fastapi.testclient import TestClient

from flows.runtime import Runtime
from models.clock import ManualClock

SAMPLE = SHIPPED_PLAYBOOKS / "samples" / "隐患清单示例.csv"


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo  # the shipped playbooks (none failing to load) and the demo district


def test_the_sample_hazard_list_imports_and_lists(client: TestClient,
                                                   auth: Callable[[str], dict[str, str]],
                                                   rt: Runtime, clock: ManualClock) -> None:
    clock.set(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))  # after the sample's finding times
    data = Path(SAMPLE).read_bytes()
    r = client.post("/api/hazards/import", files={"file": (SAMPLE.name, data, "text/csv")},
                    headers=auth("sun-li"))
    assert r.status_code == 201, r.text
    lines = data.decode("utf-8").strip().splitlines()
    assert r.json()["rows"] == len(lines) - 1 and r.json()["ignored_columns"] == []
    listed = client.get("/api/hazards", params={"limit": 50}, headers=auth("sun-li")).json()
    assert sorted(h["code"] for h in listed["data"]) == sorted(
        line.split(",")[0] for line in lines[1:])
    grades = {h["code"]: (h["grade"], h["status"]) for h in listed["data"]}
    assert grades["PS-2026-1102-003"] == ("重大", "挂牌督办")
    assert grades["PS-2026-1101-001"] == ("一般", "整改中")
    # A street's inspector sees only their street's hazards.
    mine = client.get("/api/hazards", headers=auth("pingshan-street-inspector-1")).json()
    assert {h["street_id"] for h in mine["data"]} == {"pingshan-street"}
