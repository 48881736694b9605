"""Rounds (`recur`) on a real PostgreSQL 15 server on loopback: the round written ahead is
handed out by the sweeper at its time, and once however the sweepers and a duty officer's
立即续报 race; the close withdraws what is left and the run completes. One server per
module, a fresh database per test; these fail (not skip) without the server binaries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from factories import books_with, make_runtime, race, run_steps
from factories import run_row as get_run
from rounds_books import SITREP, TEMPLATE

from flows import lifecycle, tasks
from flows.round_start import report_now
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import SweepReport, sweep_once
from models.clock import ManualClock
from models.errors import Conflict
from models.task import StepInstance


@pytest.fixture
def prt(pg_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    books = books_with(tmp_path, {"sitrep.yaml": SITREP, "templates/send.txt.j2": TEMPLATE})
    rt = make_runtime(tmp_path / "pg", clock=clock, db_url=pg_url, playbooks=books)
    assert rt.db.dialect.name == "postgresql" and rt.catalog.errors == []
    yield rt
    rt.db.dispose()


def of(rt: Runtime, run_id: int, key: str) -> list[StepInstance]:
    return sorted((r for r in run_steps(rt, run_id) if r.step_key == key),
                  key=lambda r: r.item_index)


def do(rt: Runtime, row: StepInstance) -> None:
    tasks.complete(rt, step_id=row.id or 0, actor="s1-duty", outputs={"progress": "已控制"})
    drain_wakes(rt)


def test_rounds_come_once_whoever_races_and_end_with_the_close_on_postgres(
        prt: Runtime, clock: ManualClock) -> None:
    runs = [lifecycle.start_run(prt, playbook_id="sitrep", unit_id="s1", params={},
                                actor="s1-commander").id or 0 for _ in range(5)]
    for run_id in runs:
        do(prt, of(prt, run_id, "first")[0])
        do(prt, of(prt, run_id, "follow-up")[0])
    clock.advance(timedelta(hours=7))  # 16:00 in Shanghai: every run's second round is due

    # Two sweepers and a duty officer asking for run 0's round at the same moment.
    results = race(lambda: sweep_once(prt, holder="sweeper-a"),
                   lambda: sweep_once(prt, holder="sweeper-b"),
                   lambda: report_now(prt, run_id=runs[0], step_key="follow-up",
                                      actor="s1-duty", note="事态扩大"))
    sweeps = [r for r in results[:2] if isinstance(r, SweepReport) and r.swept]
    assert sweeps, results
    asked = results[2]
    assert isinstance(asked, StepInstance | Conflict), asked
    for run_id in runs:
        rows = of(prt, run_id, "follow-up")
        assert [r.status for r in rows] == ["done", "ready", "pending"], (run_id, rows)
        assert [r.item["round"] for r in rows[1:]] == [2, 3]
        assert [r.status for r in of(prt, run_id, "send")] == ["done", "pending"]
    handed = sum(r.rounds_started for r in sweeps)
    assert handed == len(runs) - (1 if isinstance(asked, StepInstance) else 0)

    run_id = runs[1]
    do(prt, of(prt, run_id, "follow-up")[1])
    do(prt, of(prt, run_id, "summary")[0])
    do(prt, of(prt, run_id, "close")[0])
    assert [r.status for r in of(prt, run_id, "follow-up")] == ["done", "done", "cancelled"]
    assert get_run(prt, run_id).status == "completed"
