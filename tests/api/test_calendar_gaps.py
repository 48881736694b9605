"""Working-day deadlines that run into a year the calendar file does not list are counted
Mon-Fri alone (元旦 not off): each says so (`due_estimated`, on the task and run views and the
pages), and /healthz and the server's start name the year to add before it matters."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import books_with, steps_seen_by
from fastapi.testclient import TestClient

from api.main import create_app
from flows import lifecycle
from flows.runtime import Runtime
from models.clock import ManualClock

Auth = Callable[[str], dict[str, str]]

DEADLINES = """\
id: deadlines
version: 1
title: 工作日期限
steps:
  - id: three
    title: 三个工作日
    role: grid_worker
    due: 3wd
  - id: five
    title: 五个工作日
    role: grid_worker
    due: 5wd
  - id: days
    title: 五日
    role: grid_worker
    due: 5d
  - id: plan
    title: 方案
    role: grid_worker
    due: 5wd
    verify: {role: inspector, due: 3wd}
  - id: later
    title: 之后
    role: grid_worker
    needs: [three]
    due: {after: 10wd, from: run}
"""

# 2026 only, as the shipped file is until the State Council publishes 2027's arrangement.
ONLY_2026 = """\
years:
  2026:
    holidays:
      - {name: 国庆节, from: 2026-10-01, to: 2026-10-07}
"""

# Monday 2026-12-28 09:00 in Shanghai.
MONDAY = datetime(2026, 12, 28, 1, 0, tzinfo=UTC)


@pytest.fixture
def rt(make_rt: Callable[..., Runtime], tmp_path: Path, clock: ManualClock) -> Runtime:
    calendar = tmp_path / "cn-workdays.yaml"
    calendar.write_text(ONLY_2026, encoding="utf-8")
    clock.set(MONDAY)
    made = make_rt(playbooks=books_with(tmp_path, {"deadlines.yaml": DEADLINES}),
                   settings={"calendar": calendar})
    assert made.catalog.errors == []
    return made


def steps_by_key(client: TestClient, auth: Auth, run_id: int) -> dict[str, dict[str, object]]:
    return steps_seen_by(client, auth("s1-commander"), run_id)


def test_a_deadline_counted_into_an_unlisted_year_says_it_is_an_estimate(
        rt: Runtime, client: TestClient, auth: Auth) -> None:
    run = lifecycle.start_run(rt, playbook_id="deadlines", unit_id="c1", params={},
                              actor="s1-commander")
    steps = steps_by_key(client, auth, run.id or 0)
    # 3wd from Monday: Tuesday to Thursday 31 December, all 2026 days. Due at 2027-01-01 00:00
    # local, but that midnight closes 2026, so the count is the calendar's, not an estimate.
    assert steps["three"]["due_at_local"].startswith("2026-12-31")
    assert steps["three"]["due_estimated"] is None
    # 5wd counts 1 January 2027 (元旦, not in the file) as a working day: an estimate.
    assert steps["five"]["due_at_local"].startswith("2027-01-04")
    assert "2027年节假日安排未录入" in steps["five"]["due_estimated"]
    # Plain days are days: no calendar involved.
    assert steps["days"]["due_estimated"] is None
    # A pending step whose deadline runs from the start of the run is flagged before it comes.
    assert steps["later"]["status"] == "pending" and steps["later"]["due_at"] is not None
    assert "2027年" in steps["later"]["due_estimated"]
    # The single task reads the same.
    task = client.get(f"/api/tasks/{steps['five']['id']}", headers=auth("c1-grid"))
    assert task.status_code == 200, task.text
    assert task.json()["due_estimated"] == steps["five"]["due_estimated"]


def test_a_deadline_moved_by_an_approved_extension_is_a_chosen_date(
        rt: Runtime, client: TestClient, auth: Auth) -> None:
    run = lifecycle.start_run(rt, playbook_id="deadlines", unit_id="c1", params={},
                              actor="s1-commander")
    five = steps_by_key(client, auth, run.id or 0)["five"]
    moved = client.post(f"/api/tasks/{five['id']}/extend", headers=auth("s1-commander"),
                        json={"due_at": "2027-01-20T10:00:00+08:00", "reason": "材料未到"})
    assert moved.status_code == 200, moved.text
    after = steps_by_key(client, auth, run.id or 0)["five"]
    assert after["due_at_local"].startswith("2027-01-20")
    assert after["original_due_at_local"].startswith("2027-01-04")
    assert after["due_estimated"] is None


def test_health_and_start_name_the_year_to_add(
        rt: Runtime, clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(rt, background=False, prefect=False)
    with TestClient(app) as client:
        calendar = client.get("/healthz").json()["calendar"]
    assert calendar["years"] == [2026] and calendar["missing_soon"] == [2027]
    assert calendar["source"].endswith("cn-workdays.yaml")
    # In June nothing of 2027 is within reach yet.
    clock.set(datetime(2026, 6, 1, 1, 0, tzinfo=UTC))
    with TestClient(create_app(rt, background=False, prefect=False)) as client:
        assert client.get("/healthz").json()["calendar"]["missing_soon"] == []
    # A server starting in December says so in its log.
    clock.set(MONDAY)
    from api.workers import Workers

    with caplog.at_level(logging.WARNING, logger="closeloop.calendar"):
        Workers(rt, prefect=False, sweep=False)._check_at_start()
    # Chinese first, as everything an operator reads.
    assert any(r.getMessage().startswith("工作日历（") and "缺少 2027 年" in r.getMessage()
               and "lacks 2027" in r.getMessage() for r in caplog.records)


# Made up for the test (not the State Council's arrangement): 元旦 2027 off Friday to Sunday.
WITH_2027 = ONLY_2026 + """\
  2027:
    holidays:
      - {name: 元旦, from: 2027-01-01, to: 2027-01-03}
"""


def restarted_with_2027(rt: Runtime, tmp_path: Path, clock: ManualClock) -> Runtime:
    """The same database, started again with a calendar file that lists 2027."""
    from factories import make_runtime

    calendar = tmp_path / "with-2027.yaml"
    calendar.write_text(WITH_2027, encoding="utf-8")
    return make_runtime(tmp_path / "again", clock=clock, playbooks=rt.settings.playbooks,
                        org_path=rt.settings.org_path, db_url=str(rt.db.url),
                        settings={"calendar": calendar})


def test_once_the_year_is_added_the_estimates_are_counted_again(
        rt: Runtime, client: TestClient, auth: Auth, tmp_path: Path, clock: ManualClock) -> None:
    from flows.calendar_recount import COUNTED_MARK, recount_estimates, recount_if_changed

    run = lifecycle.start_run(rt, playbook_id="deadlines", unit_id="c1", params={},
                              actor="s1-commander")
    before = steps_by_key(client, auth, run.id or 0)
    assert before["five"]["due_at_local"].startswith("2027-01-04")
    # Another open task of the same count, moved by an extension: a chosen date stays.
    kept = lifecycle.start_run(rt, playbook_id="deadlines", unit_id="c1", params={},
                               actor="s1-commander")
    kept_five = steps_by_key(client, auth, kept.id or 0)["five"]
    moved = client.post(f"/api/tasks/{kept_five['id']}/extend", headers=auth("s1-commander"),
                        json={"due_at": "2027-01-04T00:00:00+08:00", "reason": "节前完成"})
    assert moved.status_code == 200, moved.text
    assert recount_estimates(rt) == 0  # nothing to recount with the same calendar

    # The operator adds 2027 and restarts, a day later.
    clock.advance(timedelta(days=1))
    again = restarted_with_2027(rt, tmp_path, clock)
    try:
        # At start (api/workers.py): counted once per content of the file.
        # `five` of the first run, and `plan` (also 5wd) of both; the extended `five` stays.
        assert recount_if_changed(again) == 3
        assert (again.settings.data_dir / COUNTED_MARK).is_file()
        assert recount_if_changed(again) == 0
        assert recount_estimates(again) == 0  # and nothing left to count
    finally:
        again.db.dispose()
    after = steps_by_key(client, auth, run.id or 0)
    # 元旦 off: Tuesday 29 December to Tuesday 5 January is five working days.
    assert after["five"]["due_at_local"].startswith("2027-01-05")
    assert after["five"]["original_due_at"] is None
    assert after["three"]["due_at"] == before["three"]["due_at"]  # all 2026: unchanged
    assert steps_by_key(client, auth, kept.id or 0)["five"]["due_at_local"] == \
        "2027-01-03 24:00"
    timeline = client.get(f"/api/runs/{run.id}", headers=auth("s1-commander")).json()["timeline"]
    recounted = [e for e in timeline if e["action"] == "deadline_recounted"
                 and e["step_id"] == after["five"]["id"]]
    assert len(recounted) == 1 and recounted[0]["detail"]["deadline"] == "due"
    assert recounted[0]["detail"]["reason"] == \
        "2027年节假日安排已录入工作日历，期限按工作日重新计算"
    inbox = client.get("/api/inbox", headers=auth("c1-grid")).json()["data"]
    assert any(n["title"].startswith("【期限调整】五个工作日·") and "2027-01-05" in n["body"]
               for n in inbox)


def test_work_awaiting_review_has_both_its_deadlines_counted_again(
        rt: Runtime, client: TestClient, auth: Auth, tmp_path: Path, clock: ManualClock) -> None:
    # Handed in on Tuesday 29 December: the review's 3 working days (30, 31 December and 元旦)
    # and the plan's own 5 (should it be sent back) were both Mon-Fri estimates.
    from factories import step_row

    from flows import tasks
    from flows.calendar_recount import recount_estimates

    run = lifecycle.start_run(rt, playbook_id="deadlines", unit_id="c1", params={},
                              actor="s1-commander")
    clock.advance(timedelta(days=1))
    tasks.complete(rt, step_id=step_row(rt, run.id or 0, "plan").id or 0, actor="c1-grid")
    plan = steps_by_key(client, auth, run.id or 0)["plan"]
    assert plan["status"] == "submitted"
    assert plan["verify_due_at_local"] == "2027-01-01 24:00"
    assert plan["due_at_local"] == "2027-01-04 24:00"
    assert "2027年" in plan["verify_due_estimated"] and "2027年" in plan["due_estimated"]

    again = restarted_with_2027(rt, tmp_path, clock)
    try:
        assert recount_estimates(again) >= 1
    finally:
        again.db.dispose()
    plan = steps_by_key(client, auth, run.id or 0)["plan"]
    assert plan["verify_due_at_local"] == "2027-01-04 24:00"
    assert plan["due_at_local"] == "2027-01-05 24:00"
    timeline = client.get(f"/api/runs/{run.id}", headers=auth("s1-commander")).json()["timeline"]
    moved = {e["detail"]["deadline"] for e in timeline
             if e["action"] == "deadline_recounted" and e["step_id"] == plan["id"]}
    assert moved == {"due", "verify"}
    told = client.get("/api/inbox", headers=auth("s1-insp1")).json()["data"]
    assert any("方案 的核验期限由" in n["body"] for n in told)
