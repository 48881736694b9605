"""`POST /api/runs` latency with 100,000 runs already stored (SQLite).

Target: p95 <= 50 ms with 100k runs. Baseline in the same process: the same request against an
(almost) empty database; the ratio p95_100k / p95_empty shows whether starting a run slows down
as history piles up (every statement on the path should be an index lookup by run id).

The 100k runs are bulk-inserted with SQLAlchemy Core (not through the API): the rows
flows/lifecycle.py `_start` and the engine write over a run's life, for playbook
quick-escalation: most runs completed (four finished steps, their audit trail, notifications,
an escalation, done wakes), some still running with an open step. The PlaybookVersion row comes
from one real start_run first. The measured requests then go through FastAPI's TestClient
(create_app(rt, background=False)), alternating between the two databases in rounds so drift
on the machine hits both alike.

    ./dev bench bench_start_run                 # 100,000 runs, 300 requests
    ./dev bench bench_start_run --runs 20000 --requests 100
"""

from __future__ import annotations

import argparse
import gc
import random
import warnings
from datetime import datetime, timedelta
from typing import Any

import common
from common import Timer, blank_row, bulk_insert, fmt_bytes, print_table, progress, summary

warnings.filterwarnings("ignore", message=".*httpx.*")

from fastapi.testclient import TestClient  # noqa: E402

from api.auth import make_token  # noqa: E402
from api.main import create_app  # noqa: E402
from flows import lifecycle  # noqa: E402
from flows.runtime import Runtime  # noqa: E402
from models.audit import AuditEvent  # noqa: E402
from models.clock import ManualClock  # noqa: E402
from models.escalation import Escalation  # noqa: E402
from models.outbox import Notification  # noqa: E402
from models.run import Run  # noqa: E402
from models.task import StepInstance  # noqa: E402
from models.wake import Wake  # noqa: E402

PLAYBOOK = "quick-escalation"
UNIT = "c1"
PERSON = "s1-commander"
TARGET_P95_MS = 50.0
UNITS = ("c1", "c2", "s1", "s2")
COMMANDERS = {"c1": "s1-commander", "c2": "s1-commander", "s1": "s1-commander",
              "s2": "s2-commander"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs stored before measuring")
    parser.add_argument("--requests", type=int, default=300, help="timed POSTs per database")
    parser.add_argument("--warmup", type=int, default=10, help="untimed POSTs per database")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternate the two databases this many times")
    parser.add_argument("--running-share", type=float, default=0.1,
                        help="share of seeded runs still running (the rest completed)")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args(argv)


# -- seeding ---------------------------------------------------------------------------------

class HistorySeeder:
    """Rows of quick-escalation runs as the engine leaves them, with explicit ids."""

    def __init__(self, rt: Runtime, *, sha: str, now: datetime, rng: random.Random,
                 first_ids: dict[str, int]) -> None:
        self.rt = rt
        self.pb = rt.catalog.get(PLAYBOOK)
        self.sha = sha
        self.now = now
        self.rng = rng
        self.next = dict(first_ids)
        self.rows: dict[str, list[dict[str, Any]]] = {
            "run": [], "step_instance": [], "audit_event": [], "notification": [],
            "escalation": [], "wake": [],
        }
        self.tables = {"run": Run.__table__, "step_instance": StepInstance.__table__,
                       "audit_event": AuditEvent.__table__,
                       "notification": Notification.__table__,
                       "escalation": Escalation.__table__, "wake": Wake.__table__}
        self.blank = {name: blank_row(table) for name, table in self.tables.items()}
        self.counts = {name: 0 for name in self.rows}

    def _id(self, table: str) -> int:
        self.next[table] += 1
        return self.next[table]

    def _add(self, table: str, **values: Any) -> dict[str, Any]:
        row = dict(self.blank[table])
        row.update(values)
        if "id" in row and row["id"] is None:
            row["id"] = self._id(table)
        self.rows[table].append(row)
        return row

    def _event(self, run_id: int, step_id: int | None, at: datetime, actor: str, action: str,
               frm: str | None, to: str | None, detail: dict[str, Any]) -> None:
        self._add("audit_event", run_id=run_id, step_id=step_id, at=at, actor=actor,
                  action=action, from_state=frm, to_state=to, detail=detail)

    def _note(self, run_id: int, step_id: int, kind: str, rkind: str, recipient: str,
              url: str, title: str, at: datetime, dedupe: str, delivered: bool) -> None:
        self._add("notification", dedupe_key=dedupe, run_id=run_id, step_id=step_id,
                  kind=kind, recipient_kind=rkind, recipient=recipient, url=url, title=title,
                  body=f"{title}（基准测试数据）", status="delivered" if delivered else "dead",
                  attempts=0 if url == "inbox://" else 3,
                  next_attempt_at=None, created_at=at, delivered_at=at if delivered else None,
                  last_error=None if delivered else "connection refused")

    def run(self, *, running: bool) -> None:
        rng = self.rng
        unit = rng.choice(UNITS)
        actor = COMMANDERS[unit]
        started = self.now - timedelta(seconds=rng.uniform(600, 365 * 86400))
        run_id = self._id("run")
        params = {"location": f"{self.rt.org.unit(unit).name}{rng.randint(1, 300)}号"}
        finished = None if running else started + timedelta(minutes=rng.uniform(20, 240))
        self._add("run", id=run_id, playbook_id=self.pb.id, playbook_version=self.pb.version,
                  playbook_sha=self.sha, title=f"{self.pb.title}·{params['location']}",
                  unit_id=unit, status="running" if running else "completed", stage=None,
                  stage_entered_at=None, params=params, started_by=actor, started_at=started,
                  finished_at=finished, parent_step_id=None, segments=0 if running else 3)
        self._event(run_id, None, started, actor, "run_started", None, "running",
                    {"playbook": self.pb.id, "version": self.pb.version, "params": params})
        self._add("wake", run_id=run_id, reason="started", created_at=started,
                  not_before=started, attempts=1, done_at=started + timedelta(seconds=1))
        # receive is open in half the running runs; inspect in the other half.
        open_key = None
        if running:
            open_key = "receive" if rng.random() < 0.5 else "inspect"
        t = started
        upstream_open = False
        for spec in self.pb.steps:
            sid = self._id("step_instance")
            found_at, holders = (self.rt.org.resolve_role(spec.role, unit) if spec.role
                                 else (None, []))
            people = [p.id for p in holders]
            row: dict[str, Any] = dict(
                id=sid, run_id=run_id, step_key=spec.id, item_index=0, item=None,
                title=spec.title, action=spec.action, role=spec.role, unit_id=unit,
                assignee_unit_id=found_at, assignee_person_id=None, assignees=people,
                status="pending", outputs={}, evidence=[], overdue=False, escalation_level=0,
                reminders_sent=0, ack_missed=False, prefect_recorded=not running, version=0,
            )
            if upstream_open:
                self._add("step_instance", **row)
                continue
            ready = t
            due = ready + timedelta(seconds=spec.due.after.seconds()) if spec.due else None
            row.update(status="ready", ready_at=ready, due_at=due, version=1)
            self._event(run_id, sid, ready, "system", "ready", "pending", "ready",
                        {"step": spec.id, "assignees": people,
                         "due_at": due.isoformat() if due else None})
            if spec.action == "task" and people:
                for person in people:
                    self._note(run_id, sid, "assigned", "person", person, "inbox://",
                               f"【新任务】{spec.title}", ready,
                               f"assigned|{sid}|1|person:{person}|0", True)
            if spec.escalate and due is not None:
                fired = due + timedelta(seconds=rng.uniform(0, 30))
                recipients = ["d1-chief", "duty"]
                self._add("escalation", run_id=run_id, step_id=sid, step_key=spec.id,
                          kind="escalate", level=1, repeat=0, scheduled_at=due,
                          fired_at=fired, recipients=recipients,
                          prefect_recorded=not running)
                self._event(run_id, sid, fired, "system", "overdue", None, None,
                            {"step": spec.id, "due_at": due.isoformat()})
                self._event(run_id, sid, fired, "system", "escalate", None, None,
                            {"step": spec.id, "level": 1, "repeat": 0,
                             "scheduled_at": due.isoformat(), "recipients": recipients})
                key = f"escalate|{sid}|1|{due.isoformat()}"
                self._note(run_id, sid, "escalate", "person", "d1-chief", "inbox://",
                           f"【督办提醒】{spec.title}", fired, f"{key}|person:d1-chief|0", True)
                self._note(run_id, sid, "escalate", "channel", "duty",
                           str(self.rt.org.channels.get("duty", "json://127.0.0.1:9/duty")),
                           f"【督办提醒】{spec.title}", fired, f"{key}|channel:duty|0", False)
                row.update(overdue=True, escalation_level=1, last_escalated_at=fired)
            if spec.id == open_key:
                # Still open: the next timer (the 10 s repeat, or the due time) is in the future
                # relative to the seeded history's own clock; nothing sweeps in this benchmark.
                row.update(next_check_at=self.now + timedelta(seconds=rng.uniform(1, 3600)))
                upstream_open = True
                self._add("step_instance", **row)
                continue
            took = timedelta(minutes=rng.uniform(1, 30))
            done = ready + took
            person = people[0] if people else None
            if spec.action == "task":
                row.update(acked_at=ready + took / 4, acked_by=person, submitted_at=done,
                           submitted_by=person, note="已处置" if spec.evidence else None,
                           evidence=[f"ev-{sid}"] if spec.evidence else [])
                if spec.verify:
                    verifier = "s1-insp1"
                    row.update(verified_by=verifier)
                    self._event(run_id, sid, done, person or "system", "submitted", "ready",
                                "submitted", {"step": spec.id})
                    actor_done = verifier
                else:
                    actor_done = person or "system"
                self._event(run_id, sid, done, actor_done, "done", "ready", "done",
                            {"step": spec.id})
            else:
                row.update(outputs={"document": f"doc-{sid}"} if spec.action == "document"
                           else {"sent": 1})
                self._event(run_id, sid, done, "system", "done", "ready", "done",
                            {"step": spec.id})
                if spec.action == "notify":
                    self._note(run_id, sid, "notify", "channel", "duty",
                               str(self.rt.org.channels.get("duty", "")), spec.title, done,
                               f"notify|{sid}|channel:duty|0", False)
            row.update(status="done", done_at=done, version=4)
            self._add("step_instance", **row)
            self._add("wake", run_id=run_id, reason="step_done", created_at=done,
                      not_before=done, attempts=1, done_at=done + timedelta(seconds=1))
            if spec.id in ("receive", "inspect"):
                t = done
        if not running and finished is not None:
            self._event(run_id, None, finished, "system", "run_completed", "running",
                        "completed", {})

    def flush(self, conn: Any) -> None:
        # Parents first (foreign keys are on: step_instance.run_id -> run.id).
        for name in ("run", "step_instance", "audit_event", "notification", "escalation",
                     "wake"):
            rows = self.rows[name]
            if rows:
                self.counts[name] += bulk_insert(conn, self.tables[name], rows)
                self.rows[name] = []


def seed(rt: Runtime, *, runs: int, running_share: float, seed: int) -> dict[str, int]:
    """One real start_run (pins the PlaybookVersion), then `runs` runs in bulk."""
    real = lifecycle.start_run(rt, playbook_id=PLAYBOOK, unit_id=UNIT,
                               params={"location": "基准"}, actor=PERSON)
    rng = random.Random(seed)
    with common.seeding(rt.db) as conn:
        first = {t: common.max_id(conn, t) for t in
                 ("run", "step_instance", "audit_event", "notification", "escalation", "wake")}
        seeder = HistorySeeder(rt, sha=real.playbook_sha, now=rt.clock.now(), rng=rng,
                               first_ids=first)
        for i in range(runs):
            seeder.run(running=rng.random() < running_share)
            if len(seeder.rows["audit_event"]) >= common.CHUNK or i == runs - 1:
                seeder.flush(conn)
    common.checkpoint(rt)
    return {"runs": seeder.counts["run"] + 1, **{k: v for k, v in seeder.counts.items()
                                                 if k != "run"}}


# -- measuring -------------------------------------------------------------------------------

def post_times(client: TestClient, token: str, clock: ManualClock, n: int) -> list[float]:
    headers = {"Authorization": f"Bearer {token}"}
    out: list[float] = []
    for i in range(n):
        body = {"playbook": PLAYBOOK, "unit": UNIT, "params": {"location": f"测点{i}"}}
        with Timer() as t:
            response = client.post("/api/runs", json=body, headers=headers)
        if response.status_code != 201:
            raise SystemExit(f"POST /api/runs failed: {response.status_code} {response.text}")
        out.append(t.ms)
        clock.advance(timedelta(seconds=1))
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"bench_start_run: POST /api/runs with {args.runs:,} stored runs vs an empty "
          f"database ({args.requests} timed requests each, {args.rounds} alternating rounds)")
    with common.temp_dir("start-run") as tmp:
        clocks = {"empty": ManualClock(common.START), "big": ManualClock(common.START)}
        rts = {name: common.runtime(tmp / name, clock=clocks[name]) for name in clocks}
        progress(f"seeding {args.runs:,} runs")
        with Timer() as seed_t:
            counts = seed(rts["big"], runs=args.runs, running_share=args.running_share,
                          seed=args.seed)
        size = common.db_size(rts["big"])
        progress(f"seeded in {seed_t.seconds:.1f} s: "
                 + ", ".join(f"{k} {v:,}" for k, v in counts.items())
                 + f"; file {fmt_bytes(size['db'])}")
        times: dict[str, list[float]] = {"empty": [], "big": []}
        clients = {name: TestClient(create_app(rt, background=False))
                   for name, rt in rts.items()}
        tokens = {name: make_token(PERSON, rt.settings.signing_secret())
                  for name, rt in rts.items()}
        try:
            for name, client in clients.items():
                client.__enter__()
                post_times(client, tokens[name], clocks[name], args.warmup)
            per_round = [args.requests // args.rounds] * args.rounds
            per_round[-1] += args.requests - sum(per_round)
            for n in per_round:
                for name in ("empty", "big"):
                    gc.collect()
                    times[name] += post_times(clients[name], tokens[name], clocks[name], n)
        finally:
            for client in clients.values():
                client.__exit__(None, None, None)
            for rt in rts.values():
                rt.db.dispose()

    empty, big = summary(times["empty"]), summary(times["big"])
    ratio95 = common.ratio(big["p95"], empty["p95"])
    ok = big["p95"] <= TARGET_P95_MS
    print_table(
        "POST /api/runs latency (ms)",
        ["database", "requests", "mean", "p50", "p95", "p99", "max"],
        [[f"empty (baseline, +{args.warmup} warm-up runs)", int(empty["n"]), empty["mean"],
          empty["p50"], empty["p95"], empty["p99"], empty["max"]],
         [f"{counts['runs']:,} runs", int(big["n"]), big["mean"], big["p50"], big["p95"],
          big["p99"], big["max"]]],
    )
    print_table(
        "summary",
        ["figure", "value", "target", "verdict"],
        [["p95 with stored runs (ms)", big["p95"], f"<= {TARGET_P95_MS:.0f}", common.verdict(ok)],
         ["ratio p95 stored / p95 empty", ratio95, "(≈1: flat)", "-"],
         ["seeding time (s)", seed_t.seconds, "-", "-"],
         ["database file", fmt_bytes(size["db"]), "-", "-"]],
    )
    common.emit_result(
        "bench_start_run", runs=counts["runs"], requests=args.requests,
        p50_ms=big["p50"], p95_ms=big["p95"], p99_ms=big["p99"],
        baseline_p50_ms=empty["p50"], baseline_p95_ms=empty["p95"],
        baseline_p99_ms=empty["p99"], ratio_p95=ratio95, target_p95_ms=TARGET_P95_MS,
        ok=ok, seed_s=seed_t.seconds, db_bytes=size["db"],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
