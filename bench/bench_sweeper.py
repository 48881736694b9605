"""One deadline-sweeper tick with 1,000 steps due among 1,000,000 open ones (SQLite).

Target: a tick <= 1 s with 1M open step instances, and tick_1M / tick_10k <= 1.5 (the sweeper's
cost must follow what is due, not what is open: flows/sweeper.py reads an index range of
`next_check_at`).

Both databases are seeded in bulk (SQLAlchemy Core executemany in chunks, PRAGMA
synchronous=OFF while seeding): runs of playbook quick-escalation (its compiled version pinned
by one real start_run, which is then cancelled), each with `--steps-per-run` open instances of
step `receive` (status ready, as a fan-out step's items are), due and next checked between 1
and 30 days ahead. Before each measured tick, `--due` instances picked at random are made due
(due_at and next_check_at a second ago: level 1 of receive's escalation, `after: 0s`, fires);
the tick is `sweep_once(rt)` on a ManualClock. The tick is measured `--ticks` times on fresh due
sets and the median reported; an idle tick (nothing due) is timed too.

    ./dev bench bench_sweeper                               # 1,000,000 open vs 10,000
    ./dev bench bench_sweeper --open 1000000 --baseline 10000 --due 1000
    ./dev bench bench_sweeper --open 100000                 # quicker
"""

from __future__ import annotations

import argparse
import gc
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import common
from common import Timer, blank_row, bulk_insert, fmt_bytes, print_table, progress
from sqlalchemy import bindparam, update

from flows import lifecycle  # noqa: E402
from flows.runtime import Runtime  # noqa: E402
from flows.sweeper import sweep_once  # noqa: E402
from models.clock import ManualClock  # noqa: E402
from models.run import Run  # noqa: E402
from models.task import StepInstance  # noqa: E402

PLAYBOOK = "quick-escalation"
STEP = "receive"  # due: 2s; escalate after 0s to [section_chief, duty], then 10s + repeats
UNITS = ("c1", "c2", "s1", "s2")
TARGET_TICK_S = 1.0
TARGET_RATIO = 1.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=int, default=1_000_000,
                        help="open step instances in the measured database")
    parser.add_argument("--baseline", type=int, default=10_000,
                        help="open step instances in the baseline database")
    parser.add_argument("--due", type=int, default=1_000, help="steps due in each tick")
    parser.add_argument("--ticks", type=int, default=3, help="measured ticks (median taken)")
    parser.add_argument("--steps-per-run", type=int, default=10,
                        help="open instances per run (1,000,000 open -> 100,000 runs)")
    parser.add_argument("--seed", type=int, default=11)
    return parser.parse_args(argv)


class Db:
    """One runtime with its seeded open steps."""

    def __init__(self, name: str, rt: Runtime, clock: ManualClock, open_count: int,
                 first_step: int, seed_s: float) -> None:
        self.name = name
        self.rt = rt
        self.clock = clock
        self.open = open_count
        self.first_step = first_step
        self.seed_s = seed_s
        self.ticks: list[float] = []
        self.idle: list[float] = []
        self.reports: list[Any] = []


def seed(rt: Runtime, *, open_count: int, per_run: int, rng: random.Random) -> int:
    """Runs with open `receive` instances; returns the id before the first seeded step."""
    now = rt.clock.now()
    real = lifecycle.start_run(rt, playbook_id=PLAYBOOK, unit_id="c1",
                               params={"location": "基准"}, actor="s1-commander")
    # Its receive step would come due during the ticks: cancel it (next_check_at -> NULL).
    lifecycle.cancel_run(rt, run_id=real.id or 0, actor="s1-commander", reason="bench")
    pb = rt.catalog.get(PLAYBOOK)
    spec = pb.step(STEP)
    runs_needed = -(-open_count // per_run)
    resolved = {u: rt.org.resolve_role(spec.role or "", u) for u in UNITS}
    run_blank = blank_row(Run.__table__)
    step_blank = blank_row(StepInstance.__table__)

    with common.seeding(rt.db) as conn:
        first_run = common.max_id(conn, "run")
        first_step = common.max_id(conn, "step_instance")

        def runs() -> Iterator[dict[str, Any]]:
            for i in range(runs_needed):
                unit = UNITS[i % len(UNITS)]
                started = now - timedelta(seconds=rng.uniform(60, 86400))
                row = dict(run_blank)
                row.update(id=first_run + 1 + i, playbook_id=pb.id,
                           playbook_version=pb.version, playbook_sha=real.playbook_sha,
                           title=f"{pb.title}·测点{i}", unit_id=unit, status="running",
                           params={"location": f"测点{i}"},
                           started_by="s2-commander" if unit == "s2" else "s1-commander",
                           started_at=started, segments=1)
                yield row

        def steps() -> Iterator[dict[str, Any]]:
            for n in range(open_count):
                run_index = n // per_run
                unit = UNITS[run_index % len(UNITS)]
                found_at, holders = resolved[unit]
                due = now + timedelta(seconds=rng.uniform(86400, 30 * 86400))
                ready = due - timedelta(seconds=2)
                row = dict(step_blank)
                row.update(id=first_step + 1 + n, run_id=first_run + 1 + run_index,
                           step_key=STEP, item_index=n % per_run, item=None,
                           title=spec.title, action=spec.action, role=spec.role,
                           unit_id=unit, assignee_unit_id=found_at,
                           assignees=[p.id for p in holders], status="ready",
                           ready_at=ready, due_at=due, overdue=False, escalation_level=0,
                           reminders_sent=0, ack_missed=False, next_check_at=due,
                           outputs={}, evidence=[], prefect_recorded=False, version=1)
                yield row

        bulk_insert(conn, Run.__table__, runs())
        bulk_insert(conn, StepInstance.__table__, steps())
    common.checkpoint(rt)
    return first_step


def set_checks(db: Db, ids: list[int], *, due: datetime | None, check: datetime) -> None:
    """Untimed: set the chosen instances' next check (and, given `due`, their due time)."""
    table = StepInstance.__table__
    values: dict[str, Any] = {"next_check_at": bindparam("b_check")}
    if due is not None:
        values.update(ready_at=bindparam("b_ready"), due_at=bindparam("b_due"))
    stmt = update(table).where(table.c.id == bindparam("b_id")).values(**values)
    rows: list[dict[str, Any]] = []
    for i in ids:
        row: dict[str, Any] = {"b_id": i, "b_check": check}
        if due is not None:
            row.update(b_ready=due - timedelta(seconds=2), b_due=due)
        rows.append(row)
    with db.rt.db.begin() as conn:
        conn.execute(stmt, rows)


def tick(db: Db, due_ids: list[int], expected: int) -> float:
    db.clock.advance(timedelta(seconds=1))
    now = db.clock.now()
    # Due a second ago: level 1 of the escalation (after 0s) is owed, level 2 (after 10s) not.
    past = now - timedelta(seconds=1)
    set_checks(db, due_ids, due=past, check=past)
    # Each tick starts from an empty WAL, so one database's seeding or due-set writes are not
    # checkpointed inside another's measured tick; a checkpoint the tick's own writes trigger
    # is part of its cost.
    common.checkpoint(db.rt)
    gc.collect()
    with Timer() as t:
        report = sweep_once(db.rt, holder="bench")
    if report.examined != expected or report.fired != expected:
        raise SystemExit(f"{db.name}: tick examined {report.examined}, fired {report.fired}; "
                         f"expected {expected} of each")
    db.reports.append(report)
    # Park the set again (its level 2 would come due 10 s later, inside a later tick).
    set_checks(db, due_ids, due=None, check=now + timedelta(days=30))
    return t.seconds


def idle_tick(db: Db) -> float:
    db.clock.advance(timedelta(seconds=1))
    common.checkpoint(db.rt)
    with Timer() as t:
        report = sweep_once(db.rt, holder="bench")
    if report.examined:
        raise SystemExit(f"{db.name}: idle tick examined {report.examined}")
    return t.seconds


def build(name: str, tmp: Any, open_count: int, per_run: int, seed_value: int) -> Db:
    clock = ManualClock(common.START)
    rt = common.runtime(tmp / name, clock=clock)
    progress(f"seeding {open_count:,} open steps ({name})")
    with Timer() as t:
        first = seed(rt, open_count=open_count, per_run=per_run,
                     rng=random.Random(seed_value))
    progress(f"seeded {name} in {t.seconds:.1f} s ({fmt_bytes(common.db_size(rt)['db'])})")
    return Db(name, rt, clock, open_count, first, t.seconds)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.due * args.ticks > min(args.open, args.baseline):
        raise SystemExit("--due x --ticks must not exceed the open steps of either database")
    print(f"bench_sweeper: one sweep tick with {args.due:,} due among {args.open:,} open steps "
          f"vs {args.baseline:,} open (median of {args.ticks} ticks)")
    rng = random.Random(args.seed)
    with common.temp_dir("sweeper") as tmp:
        base = build("baseline", tmp, args.baseline, args.steps_per_run, args.seed)
        big = build("measured", tmp, args.open, args.steps_per_run, args.seed + 1)
        dbs = (base, big)
        try:
            picks = {db.name: rng.sample(range(db.first_step + 1, db.first_step + 1 + db.open),
                                         args.due * args.ticks) for db in dbs}
            for db in dbs:  # an untimed idle tick warms the catalog and the connection pool
                idle_tick(db)
            for k in range(args.ticks):
                for db in dbs:
                    ids = picks[db.name][k * args.due:(k + 1) * args.due]
                    db.ticks.append(tick(db, ids, args.due))
                    db.idle.append(idle_tick(db))
            sizes = {db.name: common.db_size(db.rt) for db in dbs}
        finally:
            for db in dbs:
                db.rt.db.dispose()

    med = {db.name: common.median(db.ticks) for db in dbs}
    idle = {db.name: common.median(db.idle) for db in dbs}
    ratio = common.ratio(med["measured"], med["baseline"])
    tick_ok = med["measured"] <= TARGET_TICK_S
    ratio_ok = ratio <= TARGET_RATIO
    rows = []
    for db in dbs:
        last = db.reports[-1]
        rows.append([f"{db.open:,} open", db.ticks[0] * 1000, med[db.name] * 1000,
                     max(db.ticks) * 1000, idle[db.name] * 1000, last.examined, last.fired,
                     last.notifications, fmt_bytes(sizes[db.name]["db"] + sizes[db.name]["wal"]),
                     db.seed_s])
    print_table(
        f"sweep_once with {args.due:,} due (ms; {args.ticks} ticks on fresh due sets)",
        ["database", "tick 1", "median", "max", "idle tick", "examined", "fired",
         "notifications", "db file", "seed s"],
        rows,
    )
    print_table(
        "summary",
        ["figure", "value", "target", "verdict"],
        [[f"tick at {args.open:,} open (s)", med["measured"], f"<= {TARGET_TICK_S:.1f}",
          common.verdict(tick_ok)],
         [f"ratio tick {args.open:,} / tick {args.baseline:,}", ratio,
          f"<= {TARGET_RATIO}", common.verdict(ratio_ok)],
         [f"database file at {args.open:,} open", fmt_bytes(sizes["measured"]["db"]), "-", "-"],
         ["peak RSS of this process", fmt_bytes(common.peak_rss_bytes()), "-", "-"]],
    )
    common.emit_result(
        "bench_sweeper", open=args.open, baseline_open=args.baseline, due=args.due,
        tick_s=med["measured"], baseline_tick_s=med["baseline"], ratio=ratio,
        ticks_s=big.ticks, baseline_ticks_s=base.ticks, idle_tick_s=idle["measured"],
        baseline_idle_tick_s=idle["baseline"], target_tick_s=TARGET_TICK_S,
        target_ratio=TARGET_RATIO, ok=tick_ok and ratio_ok,
        db_bytes=sizes["measured"]["db"], baseline_db_bytes=sizes["baseline"]["db"],
        seed_s=big.seed_s, peak_rss_bytes=common.peak_rss_bytes(),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
