"""信息报送考核 on a real PostgreSQL 15 server on loopback: the same month of runs
(tests/reporting_month.py) gives the same figures as on SQLite, checked against the
independent count over every step row, and the count goes through the partial index
ix_step_report_due. Fails (not skips) without the server binaries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime
from reporting_month import independent_count, seed
from sqlalchemy import event

from flows.ranking import month_bounds
from flows.reporting import monthly_reporting
from flows.runtime import Runtime
from models.clock import ManualClock
from models.db import read_session


@pytest.fixture
def prt(pg_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    rt = make_runtime(tmp_path / "pg", clock=clock, db_url=pg_url,
                      playbooks=SHIPPED_PLAYBOOKS, org_path=DEMO_ORG)
    assert rt.db.dialect.name == "postgresql" and rt.catalog.errors == []
    yield rt
    rt.db.dispose()


def test_the_months_figures_on_postgresql(prt: Runtime, clock: ManualClock) -> None:
    s = seed(prt, clock)
    sent: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "report_kind" in statement:
            sent.append((statement, parameters))

    event.listen(prt.db, "before_cursor_execute", grab)
    try:
        with read_session(prt.db) as session:
            got = monthly_reporting(session, org=prt.org, month="2026-03", tz=prt.tz,
                                    now=clock.now(), rt=prt)
    finally:
        event.remove(prt.db, "before_cursor_execute", grab)
    rows = {r.unit_id: r for r in got.rows}
    assert (rows["pingshan-street"].all.due, rows["pingshan-street"].all.late) == (8, 2)
    assert rows["pingshan-street"].all.max_late_minutes == 30.0
    assert (rows["maluan"].all.due, rows["maluan"].all.missed) == (6, 4)
    start, end = month_bounds("2026-03", prt.tz)
    for street, w in independent_count(prt, start, end, clock.now()).items():
        r = rows[street].all
        assert (r.due, r.on_time, r.late, r.missed) == (w["due"], w["on_time"], w["late"],
                                                        w["missed"])
    assert [r.run_id for r in got.reports][:2] == [s.late, s.missed]
    # 坪环's 一般 leak, never judged and left open: whether its verbal and system reports
    # were owed is not known (flows/report_owed.py), so listed, never counted.
    assert [(r.run_id, r.kind, r.outcome, r.handed_out) for r in got.unsure] == [
        (s.maluan_open, "口头报告", "待核实", False), (s.maluan_open, "系统首报", "待核实", False)]

    # The planner may take the partial index (it has no statistics to prefer a scan of a
    # tiny table otherwise, so sequential scans are turned off to ask what it can use).
    statement, parameters = sent[0]
    with prt.db.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        plan = " ".join(str(r[0]) for r in conn.exec_driver_sql(
            f"EXPLAIN {statement}", parameters).all())
    assert "ix_step_report_due" in plan, plan
