"""GET /api/runs says, for each running run of the page, how many of its tasks are past their
deadline and the worst lateness in days (the run page's 逾期 N 天 of the same tasks), read
in one grouped query for the whole page on the steps' run index, not one query per run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from flows.lifecycle import cancel_run, set_stage, start_run
from flows.runtime import Runtime
from models.clock import ManualClock

INSPECTOR = "pingshan-street-inspector-1"


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo


def hazard(rt: Runtime, location: str, unit: str = "liuhe") -> int:
    run = start_run(rt, playbook_id="hazard-3030", unit_id=unit,
                    params={"location": location, "grade": "一般"}, actor=INSPECTOR)
    return run.id or 0


def listed(client: TestClient, auth: Any, **params: Any) -> dict[int, dict[str, Any]]:
    r = client.get("/api/runs", params={"limit": 500, **params}, headers=auth("wang-qiang"))
    assert r.status_code == 200, r.text
    return {run["id"]: run for run in r.json()["data"]}


@contextmanager
def statements(rt: Runtime) -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement the runtime's engine sends meanwhile, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(rt.db, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(rt.db, "before_cursor_execute", record)


def test_a_running_run_says_how_many_tasks_are_late_and_by_how_much_at_worst(
        client: TestClient, auth: Any, rt: Runtime, clock: ManualClock) -> None:
    late = hazard(rt, "六和社区旧厂房")
    withdrawn = hazard(rt, "六和社区误登记")
    cancel_run(rt, run_id=withdrawn, actor="wang-qiang", reason="误登记")
    # A typhoon's stages hand every community its measures, each due within the hour: the
    # first stage's are later than the second's.
    typhoon = start_run(rt, playbook_id="typhoon-633", unit_id="maluan",
                        params={"name": "山竹"}, actor="maluan-commander").id or 0
    set_stage(rt, run_id=typhoon, stage="warning", actor="maluan-commander")
    clock.advance(timedelta(days=10))
    set_stage(rt, run_id=typhoon, stage="severe", actor="maluan-commander")
    clock.advance(timedelta(days=55))
    fresh = hazard(rt, "六和社区新仓库")

    runs = listed(client, auth)
    assert (runs[late]["overdue_tasks"], runs[late]["max_overdue_days"]) == (1, 35)
    assert (runs[fresh]["overdue_tasks"], runs[fresh]["max_overdue_days"]) == (0, None)
    # A run not running owes nothing: neither figure is given.
    assert (runs[withdrawn]["overdue_tasks"], runs[withdrawn]["max_overdue_days"]) == \
        (None, None)
    # The same tasks and days as the run's own page counts them.
    for run_id in (late, typhoon, fresh):
        steps = client.get(f"/api/runs/{run_id}", headers=auth("wang-qiang")).json()["steps"]
        days = [s["overdue_days"] for s in steps if s["action"] == "task"
                and s["status"] in ("ready", "acked", "rejected") and s["overdue_days"]]
        assert runs[run_id]["overdue_tasks"] == len(days), run_id
        assert runs[run_id]["max_overdue_days"] == (max(days) if days else None), run_id
    assert runs[typhoon]["overdue_tasks"] > 10 and runs[typhoon]["max_overdue_days"] == 65


def test_the_figures_of_a_page_are_one_grouped_query_on_the_run_index(
        client: TestClient, auth: Any, rt: Runtime, clock: ManualClock) -> None:
    for i in range(3):
        hazard(rt, f"六和社区{i}号")
    clock.advance(timedelta(days=40))
    with statements(rt) as few:
        listed(client, auth)
    for i in range(9):
        hazard(rt, f"和平社区{i}号", unit="heping")
    with statements(rt) as many:
        runs = listed(client, auth)
    assert sum(1 for r in runs.values() if r["overdue_tasks"]) == 3

    def on_steps(seen: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        return [(sql, params) for sql, params in seen if "step_instance" in sql]

    assert len(on_steps(few)) == len(on_steps(many)) == 1
    sql, params = on_steps(many)[0]
    assert "GROUP BY" in sql
    # SQLite's own plan: a search of the (run_id, ...) index, never a scan of the steps.
    with rt.db.connect() as conn:
        plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {sql}", params))
    assert "ux_step_item" in plan and "SCAN step_instance" not in plan, plan
