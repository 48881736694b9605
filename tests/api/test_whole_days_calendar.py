"""Whole-day deadlines (`whole_days: true`, 民法典 §201/§203) and the working-day calendar:
whether the last day is off is read from the file, so a last day in a year the file lacks is
judged on Mon-Fri alone and says so (`due_estimated`), and once the year is added the open
deadline is counted again (flows/calendar_recount.py), as working-day ones are."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import books_with, make_runtime, steps_seen_by
from fastapi.testclient import TestClient

from flows import lifecycle
from flows.calendar_recount import recount_if_changed
from flows.runtime import Runtime
from models.clock import ManualClock

Auth = Callable[[str], dict[str, str]]

DAYS = """\
id: whole-days
version: 1
title: 整日期限
steps:
  - id: fix
    title: 四日整改
    role: grid_worker
    due: {after: 4d, whole_days: true}
  - id: plain
    title: 四日
    role: grid_worker
    due: 4d
"""

ONLY_2026 = """\
years:
  2026:
    holidays:
      - {name: 国庆节, from: 2026-10-01, to: 2026-10-07}
"""
# Made up for the test (not the State Council's arrangement): 元旦 2027 off Friday to Sunday.
WITH_2027 = ONLY_2026 + """\
  2027:
    holidays:
      - {name: 元旦, from: 2027-01-01, to: 2027-01-03}
"""
MONDAY = datetime(2026, 12, 28, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


@pytest.fixture
def rt(make_rt: Callable[..., Runtime], tmp_path: Path, clock: ManualClock) -> Runtime:
    calendar = tmp_path / "cn-workdays.yaml"
    calendar.write_text(ONLY_2026, encoding="utf-8")
    clock.set(MONDAY)
    made = make_rt(playbooks=books_with(tmp_path, {"whole-days.yaml": DAYS}),
                   settings={"calendar": calendar})
    assert made.catalog.errors == []
    return made


def steps_by_key(client: TestClient, auth: Auth, run_id: int) -> dict[str, dict[str, object]]:
    return steps_seen_by(client, auth("s1-commander"), run_id)


def test_a_last_day_in_an_unlisted_year_is_an_estimate_until_the_year_is_added(
        rt: Runtime, client: TestClient, auth: Auth, tmp_path: Path, clock: ManualClock) -> None:
    run = lifecycle.start_run(rt, playbook_id="whole-days", unit_id="c1", params={},
                              actor="s1-commander")
    before = steps_by_key(client, auth, run.id or 0)
    # 28 December not counted, the 4th day is Friday 1 January 2027: on Mon-Fri alone, a
    # working day.
    assert before["fix"]["due_at_local"] == "2027-01-01 24:00"
    assert before["fix"]["due_estimated"] == (
        "2027年节假日安排未录入工作日历，届满日是否为节假日按周一至周五推算，以正式安排为准")
    assert before["plain"]["due_at_local"] == "2027-01-01 09:00"
    assert before["plain"]["due_estimated"] is None

    clock.advance(timedelta(days=1))
    calendar = tmp_path / "with-2027.yaml"
    calendar.write_text(WITH_2027, encoding="utf-8")
    again = make_runtime(tmp_path / "again", clock=clock, playbooks=rt.settings.playbooks,
                         org_path=rt.settings.org_path, db_url=str(rt.db.url),
                         settings={"calendar": calendar})
    try:
        assert recount_if_changed(again) == 1  # `fix`; elapsed days never move
    finally:
        again.db.dispose()
    after = steps_by_key(client, auth, run.id or 0)
    # 元旦 1-3 January off: the period ends on Monday the 4th.
    assert after["fix"]["due_at_local"] == "2027-01-04 24:00"
    assert after["plain"]["due_at"] == before["plain"]["due_at"]
    timeline = client.get(f"/api/runs/{run.id}", headers=auth("s1-commander")).json()["timeline"]
    recounted = [e for e in timeline if e["action"] == "deadline_recounted"]
    assert [e["detail"]["reason"] for e in recounted] == [
        "2027年节假日安排已录入工作日历，届满日遇休息日、节假日顺延，重新确定"]
    inbox = client.get("/api/inbox", headers=auth("c1-grid")).json()["data"]
    assert any(n["title"].startswith("【期限调整】四日整改·") and "2027-01-04 24:00" in n["body"]
               for n in inbox)
