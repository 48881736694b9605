"""Escalation lag under the real sweeper thread: fired_at - scheduled_at.

Target: lag p99 <= sweep interval + 1 s. The ratio reported is lag p99 / interval (the sweeper
wakes every interval, so a lag near 1 x interval is the design; much above it means sweeps
themselves are slow or starved).

A runtime on a fresh SQLite file with the system clock runs flows/sweeper.SweeperThread with a
short real interval. Runs of playbook quick-escalation (step receive: due 2 s after it is
ready, escalation level 1 `after: 0s`, level 2 `after: 10s`) are started with start_run,
spread over a few seconds, so due times keep arriving while the sweeper works. When every run's
receive step has reached the awaited level (bounded by a timeout) the Escalation rows are read.

    ./dev bench bench_escalation_lag                      # 300 runs over 8 s, interval 1 s
    ./dev bench bench_escalation_lag --runs 100 --interval 0.5
"""

from __future__ import annotations

import argparse
import time

import common
from common import Timer, print_table, progress, summary
from sqlalchemy import func
from sqlmodel import select

from flows import lifecycle  # noqa: E402
from flows.runtime import Runtime  # noqa: E402
from flows.sweeper import SweeperThread  # noqa: E402
from models.clock import SystemClock  # noqa: E402
from models.db import read_session  # noqa: E402
from models.escalation import Escalation  # noqa: E402
from models.task import StepInstance  # noqa: E402

PLAYBOOK = "quick-escalation"
STEP = "receive"
UNITS = ("c1", "c2", "s1")  # commander s1-commander may start runs in all three


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="runs started")
    parser.add_argument("--spread", type=float, default=8.0,
                        help="seconds over which the runs are started")
    parser.add_argument("--interval", type=float, default=1.0, help="sweep interval (s)")
    parser.add_argument("--level", type=int, default=2, choices=(1, 2),
                        help="wait until every run's receive step reached this level")
    parser.add_argument("--timeout", type=float, default=90.0,
                        help="give up waiting after this many seconds")
    return parser.parse_args(argv)


def reached(rt: Runtime, level: int) -> int:
    with read_session(rt.db) as session:
        return int(session.exec(
            select(func.count()).select_from(StepInstance).where(
                StepInstance.step_key == STEP, StepInstance.escalation_level >= level)
        ).one())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"bench_escalation_lag: {args.runs} runs started over {args.spread:.0f} s, real "
          f"SweeperThread every {args.interval:g} s, until level {args.level} has fired "
          f"for every run")
    with common.temp_dir("lag") as tmp:
        rt = common.runtime(tmp / "rt", clock=SystemClock())
        sweeper = SweeperThread(rt, interval=args.interval)
        starts: list[float] = []
        try:
            # One untimed run first: compiles and pins the playbook, warms the pool.
            lifecycle.start_run(rt, playbook_id=PLAYBOOK, unit_id="c1",
                                params={"location": "预热"}, actor="s1-commander")
            sweeper.start()
            progress(f"starting {args.runs} runs")
            t0 = time.monotonic()
            for i in range(args.runs):
                target = t0 + args.spread * i / max(args.runs, 1)
                pause = target - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                with Timer() as t:
                    lifecycle.start_run(rt, playbook_id=PLAYBOOK, unit_id=UNITS[i % 3],
                                        params={"location": f"测点{i}"}, actor="s1-commander")
                starts.append(t.ms)
            progress(f"started in {time.monotonic() - t0:.1f} s; waiting for level "
                     f"{args.level}")
            deadline = time.monotonic() + args.timeout
            total = args.runs + 1
            done = 0
            while time.monotonic() < deadline:
                done = reached(rt, args.level)
                if done >= total:
                    break
                time.sleep(0.25)
            waited = time.monotonic() - t0
        finally:
            sweeper.stop()
        with read_session(rt.db) as session:
            rows = session.exec(select(Escalation)).all()
        rt.db.dispose()

    lags = [(e.fired_at - e.scheduled_at).total_seconds() for e in rows]
    by_level: dict[int, list[float]] = {}
    for e, lag in zip(rows, lags, strict=True):
        by_level.setdefault(e.level, []).append(lag)
    overall = summary(lags)
    bound = args.interval + 1.0
    ok = done >= total and overall["p99"] <= bound and sweeper.errors == 0
    ratio = common.ratio(overall["p99"], args.interval)
    table = [[f"level {lvl}", len(v), summary(v)["p50"], summary(v)["p99"], max(v)]
             for lvl, v in sorted(by_level.items())]
    table.append(["all", len(lags), overall["p50"], overall["p99"], overall["max"]])
    print_table("escalation lag, fired_at - scheduled_at (s)",
                ["escalations", "count", "p50", "p99", "max"], table)
    starts_s = summary(starts)
    print_table(
        "summary",
        ["figure", "value", "target", "verdict"],
        [["lag p99 (s)", overall["p99"], f"<= {bound:g} (interval + 1 s)", common.verdict(ok)],
         ["ratio lag p99 / interval", ratio, f"<= {bound / args.interval:g}",
          common.verdict(ratio <= bound / args.interval)],
         [f"runs reaching level {args.level}", f"{done}/{total}", f"{total}/{total}",
          common.verdict(done >= total)],
         ["sweeper errors", sweeper.errors, "0", common.verdict(sweeper.errors == 0)],
         ["start_run p95 while sweeping (ms)", starts_s["p95"], "-", "-"],
         ["wall time (s)", waited, "-", "-"]],
    )
    common.emit_result(
        "bench_escalation_lag", runs=args.runs, interval_s=args.interval,
        escalations=len(lags), lag_p50_s=overall["p50"], lag_p99_s=overall["p99"],
        lag_max_s=overall["max"], bound_s=bound, ratio_p99_interval=ratio,
        reached=done, expected=total, sweeper_errors=sweeper.errors,
        start_run_p95_ms=starts_s["p95"], ok=ok,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
