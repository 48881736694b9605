"""Validating (loading and checking) a 100-step playbook.

Target: <= 200 ms for a 100-step playbook. Baseline in the same process: a 10-step playbook of
the same shape; the ratio t_100 / t_10 is about 10 when validation is linear in the steps (the
per-step ratio, ratio / 10, about 1); well above means some check is quadratic.

The generated playbook uses what real ones do: chains and fan-ins of `needs`, `when`
expressions over params and earlier steps' outputs, due times in minutes, hours, days and
working days (5wd, {after: 3wd, from: run}), reminders, acknowledgement deadlines, escalation
ladders with repeats, verification, evidence, typed outputs, notify and document steps whose
templates exist in the temporary playbooks dir's templates/ folder. Roles and channels are
checked against the demo org (playbooks/org/demo-district.yaml) through
flows.catalog.load_context. Timed: flows.loader.load_playbook_text (the server's path) and
flows.loader.validate_paths (what `closeloop validate FILE` runs, file reading included); the
first (cold) call is reported apart from the warm median.

Large files: `closeloop validate FILE` (api.cli.cmd_validate, as the command runs it, the
org-chart sniff included) on a generated ~5 MB playbook of 60,000 lean steps (id, title, role,
due, a chain of needs, every 50th a `when` reading an earlier step), against a tenth of it
(6,000 steps, same shape) in the same process: wall and CPU seconds, and the ratio (≈ 10
when linear). Target: <= 10 s of CPU for the 5 MB file, about half of the 18-24 s it took
while the CLI parsed it twice (CPU, not wall: on a shared 2-core machine the wall time moves
with whatever else runs).

    ./dev bench bench_validate
    ./dev bench bench_validate --steps 300 --repeat 10
    ./dev bench bench_validate --large-steps 0        # skip the large files
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import common
from common import Timer, print_table

from api.cli import cmd_validate  # noqa: E402
from flows.catalog import load_context  # noqa: E402
from flows.loader import LoadContext, load_playbook_text, validate_paths  # noqa: E402
from models.errors import PlaybookInvalid  # noqa: E402
from models.org import load_org  # noqa: E402
from models.settings import Settings  # noqa: E402

TARGET_MS = 200.0
TARGET_LARGE_S = 10.0
DEMO_ORG = common.REPO / "playbooks" / "org" / "demo-district.yaml"
ROLES = ("duty_officer", "grid_worker", "inspector", "safety_officer", "community_head",
         "street_head", "police", "fire_rescue", "medical", "gas_company", "env_monitor",
         "rescue_team", "expert", "press_officer")
LADDER = ("duty_leader", "section_chief", "deputy_director", "director")
CHANNELS = ("county_duty_office", "district_duty_room")
DUES = ("30m", "2h", "1d", "5wd", "{after: 3wd, from: run}", "45m", "4h", "2d", "10wd",
        "{after: 90m, from: run}")
TEMPLATES = ("bench-notice.md.j2", "bench-record.md.j2", "bench-order.md.j2")


def step_yaml(i: int, n: int) -> str:
    """Step i (1-based) of n: a task most of the time, a notify every 10th, a document every
    7th; needs the previous step, and every 5th also fans in from three steps back."""
    sid = f"s{i:03d}"
    lines = [f"  - id: {sid}", f"    title: 第{i}项处置任务", f"    title_en: Task {i}"]
    needs: list[str] = []
    if i > 1:
        needs.append(f"s{i - 1:03d}")
    if i > 4 and i % 5 == 0:
        needs.append(f"s{i - 3:03d}")
    if i > 10 and i % 9 == 0:
        needs.append(f"s{i - 8:03d}")
    if needs:
        lines.append(f"    needs: [{', '.join(needs)}]")
    if i % 10 == 0:
        lines += ["    action: notify", f"    template: {TEMPLATES[0]}",
                  f"    to: [{CHANNELS[i % 2]}, {LADDER[i % 4]}]"]
        if i % 20 == 0:
            lines.append("    when: \"params.grade in ['重大', '特别重大']\"")
        return "\n".join(lines)
    if i % 7 == 0:
        lines += ["    action: document", f"    template: {TEMPLATES[1 + i % 2]}"]
        return "\n".join(lines)
    role = ROLES[i % len(ROLES)]
    lines += [
        f"    description: 第{i}项任务的处置要求：按预案执行，现场情况随时报告。",
        f"    role: {role}",
        f"    due: {DUES[i % len(DUES)]}",
    ]
    if i % 3 == 0:
        prev = f"s{i - 1:03d}" if i > 1 and (i - 1) % 10 and (i - 1) % 7 else None
        if prev:
            lines.append(f"    when: \"(steps['{prev}'].outputs.count | default(0, true)) > 0 "
                         f"or params.casualties > 0\"")
        else:
            lines.append("    when: \"params.grade != '一般' or params.casualties > 0\"")
    if "wd" not in DUES[i % len(DUES)] and "from" not in DUES[i % len(DUES)]:
        lines.append("    remind: [{before: 10m}]")
    if i % 4 == 0:
        lines.append("    ack: 5m")
    lines += [
        "    escalate:",
        f"      - {{after: 0m, notify: [{LADDER[0]}, {CHANNELS[1]}]}}",
        f"      - {{after: 30m, notify: [{LADDER[1 + i % 3]}], repeat: 30m, title: 督办}}",
    ]
    if i % 2 == 0:
        lines.append("    evidence: {photos: 1, note: true}")
    if i % 6 == 0:
        lines.append("    verify: {role: inspector, distinct: true}")
    lines += [
        "    outputs:",
        "      count: {type: int, title: 数量, title_en: Count}",
        "      summary: {type: string, required: true, title: 情况, title_en: Summary}",
    ]
    if i % 8 == 0:
        lines.append("      level: {type: enum, values: [低, 中, 高], title: 风险等级}")
    return "\n".join(lines)


def playbook_text(n: int) -> str:
    head = f"""# Generated by bench/bench_validate.py: {n} steps.
id: bench-{n}
version: 1
title: 基准测试预案（{n}步）
title_en: Benchmark playbook ({n} steps)
kind: response
description: 由基准测试生成，覆盖依赖链、条件、工作日时限、督办、复核和佐证材料。
params:
  location: {{type: string, required: true, title: 地点, title_en: Location}}
  grade:
    type: enum
    values: [一般, 较大, 重大, 特别重大]
    default: 一般
    title: 事件等级
  casualties: {{type: int, default: 0, title: 伤亡人数}}
  found_on: {{type: date, title: 发现日期}}
steps:
"""
    return head + "\n".join(step_yaml(i, n) for i in range(1, n + 1)) + "\n"


def make_dir(root: Path) -> Path:
    """A playbooks dir with the templates the generated playbooks name."""
    (root / "templates").mkdir(parents=True)
    (root / "modules").mkdir()
    for name in TEMPLATES:
        (root / "templates" / name).write_text(
            "# {{ run.title }}\n\n{{ run.unit_name }}：{{ step.title }}\n", encoding="utf-8")
    return root


@dataclass
class Measured:
    steps: int
    text: str
    path: Path
    cold: float = 0.0
    warm: list[float] = field(default_factory=list)
    paths: list[float] = field(default_factory=list)
    compiled: int = 0

    @property
    def lines(self) -> int:
        return len(self.text.splitlines())


def load_once(m: Measured, context: LoadContext) -> float:
    """One load_playbook_text call (ms); a generated playbook that fails stops the bench."""
    with Timer() as t:
        try:
            playbook = load_playbook_text(m.text, filename=str(m.path), context=context)
        except PlaybookInvalid as exc:
            shown = "\n".join(str(e) for e in exc.errors[:10])
            raise SystemExit(f"generated playbook does not validate:\n{shown}") from exc
    m.compiled = len(playbook.steps)
    return t.ms


def validate_once(m: Measured, context: LoadContext) -> float:
    """One validate_paths([file]) call (ms), as `closeloop validate FILE` runs it."""
    with Timer() as t:
        errors = validate_paths([m.path], context=context)
    if errors:
        raise SystemExit(f"validate_paths found errors: {errors[:5]}")
    return t.ms


def lean_playbook_text(n: int) -> str:
    """n steps of a few lines each (~100 bytes): 60,000 of them make a ~5 MB file within
    models.yamlpos.MAX_NODES (the full bench step above has ~54 values, the lean one 7)."""
    lines = [f"# Generated by bench/bench_validate.py: {n} lean steps.", f"id: large-{n}",
             "version: 1", f"title: 大型预案（{n}步）", "kind: response",
             "params:", "  grade: {type: enum, values: [一般, 重大], default: 一般}", "steps:"]
    for i in range(1, n + 1):
        lines += [f"  - id: s{i:05d}", f"    title: 第{i}项任务", f"    role: {ROLES[i % 4]}",
                  f"    due: {DUES[i % 3]}"]
        if i > 1:
            lines.append(f"    needs: [s{i - 1:05d}]")
        if i % 50 == 0:  # reads a step 40 up the chain: the upstream walk has work to do
            lines.append(f"    when: \"steps.s{i - 40:05d}.outputs.count or "
                         "params.grade == '重大'\"")
            lines.append("    outputs: {count: {type: int, title: 数量}}")
        elif i % 50 == 10:
            lines.append("    outputs: {count: {type: int, title: 数量}}")
    return "\n".join(lines) + "\n"


@dataclass
class LargeFile:
    steps: int
    path: Path
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def cli_validate_once(large: LargeFile, settings: Settings) -> None:
    """One `closeloop validate FILE` in this process (its output swallowed unless it fails)."""
    out = io.StringIO()
    wall, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(out):
        code = cmd_validate(argparse.Namespace(paths=[str(large.path)]), settings)
    large.wall.append(time.perf_counter() - wall)
    large.cpu.append(time.process_time() - cpu)
    if code != 0:
        raise SystemExit(f"closeloop validate {large.path} failed:\n{out.getvalue()[:2000]}")


def bench_large(steps: int, repeat: int, tmp: Path) -> dict[str, float]:
    """`closeloop validate` on the large file and on a tenth of it, interleaved."""
    settings = Settings(data_dir=tmp / "data", playbooks=common.REPO / "playbooks",
                        org=DEMO_ORG, _env_file=None)  # type: ignore[call-arg]
    files = []
    for n in (max(steps // 10, 1), steps):
        path = make_dir(tmp / f"large-{n}") / f"large-{n}.yaml"
        path.write_text(lean_playbook_text(n), encoding="utf-8")
        files.append(LargeFile(n, path))
    small, big = files
    common.progress(f"closeloop validate: {big.path.stat().st_size / 2**20:.1f} MiB "
                    f"({steps:,} steps) and {small.path.stat().st_size / 2**20:.1f} MiB, "
                    f"{repeat} rounds")
    cli_validate_once(small, settings)  # first use: imports, the org chart's checks
    small.wall.clear()
    small.cpu.clear()
    for _ in range(repeat):
        for large in files:
            cli_validate_once(large, settings)
    print_table(
        "closeloop validate FILE, large playbooks (s)",
        ["playbook", "size (MiB)", "wall median", "wall max", "CPU median"],
        [[f"{f.steps:,} steps", f.path.stat().st_size / 2**20, common.median(f.wall),
          max(f.wall), common.median(f.cpu)] for f in files],
    )
    return {"large_steps": big.steps, "large_mib": big.path.stat().st_size / 2**20,
            "large_wall_s": common.median(big.wall), "large_cpu_s": common.median(big.cpu),
            "large_baseline_wall_s": common.median(small.wall),
            "large_ratio": common.ratio(common.median(big.cpu), common.median(small.cpu))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="steps in the measured playbook")
    parser.add_argument("--baseline", type=int, default=10, help="steps in the baseline")
    parser.add_argument("--repeat", type=int, default=20, help="warm validations timed")
    parser.add_argument("--large-steps", type=int, default=60_000,
                        help="steps of the large file `closeloop validate` is timed on (0: skip)")
    parser.add_argument("--large-repeat", type=int, default=3,
                        help="timed rounds of the large file and its tenth")
    args = parser.parse_args(argv)
    print(f"bench_validate: load and check a {args.steps}-step playbook vs a "
          f"{args.baseline}-step one ({args.repeat} warm runs each, demo org roles)")
    org = load_org(DEMO_ORG)
    with common.temp_dir("validate") as tmp:
        # One playbooks dir per size: validate_paths reads every sibling playbook (for the
        # ids a `playbook` step may start), so a shared dir would time both files at once.
        runs = []
        for n in (args.baseline, args.steps):
            root = make_dir(tmp / f"playbooks-{n}")
            runs.append(Measured(n, playbook_text(n), root / f"bench-{n}.yaml"))
            runs[-1].path.write_text(runs[-1].text, encoding="utf-8")
        contexts = [load_context(m.path.parent, org) for m in runs]
        # Cold: each size's first call (the baseline's also pays for first-use imports).
        for m, context in zip(runs, contexts, strict=True):
            m.cold = load_once(m, context)
        # Warm calls alternate between the sizes, so load on the machine hits both alike.
        for _ in range(args.repeat):
            for m, context in zip(runs, contexts, strict=True):
                m.warm.append(load_once(m, context))
                m.paths.append(validate_once(m, context))

        large = bench_large(args.large_steps, args.large_repeat, tmp) if args.large_steps else {}

    base, big = runs
    print_table(
        "playbook validation (ms)",
        ["playbook", "cold", "warm median", "warm max", "validate_paths median",
         "validate_paths max"],
        [[f"{m.steps} steps ({m.lines} lines)", m.cold, common.median(m.warm), max(m.warm),
          common.median(m.paths), max(m.paths)] for m in runs],
    )
    big_ms, base_ms = common.median(big.warm), common.median(base.warm)
    worst = max(big.cold, big_ms, common.median(big.paths))
    ratio = common.ratio(big_ms, base_ms)
    per_step = ratio / (args.steps / args.baseline)
    ok = worst <= TARGET_MS
    print_table(
        "summary",
        ["figure", "value", "target", "verdict"],
        [[f"{args.steps}-step validation, worst of cold / warm / validate_paths (ms)", worst,
          f"<= {TARGET_MS:.0f}", common.verdict(ok)],
         [f"ratio {args.steps} steps / {args.baseline} steps (warm median)", ratio,
          f"≈ {args.steps / args.baseline:g} if linear", "-"],
         ["per-step ratio", per_step, "≈ 1 (≫ 1: superlinear)", "-"]]
        + ([[f"closeloop validate, {large['large_steps']:,}-step file "
             f"({large['large_mib']:.1f} MiB), CPU median (s)", large["large_cpu_s"],
             f"<= {TARGET_LARGE_S:.0f}", common.verdict(large["large_cpu_s"] <= TARGET_LARGE_S)],
            ["its wall time (s)", large["large_wall_s"], "-", "-"],
            ["ratio CPU large / a tenth of it", large["large_ratio"], "≈ 10 if linear", "-"]]
           if large else []),
    )
    common.emit_result(
        "bench_validate", steps=args.steps, baseline_steps=args.baseline,
        cold_ms=big.cold, warm_ms=big_ms, validate_paths_ms=common.median(big.paths),
        baseline_cold_ms=base.cold, baseline_warm_ms=base_ms,
        baseline_validate_paths_ms=common.median(base.paths), worst_ms=worst, ratio=ratio,
        per_step_ratio=per_step, target_ms=TARGET_MS, ok=ok, compiled_steps=big.compiled,
        **large, large_target_s=TARGET_LARGE_S,
        large_ok=not large or large["large_cpu_s"] <= TARGET_LARGE_S,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
