"""Run every benchmark at its default size, one subprocess each, and print the collected
figures. `./dev bench all` (or `./dev bench`) calls this.

    ./dev bench all
    ./dev bench all --quick                   # small sizes: a smoke run in about a minute
    ./dev bench all --only bench_sweeper bench_validate

Each script prints its own tables as it goes; the summary at the end is built from the
one-line results they emit (lines starting with `@@bench `). Exit status: 0 when every
script ran (whatever its verdicts), 1 when one crashed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULT_PREFIX = "@@bench "
SCRIPTS = ("bench_start_run", "bench_sweeper", "bench_escalation_lag", "bench_validate",
           "bench_import", "bench_hazard_scale", "bench_outbox")
QUICK = {
    "bench_start_run": ["--runs", "10000", "--requests", "100"],
    "bench_sweeper": ["--open", "100000", "--baseline", "10000"],
    "bench_escalation_lag": ["--runs", "100", "--spread", "4", "--level", "1"],
    "bench_validate": ["--repeat", "10"],
    "bench_import": ["--rows", "50000"],
    "bench_hazard_scale": ["--hazards", "50000", "--requests", "50", "--idle", "5"],
    "bench_outbox": ["--hung", "3", "--healthy", "100"],
}


def run(name: str, extra: list[str]) -> tuple[int, dict[str, Any] | None, float]:
    cmd = [sys.executable, str(BENCH / f"{name}.py"), *extra]
    print(f"\n=== {name} {' '.join(extra)}".rstrip(), flush=True)
    started = time.monotonic()
    result: dict[str, Any] | None = None
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX):])
    return proc.returncode, result, time.monotonic() - started


def rows_for(name: str, r: dict[str, Any]) -> list[list[str]]:
    ok = "PASS" if r.get("ok") else "FAIL"
    if name == "bench_start_run":
        return [[name, f"POST /api/runs p95, {r['runs']:,} runs", f"{r['p95_ms']:.1f} ms",
                 f"{r['baseline_p95_ms']:.1f} ms (empty)", f"{r['ratio_p95']:.2f}",
                 f"<= {r['target_p95_ms']:.0f} ms", ok],
                ["", "  p50 / p99", f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} ms",
                 f"{r['baseline_p50_ms']:.1f} / {r['baseline_p99_ms']:.1f} ms", "", "", ""]]
    if name == "bench_sweeper":
        return [[name, f"tick, {r['due']:,} due of {r['open']:,} open",
                 f"{r['tick_s'] * 1000:.0f} ms",
                 f"{r['baseline_tick_s'] * 1000:.0f} ms ({r['baseline_open']:,} open)",
                 f"{r['ratio']:.2f}", f"<= {r['target_tick_s']:g} s, ratio <= "
                 f"{r['target_ratio']:g}", ok],
                ["", "  idle tick / db file", f"{r['idle_tick_s'] * 1000:.1f} ms / "
                 f"{r['db_bytes'] / 2**20:.0f} MiB", "", "", "", ""]]
    if name == "bench_escalation_lag":
        return [[name, f"lag p99, {r['escalations']} escalations",
                 f"{r['lag_p99_s']:.2f} s", f"interval {r['interval_s']:g} s",
                 f"{r['ratio_p99_interval']:.2f}", f"<= {r['bound_s']:g} s", ok],
                ["", "  p50 / max", f"{r['lag_p50_s']:.2f} / {r['lag_max_s']:.2f} s",
                 "", "", "", ""]]
    if name == "bench_validate":
        return [[name, f"validate {r['steps']}-step playbook (worst)",
                 f"{r['worst_ms']:.1f} ms",
                 f"{r['baseline_warm_ms']:.1f} ms ({r['baseline_steps']} steps)",
                 f"{r['ratio']:.2f}", f"<= {r['target_ms']:.0f} ms", ok],
                ["", "  warm / cold / validate_paths", f"{r['warm_ms']:.1f} / "
                 f"{r['cold_ms']:.1f} / {r['validate_paths_ms']:.1f} ms", "", "", "", ""]]
    if name == "bench_import":
        return [[name, f"import {r['rows']:,} hazards ({r['playbook']})", f"{r['import_s']:.1f} s",
                 f"{r['floor_s']:.2f} s (executemany floor)", f"{r['ratio']:.1f}",
                 f"<= {r['target_s']:.0f} s, ratio <= {r['target_ratio']:g}", ok],
                ["", "  SQLite alone, same rows", f"{r['schema_floor_s']:.1f} s", "",
                 f"{r['ratio_import_schema_floor']:.2f}", "", ""]]
    if name == "bench_hazard_scale":
        return [[name, f"inbox page p95, {r['hazards']:,} open hazards",
                 f"{r['inbox_p95_ms']:.1f} ms",
                 f"{r['baseline_inbox_p95_ms']:.1f} ms ({r['baseline']:,})",
                 f"{r['inbox_p95_ms'] / r['baseline_inbox_p95_ms']:.1f}",
                 f"<= {r['target_inbox_p95_ms']:.0f} ms", "PASS" if r["ok_inbox"] else "FAIL"],
                ["", "  close a task p95", f"{r['close_p95_ms']:.1f} ms",
                 f"{r['baseline_close_p95_ms']:.1f} ms", "",
                 f"<= {r['target_close_p95_ms']:.0f} ms", "PASS" if r["ok_close"] else "FAIL"],
                ["", "  monthly ranking (median)", f"{r['ranking_s'] * 1000:.0f} ms",
                 f"{r['baseline_ranking_s'] * 1000:.0f} ms", "",
                 f"<= {r['target_ranking_s']:g} s", "PASS" if r["ok_ranking"] else "FAIL"],
                ["", "  idle server RSS / CPU ratio",
                 f"{r['rss_ratio']:.2f} / {r['cpu_ratio']:.2f}", "", "",
                 f"<= {r['target_idle_ratio']:g}", "PASS" if r["ok_idle"] else "FAIL"]]
    return [[name, json.dumps(r, ensure_ascii=False), "", "", "", "", ok]]


def table(rows: list[list[str]]) -> None:
    headers = ["benchmark", "figure", "value", "baseline", "ratio", "target", "verdict"]
    cells = [headers, *rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--only", nargs="+", choices=SCRIPTS, help="run only these")
    args = parser.parse_args(argv)
    rows: list[list[str]] = []
    crashed: list[str] = []
    total = time.monotonic()
    for name in args.only or SCRIPTS:
        code, result, took = run(name, QUICK[name] if args.quick else [])
        if code != 0 or result is None:
            crashed.append(name)
            rows.append([name, "crashed", f"exit {code}", "", "", "", "ERROR"])
            continue
        these = rows_for(name, result)
        these[0][0] += f" [{took:.0f} s]"
        rows += these
    print(f"\n=== closeloop benchmarks{' (quick sizes)' if args.quick else ''}: "
          f"{time.monotonic() - total:.0f} s")
    table(rows)
    if crashed:
        print(f"\ncrashed: {', '.join(crashed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
