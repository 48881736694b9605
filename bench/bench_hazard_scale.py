"""The hazard loop at district scale: 1,000,000 open hazards in the database (SQLite).

Targets (issue 3): with 1,000,000 hazards stored, an inspector's inbox page <= 50 ms p95,
closing a task <= 50 ms p95, the monthly ranking <= 1 s; holding 1,000,000 open hazards costs
no more memory or CPU at idle than holding 1,000. Baseline in the same process: the same
measurements on a database of `--baseline` (1,000) open hazards; ratios printed.

Both databases are seeded in bulk (SQLAlchemy Core executemany in chunks, PRAGMA
synchronous=OFF while seeding) on the demo district (playbooks/org/demo-district.yaml: 6
streets, 23 communities): a rectification playbook written into a temporary playbooks folder
(bench-hazard: `rectify` by the community's grid worker, due 30 days, escalating once to the
section chief; then `close` (验收销号) by the street's inspector; `register:` keeps the hazard
row), its compiled version pinned by one real start_run. Each open hazard is a Run row, its
Hazard register row and one open step instance, spread over the 23 communities: `rectify`
ready (status 整改中; past its deadline: overdue, level 1 fired), or, for `--close-share` of
them, `close` ready at the street's inspectors (status 待销号) after a done `rectify`. Found
times are spread over the year before now. `--closed-share` more hazards (relative to the
open ones) are closed (销号) runs with both steps done, so the ranking month has closures.
Times are relative to the real clock, so a real server started on the database sees nothing
come due while it idles.

Measured, alternating between the databases in rounds:
* inbox: GET /api/tasks?mine=true&limit=50 through FastAPI's TestClient
  (create_app(rt, background=False)) for the six streets' first inspectors in turn, p95 over
  `--requests`; the grid workers' inbox too (reported, no target);
* closing: POST /api/tasks/{id}/complete on `--requests` ready `close` steps (no evidence, no
  verification) by their street's inspector: the run completes and the hazard is closed in
  the register, in the same transaction;
* ranking: GET /api/ranking?month=<last full month> as the district manager, the median of 5
  after one untimed call (the first, cold, call is reported too);
* idle: a real `closeloop serve` subprocess on each database (CLOSELOOP_SWEEP_INTERVAL=1s,
  CLOSELOOP_PREFECT_ENABLED=false) left alone `--idle` seconds after /healthz answers:
  VmRSS/VmHWM from /proc/PID/status and CPU (utime+stime from /proc/PID/stat) over the idle
  window and from start to ready.
Then the statements of one inbox request and of one ranking are timed one by one on the big
database and the slowest are shown with EXPLAIN QUERY PLAN.

    ./dev bench bench_hazard_scale                          # 1,000,000 vs 1,000
    ./dev bench bench_hazard_scale --hazards 100000 --idle 8   # quicker
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import common
from common import Timer, blank_row, fmt_bytes, print_table, progress, summary

warnings.filterwarnings("ignore", message=".*httpx.*")

from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from server_process import ServerProcess  # noqa: E402
from sqlalchemy import event, insert, text  # noqa: E402

from api.auth import make_token  # noqa: E402
from api.main import create_app  # noqa: E402
from flows import lifecycle  # noqa: E402
from flows.registers import street_of  # noqa: E402
from flows.runtime import Runtime  # noqa: E402
from models.clock import ManualClock  # noqa: E402
from models.hazard import Hazard  # noqa: E402
from models.run import Run  # noqa: E402
from models.task import StepInstance  # noqa: E402

PLAYBOOK_ID = "bench-hazard"
PLAYBOOK = """\
id: bench-hazard
version: 1
title: 隐患整改（基准）
kind: rectification
params:
  location: {type: string, required: true, title: 隐患地点}
  grade: {type: enum, values: [一般, 重大], default: 一般, title: 隐患等级}
register:
  closed_by: close
  due_by: rectify
steps:
  - id: rectify
    title: 隐患整改
    role: grid_worker
    due: 30d
    phase: 整改中
    escalate:
      - {after: 0m, notify: [section_chief], title: 督办函}
  - id: close
    title: 验收销号
    role: inspector
    needs: [rectify]
    phase: 待销号
"""
MANAGER = "sun-li"  # 孙丽, manager at the district (the org's root)
DAY = timedelta(days=1)
TARGET_INBOX_P95_MS = 50.0
TARGET_CLOSE_P95_MS = 50.0
TARGET_RANKING_S = 1.0
TARGET_IDLE_RATIO = 1.2  # RSS and idle CPU of 1M open vs 1,000 open
IDLE_CPU_FLOOR_S = 0.3  # idle CPU differences below this are noise, whatever the ratio
SOURCES = ("检查发现", "检查发现", "检查发现", "群众举报", "执法检查", "事故调查")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hazards", type=int, default=1_000_000,
                        help="open hazards in the measured database")
    parser.add_argument("--baseline", type=int, default=1_000,
                        help="open hazards in the baseline database")
    parser.add_argument("--closed-share", type=float, default=0.2,
                        help="closed hazards stored besides the open ones, as a share of them")
    parser.add_argument("--close-share", type=float, default=0.3,
                        help="share of the open hazards waiting for 验收销号 (inspector)")
    parser.add_argument("--requests", type=int, default=200,
                        help="timed inbox requests and task closings per database")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    parser.add_argument("--ranking-repeats", type=int, default=5)
    parser.add_argument("--idle", type=float, default=15.0,
                        help="seconds each real server idles while measured")
    parser.add_argument("--no-idle", action="store_true", help="skip the server idle test")
    parser.add_argument("--seed", type=int, default=3030)
    return parser.parse_args(argv)


# -- the world ------------------------------------------------------------------------------------

@dataclass
class Db:
    name: str
    rt: Runtime
    clock: ManualClock
    books: Path
    open_count: int
    closed_count: int
    seed_s: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    close_tasks: list[tuple[int, str]] = field(default_factory=list)  # (step id, inspector)
    inbox: list[float] = field(default_factory=list)
    grid_inbox: list[float] = field(default_factory=list)
    closing: list[float] = field(default_factory=list)
    register: list[float] = field(default_factory=list)  # 整改清单 pages, with 当前办理人
    search: list[float] = field(default_factory=list)  # inbox searched by a hazard's number
    ranking: list[float] = field(default_factory=list)
    ranking_cold: float = 0.0
    idle: dict[str, float] = field(default_factory=dict)
    inbox_count: int = 0
    file_bytes: int = 0


def now_minute() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


def build(name: str, tmp: Path, *, open_count: int, closed_count: int, close_share: float,
          seed_value: int, now: datetime) -> Db:
    books = tmp / "books"
    if not books.exists():
        (books / "templates").mkdir(parents=True)
        (books / f"{PLAYBOOK_ID}.yaml").write_text(PLAYBOOK, encoding="utf-8")
    clock = ManualClock(now)
    rt = make_runtime(tmp / name, clock=clock, playbooks=books, org_path=DEMO_ORG)
    if rt.catalog.errors or PLAYBOOK_ID not in rt.catalog.current:
        raise SystemExit(f"bench playbook not loaded: {rt.catalog.errors}")
    db = Db(name, rt, clock, books, open_count, closed_count)
    progress(f"seeding {open_count:,} open + {closed_count:,} closed hazards ({name})")
    with Timer() as t:
        db.counts = seed(db, close_share=close_share, rng=random.Random(seed_value))
    db.seed_s = t.seconds
    db.file_bytes = common.db_size(rt)["db"]
    progress(f"seeded {name} in {t.seconds:.1f} s: "
             + ", ".join(f"{k} {v:,}" for k, v in db.counts.items())
             + f"; file {fmt_bytes(db.file_bytes)}")
    return db


def seed(db: Db, *, close_share: float, rng: random.Random) -> dict[str, int]:
    rt, now = db.rt, db.clock.now()
    org = rt.org
    communities = [u.id for u in org.units_where(type="community")]
    street = {c: street_of(rt, c) for c in communities}
    commander = {c: org.resolve_role("commander", c)[1][0].id for c in communities}
    grid = {c: org.resolve_role("grid_worker", c) for c in communities}
    inspectors = {c: org.resolve_role("inspector", c) for c in communities}
    name = {c: org.unit(c).name for c in communities}
    # One real run pins the compiled playbook (and is itself an open hazard).
    real = lifecycle.start_run(rt, playbook_id=PLAYBOOK_ID, unit_id=communities[0],
                               params={"location": "基准隐患"}, actor=commander[communities[0]])
    pb = rt.catalog.get(PLAYBOOK_ID)
    rectify, close = pb.step("rectify"), pb.step("close")
    run_blank = blank_row(Run.__table__)
    step_blank = blank_row(StepInstance.__table__)
    hazard_blank = blank_row(Hazard.__table__)
    total = db.open_count + db.closed_count
    counts = {"runs": 1, "hazards": 1, "steps": 1, "open steps": 1}
    year = 365 * 86400

    def step(**values: Any) -> dict[str, Any]:
        row = dict(step_blank)
        row.update(item_index=0, item=None, action="task", assignee_person_id=None,
                   original_due_at=None, reminders_sent=0, ack_missed=False, outputs={},
                   evidence=[], prefect_recorded=True, version=1, overdue=False,
                   escalation_level=0)
        row.update(values)
        return row

    with common.seeding(rt.db) as conn:
        run_id = common.max_id(conn, "run")
        step_id = common.max_id(conn, "step_instance")
        runs: list[dict[str, Any]] = []
        hazards: list[dict[str, Any]] = []
        steps: list[dict[str, Any]] = []

        def flush() -> None:
            for table, rows in ((Run.__table__, runs), (Hazard.__table__, hazards),
                                (StepInstance.__table__, steps)):
                if rows:
                    conn.execute(insert(table), rows)  # type: ignore[arg-type]
                    rows.clear()

        for i in range(total):
            c = communities[i % len(communities)]
            closed = i >= db.open_count
            found = now - timedelta(seconds=rng.randint(3600, year))
            due = found + 30 * DAY
            grid_unit, grid_people = grid[c]
            insp_unit, insp_people = inspectors[c]
            run_id += 1
            grade = "重大" if rng.random() < 0.05 else "一般"
            run = dict(run_blank)
            run.update(id=run_id, playbook_id=pb.id, playbook_version=pb.version,
                       playbook_sha=real.playbook_sha, title=f"{pb.title}·{name[c]}{i}号",
                       unit_id=c, status="completed" if closed else "running",
                       params={"location": f"{name[c]}{i}号", "grade": grade},
                       started_by=commander[c], started_at=found, segments=1)
            hazard = dict(hazard_blank)
            hazard.update(run_id=run_id, code=f"YH{run_id:08d}", playbook_id=pb.id,
                          unit_id=c, street_id=street[c], source=rng.choice(SOURCES),
                          grade=grade, location=f"{name[c]}{i}号", found_at=found,
                          found_by=grid_people[0].id, due_at=due, status="整改中", plan={},
                          updated_at=found)
            common_rectify = {"run_id": run_id, "step_key": "rectify", "title": rectify.title,
                              "role": rectify.role, "unit_id": c, "assignee_unit_id": grid_unit,
                              "assignees": [p.id for p in grid_people], "ready_at": found,
                              "due_at": due}
            waiting_close = not closed and rng.random() < close_share
            if closed or waiting_close:
                rectified = min(found + timedelta(seconds=rng.randint(3600, 25 * 86400)),
                                now - timedelta(minutes=10))
                step_id += 1
                steps.append(step(id=step_id, **common_rectify, status="done",
                                  submitted_at=rectified, submitted_by=grid_people[0].id,
                                  done_at=rectified, next_check_at=None,
                                  note="已整改"))
                closing = (min(rectified + timedelta(seconds=rng.randint(600, 20 * 86400)),
                               now - timedelta(minutes=1)) if closed else None)
                step_id += 1
                steps.append(step(
                    id=step_id, run_id=run_id, step_key="close", title=close.title,
                    role=close.role, unit_id=c, assignee_unit_id=insp_unit,
                    assignees=[p.id for p in insp_people], ready_at=rectified,
                    status="done" if closed else "ready", due_at=None, next_check_at=None,
                    submitted_at=closing, submitted_by=insp_people[0].id if closed else None,
                    done_at=closing, note="验收合格" if closed else None))
                if closed:
                    run.update(finished_at=closing)
                    hazard.update(status="已销号", closed_at=closing, updated_at=closing)
                else:
                    hazard.update(status="待销号", updated_at=rectified)
                    counts["open steps"] += 1
            else:
                step_id += 1
                late = due <= now
                # Past the deadline: overdue, its one level fired, nothing left to check.
                # Otherwise the first check is the deadline, at least two days ahead, so a
                # real server idling on this database has nothing come due.
                steps.append(step(id=step_id, **common_rectify, status="ready", overdue=late,
                                  escalation_level=1 if late else 0,
                                  last_escalated_at=due if late else None,
                                  next_check_at=None if late else max(due, now + 2 * DAY)))
                counts["open steps"] += 1
            runs.append(run)
            hazards.append(hazard)
            counts["runs"] += 1
            counts["hazards"] += 1
            counts["steps"] += 2 if (closed or waiting_close) else 1
            if len(steps) >= common.CHUNK:
                flush()
        flush()
    # No ANALYZE: a production database has no planner statistics either.
    common.checkpoint(rt)
    return counts


def ready_close_tasks(db: Db, n: int, rng: random.Random) -> list[tuple[int, str]]:
    """`n` ready close steps at random, each with an inspector of its street."""
    with db.rt.db.connect() as conn:
        rows = conn.execute(text(
            "SELECT id, assignees FROM step_instance WHERE step_key = 'close' "
            "AND status = 'ready' ORDER BY random() LIMIT :n"), {"n": n}).all()
    out = []
    for step_id, assignees in rows:
        people = assignees if isinstance(assignees, list) else json.loads(assignees)
        out.append((int(step_id), rng.choice(people)))
    return out


# -- measuring -----------------------------------------------------------------------------------

class Api:
    def __init__(self, db: Db) -> None:
        self.db = db
        self.client = TestClient(create_app(db.rt, background=False, prefect=False))
        self.client.__enter__()
        secret = db.rt.settings.signing_secret()
        self._tokens: dict[str, dict[str, str]] = {}
        self.secret = secret

    def headers(self, person: str) -> dict[str, str]:
        if person not in self._tokens:
            self._tokens[person] = {"Authorization": f"Bearer {make_token(person, self.secret)}"}
        return self._tokens[person]

    def get(self, path: str, person: str, **params: Any) -> tuple[float, Any]:
        with Timer() as t:
            r = self.client.get(path, params=params, headers=self.headers(person))
        if r.status_code != 200:
            raise SystemExit(f"{self.db.name}: GET {path} -> {r.status_code} {r.text[:300]}")
        return t.ms, r.json()

    def close_task(self, step_id: int, person: str) -> float:
        with Timer() as t:
            r = self.client.post(f"/api/tasks/{step_id}/complete",
                                 json={"note": "验收合格，予以销号"}, headers=self.headers(person))
        if r.status_code != 200 or r.json()["status"] != "done":
            raise SystemExit(f"{self.db.name}: complete {step_id} -> {r.status_code} "
                             f"{r.text[:300]}")
        self.db.clock.advance(timedelta(seconds=1))
        return t.ms

    def close(self) -> None:
        self.client.__exit__(None, None, None)


def inspectors(rt: Runtime) -> list[str]:
    return [f"{u.id}-inspector-1" for u in rt.org.units_where(type="street")]


def grid_workers(rt: Runtime) -> list[str]:
    return [p.id for p in rt.org.people.values() if "grid_worker" in p.roles][:6]


def last_full_month(now: datetime, rt: Runtime) -> str:
    local = now.astimezone(rt.tz)
    year, month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def measure_inbox(api: Api, people: list[str], n: int, out: list[float]) -> int:
    count = 0
    for i in range(n):
        ms, body = api.get("/api/tasks", people[i % len(people)], mine="true", limit=50)
        out.append(ms)
        count = max(count, body["count"])
    return count


def measure_search(api: Api, db: Db, people: list[str], n: int, out: list[float]) -> None:
    """An inspector finding one hazard in their inbox by the number on the site's notice
    (GET /api/tasks?mine=true&q=<隐患编号>): a LIKE over run titles and the register, so its
    cost grows with the database; reported, no target."""
    with db.rt.db.connect() as conn:
        codes = [c for (c,) in conn.exec_driver_sql(
            "SELECT code FROM hazard ORDER BY random() LIMIT ?", (n,))]
    for i, code in enumerate(codes):
        ms, _ = api.get("/api/tasks", people[i % len(people)], mine="true", limit=50, q=code)
        out.append(ms)


def measure_register(api: Api, n: int, out: list[float]) -> None:
    """The 整改清单's first page as the district manager: nearest deadline first, each
    hazard with its 当前环节 and 当前办理人 (flows/holders.py)."""
    for _ in range(n):
        ms, body = api.get("/api/registers/rectification", MANAGER, limit=50)
        assert all(h["current_step"] for h in body["data"]), "an open hazard held by nobody"
        out.append(ms)


def measure_ranking(api: Api, month: str, repeats: int) -> tuple[float, list[float], Any]:
    cold, body = api.get("/api/ranking", MANAGER, month=month)
    times = [api.get("/api/ranking", MANAGER, month=month)[0] for _ in range(repeats)]
    return cold, times, body


# -- idle cost of a real server ------------------------------------------------------------------

def proc_figures(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    kib = {k: float(fields[k].split()[0]) for k in ("VmRSS", "VmHWM")}
    stat = Path(f"/proc/{pid}/stat").read_text()
    after = stat[stat.rindex(")") + 2:].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(after[11]) + int(after[12])) / ticks  # utime, stime (fields 14 and 15)
    return {"rss": kib["VmRSS"] * 1024, "hwm": kib["VmHWM"] * 1024, "cpu": cpu}


def idle_server(db: Db, tmp: Path, seconds: float) -> dict[str, float]:
    db.rt.db.dispose()
    data = tmp / f"serve-{db.name}"
    data.mkdir(exist_ok=True)
    server = ServerProcess(data, env={
        "CLOSELOOP_DATABASE_URL": db.rt.settings.db_url,
        "CLOSELOOP_PLAYBOOKS": str(db.books),
        "CLOSELOOP_ORG": str(DEMO_ORG),
        "CLOSELOOP_CALENDAR": str(SHIPPED_PLAYBOOKS / "calendar" / "cn-workdays.yaml"),
        "CLOSELOOP_SWEEP_INTERVAL": "1s",
        "CLOSELOOP_PREFECT_ENABLED": "false",
        "CLOSELOOP_SECRET": "bench-secret-not-a-placeholder",
    })
    started = time.monotonic()
    server.start(wait_prefect=False, timeout=120)
    try:
        assert server.proc is not None
        pid = server.proc.pid
        ready_s = time.monotonic() - started
        first = proc_figures(pid)
        time.sleep(seconds)
        last = proc_figures(pid)
        health = server.get("/healthz")
        sweeper = (health.get("sweeper") or {})
        return {"ready_s": ready_s, "startup_cpu_s": first["cpu"],
                "idle_cpu_s": last["cpu"] - first["cpu"], "rss": last["rss"],
                "hwm": last["hwm"], "sweep_errors": float(sweeper.get("errors") or 0)}
    finally:
        server.stop()


# -- statement profile ---------------------------------------------------------------------------

def profile(rt: Runtime, call: Callable[[], Any]) -> list[tuple[float, str, Any]]:
    """Each statement one request runs, timed on its own, slowest first."""
    seen: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
             executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(rt.db, "before_cursor_execute", grab)
    try:
        call()
    finally:
        event.remove(rt.db, "before_cursor_execute", grab)
    timed = []
    with rt.db.connect() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        for statement, params in seen:
            start = time.perf_counter()
            driver.execute(statement, params).fetchall()
            timed.append(((time.perf_counter() - start) * 1000, statement, params))
    return sorted(timed, key=lambda t: -t[0])


def explain(rt: Runtime, statement: str, params: Any) -> list[str]:
    with rt.db.connect() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        return [row[3] for row in driver.execute("EXPLAIN QUERY PLAN " + statement, params)]


def show_profile(title: str, rt: Runtime, call: Callable[[], Any], top: int = 3) -> None:
    timed = profile(rt, call)
    print(f"\n{title}: {len(timed)} SELECTs, {sum(t[0] for t in timed):.1f} ms in all")
    for ms, statement, params in timed[:top]:
        print(f"  {ms:8.1f} ms  {' '.join(statement.split())[:300]}")
        print(f"             params {params!r:.200}")
        for line in explain(rt, statement, params):
            print(f"             plan: {line}")
    print(flush=True)


# -- main ----------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    now = now_minute()
    print(f"bench_hazard_scale: {args.hazards:,} open hazards (+{args.closed_share:.0%} "
          f"closed) vs {args.baseline:,}; {args.requests} inbox pages and closings each, "
          f"ranking median of {args.ranking_repeats}, idle {args.idle:g} s")
    rng = random.Random(args.seed)
    with common.temp_dir("hazard-scale") as tmp:
        dbs = [build(name, tmp, open_count=n, closed_count=int(n * args.closed_share),
                     close_share=args.close_share, seed_value=args.seed + i, now=now)
               for i, (name, n) in enumerate((("baseline", args.baseline),
                                              ("big", args.hazards)))]
        base, big = dbs
        for db in dbs:
            db.close_tasks = ready_close_tasks(db, args.requests + 10, rng)
            if len(db.close_tasks) < args.requests + 10:
                raise SystemExit(f"{db.name}: only {len(db.close_tasks)} close steps ready; "
                                 "raise --baseline or --close-share")
        month = last_full_month(now, big.rt)
        apis = {db.name: Api(db) for db in dbs}
        try:
            for db in dbs:  # warm-up: the app, the catalog, the page cache
                api = apis[db.name]
                measure_inbox(api, inspectors(db.rt), 12, [])
                for step_id, person in db.close_tasks[:10]:
                    api.close_task(step_id, person)
                db.close_tasks = db.close_tasks[10:]
            per_round = [args.requests // args.rounds] * args.rounds
            per_round[-1] += args.requests - sum(per_round)
            done = {db.name: 0 for db in dbs}
            for n in per_round:
                for db in dbs:
                    api = apis[db.name]
                    gc.collect()
                    db.inbox_count = measure_inbox(api, inspectors(db.rt), n, db.inbox)
                    measure_inbox(api, grid_workers(db.rt), n, db.grid_inbox)
                    measure_register(api, n, db.register)
                    measure_search(api, db, inspectors(db.rt), max(n // 10, 2), db.search)
                    for step_id, person in db.close_tasks[done[db.name]:done[db.name] + n]:
                        db.closing.append(api.close_task(step_id, person))
                    done[db.name] += n
            ranking_body: dict[str, Any] = {}
            for db in dbs:
                gc.collect()
                db.ranking_cold, db.ranking, ranking_body[db.name] = measure_ranking(
                    apis[db.name], month, args.ranking_repeats)
            big_api = apis["big"]
            show_profile("profile: one inspector inbox page (big)", big.rt,
                         lambda: big_api.get("/api/tasks", inspectors(big.rt)[0], mine="true",
                                             limit=50))
            show_profile("profile: one 整改清单 page (big)", big.rt,
                         lambda: big_api.get("/api/registers/rectification", MANAGER, limit=50))
            show_profile("profile: one monthly ranking (big)", big.rt,
                         lambda: big_api.get("/api/ranking", MANAGER, month=month), top=4)
        finally:
            for api in apis.values():
                api.close()
        if not args.no_idle:
            for db in dbs:
                common.checkpoint(db.rt)
                progress(f"idling a real server on {db.name} for {args.idle:g} s")
                db.idle = idle_server(db, tmp, args.idle)
        for db in dbs:
            db.rt.db.dispose()

    report(args, base, big, month, ranking_body)
    return 0


def report(args: argparse.Namespace, base: Db, big: Db, month: str,
           ranking_body: dict[str, Any]) -> None:
    rows = []
    figures: dict[str, dict[str, float]] = {}
    for label, key in (("inspector inbox page", "inbox"), ("grid worker inbox page",
                                                            "grid_inbox"),
                       ("整改清单 page (manager)", "register"),
                       ("inbox searched by 隐患编号", "search"),
                       ("close a task", "closing")):
        for db in (base, big):
            s = summary(getattr(db, key))
            figures[f"{key}_{db.name}"] = s
            rows.append([label, f"{db.open_count:,} open", int(s["n"]), s["mean"], s["p50"],
                         s["p95"], s["p99"], s["max"]])
    print_table("latency (ms) through FastAPI's TestClient", ["request", "database", "n", "mean",
                                                              "p50", "p95", "p99", "max"], rows)
    rank_rows = [[f"{db.open_count:,} open", db.ranking_cold, common.median(db.ranking),
                  min(db.ranking), max(db.ranking)] for db in (base, big)]
    print_table(f"GET /api/ranking?month={month} (ms)", ["database", "first (cold)", "median",
                                                         "min", "max"], rank_rows)
    streets = ranking_body["big"]["data"]
    print_table(f"ranking {month}, big database", ["rank", "street", "found", "closed",
                                                   "closure %", "overdue", "mean days",
                                                   "on time %"],
                [[r["rank"], r["unit_name"], r["found"], r["closed"],
                  (r["closure_rate"] or 0) * 100, r["overdue"], r["mean_days_to_close"],
                  (r["on_time_rate"] or 0) * 100] for r in streets])
    idle_ok = True
    rss_ratio = cpu_ratio = float("nan")
    if base.idle and big.idle:
        print_table(f"a real `closeloop serve`, idle {args.idle:g} s (sweep every 1 s, "
                    "Prefect off)", ["database", "ready (s)", "startup CPU (s)",
                                     "idle CPU (s)", "VmRSS", "VmHWM", "sweep errors"],
                    [[f"{db.open_count:,} open", db.idle["ready_s"], db.idle["startup_cpu_s"],
                      db.idle["idle_cpu_s"], fmt_bytes(db.idle["rss"]),
                      fmt_bytes(db.idle["hwm"]), int(db.idle["sweep_errors"])]
                     for db in (base, big)])
        rss_ratio = common.ratio(big.idle["rss"], base.idle["rss"])
        cpu_ratio = common.ratio(big.idle["idle_cpu_s"], base.idle["idle_cpu_s"])
        cpu_close = big.idle["idle_cpu_s"] - base.idle["idle_cpu_s"] <= IDLE_CPU_FLOOR_S
        idle_ok = rss_ratio <= TARGET_IDLE_RATIO and (cpu_ratio <= TARGET_IDLE_RATIO
                                                      or cpu_close)
    inbox_p95 = figures["inbox_big"]["p95"]
    close_p95 = figures["closing_big"]["p95"]
    ranking_s = common.median(big.ranking) / 1000
    ok = {"inbox": inbox_p95 <= TARGET_INBOX_P95_MS, "close": close_p95 <= TARGET_CLOSE_P95_MS,
          "ranking": ranking_s <= TARGET_RANKING_S, "idle": idle_ok}
    print_table("summary", ["figure", "value", "baseline", "ratio", "target", "verdict"], [
        ["inspector inbox p95 (ms)", inbox_p95, figures["inbox_baseline"]["p95"],
         common.ratio(inbox_p95, figures["inbox_baseline"]["p95"]),
         f"<= {TARGET_INBOX_P95_MS:.0f}", common.verdict(ok["inbox"])],
        ["  (inbox size, tasks)", big.inbox_count, base.inbox_count, "-", "-", "-"],
        ["close a task p95 (ms)", close_p95, figures["closing_baseline"]["p95"],
         common.ratio(close_p95, figures["closing_baseline"]["p95"]),
         f"<= {TARGET_CLOSE_P95_MS:.0f}", common.verdict(ok["close"])],
        ["monthly ranking median (s)", ranking_s, common.median(base.ranking) / 1000,
         common.ratio(ranking_s, common.median(base.ranking) / 1000),
         f"<= {TARGET_RANKING_S:g}", common.verdict(ok["ranking"])],
        ["idle VmRSS", fmt_bytes(big.idle.get("rss", 0)), fmt_bytes(base.idle.get("rss", 0)),
         rss_ratio, f"ratio <= {TARGET_IDLE_RATIO:g}", common.verdict(idle_ok)],
        ["idle CPU (s over the window)", big.idle.get("idle_cpu_s", float("nan")),
         base.idle.get("idle_cpu_s", float("nan")), cpu_ratio,
         f"ratio <= {TARGET_IDLE_RATIO:g} or +{IDLE_CPU_FLOOR_S:g} s", "-"],
        ["seeding time (s)", big.seed_s, base.seed_s, "-", "-", "-"],
        ["database file", fmt_bytes(big.file_bytes), fmt_bytes(base.file_bytes), "-", "-",
         "-"],
    ])
    common.emit_result(
        "bench_hazard_scale", hazards=big.open_count, closed=big.closed_count,
        baseline=base.open_count, requests=args.requests,
        inbox_p50_ms=figures["inbox_big"]["p50"], inbox_p95_ms=inbox_p95,
        baseline_inbox_p95_ms=figures["inbox_baseline"]["p95"],
        grid_inbox_p95_ms=figures["grid_inbox_big"]["p95"],
        register_p95_ms=figures["register_big"]["p95"],
        search_p95_ms=figures["search_big"]["p95"],
        baseline_search_p95_ms=figures["search_baseline"]["p95"],
        baseline_register_p95_ms=figures["register_baseline"]["p95"],
        close_p50_ms=figures["closing_big"]["p50"], close_p95_ms=close_p95,
        baseline_close_p95_ms=figures["closing_baseline"]["p95"],
        ranking_s=ranking_s, ranking_cold_s=big.ranking_cold / 1000,
        baseline_ranking_s=common.median(base.ranking) / 1000,
        idle_rss_bytes=big.idle.get("rss"), baseline_idle_rss_bytes=base.idle.get("rss"),
        idle_cpu_s=big.idle.get("idle_cpu_s"),
        baseline_idle_cpu_s=base.idle.get("idle_cpu_s"), idle_s=args.idle,
        rss_ratio=rss_ratio, cpu_ratio=cpu_ratio, seed_s=big.seed_s, db_bytes=big.file_bytes,
        target_inbox_p95_ms=TARGET_INBOX_P95_MS, target_close_p95_ms=TARGET_CLOSE_P95_MS,
        target_ranking_s=TARGET_RANKING_S, target_idle_ratio=TARGET_IDLE_RATIO,
        ok=all(ok.values()), **{f"ok_{k}": v for k, v in ok.items()},
    )


if __name__ == "__main__":
    raise SystemExit(main())
