"""Bulk import of a district-year of hazards (400,000 rows) from CSV.

Targets (issue 3): the full import ≤ 60 s, and within 5x of the floor. The floor, measured in
the same process on the same rows: parse nothing, just `executemany` the rows (the file's ten
columns as plain text, the found time as a timestamp string) into an empty table of a fresh
SQLite file with the stdlib sqlite3 module, one transaction, the product's own journal
settings (WAL, synchronous=NORMAL). The full import is flows.hazard_import.import_hazards on
the file's bytes, as POST /api/hazards/import calls it: decode and parse the CSV, check every
row (units, enums, times, codes unique in the file and the database, the playbook's typed
params, rights), then in one transaction start one run per row through flows/bulk_start.py
(run, register row, step rows with assignment, due and first check, skipped steps, one audit
event per run, one summary note per assignee), into a fresh closeloop SQLite database; on
SQLite a file of more than 20,000 rows is written in chunks, each its own transaction. While
it imports, another thread starts one run every second (--writer) and the wait of each is
reported: what a commander starting a response would feel during a district-year import.

Data: 400,000 rows over the communities of the shipped demo district
(playbooks/org/demo-district.yaml), about 3 % 重大, realistic sources, categories, places,
enterprises, finders and found times over the year before the import. Playbook: the shipped
hazard-3030 when it exists in playbooks/ (an ordinary hazard starts with 1 ready and 5 skipped
step rows, a major one with 2 ready), else the test playbook tests/fixtures/imports/import-demo.yaml
(1 ready and 1 skipped).

    ./dev bench bench_import
    ./dev bench bench_import --rows 50000
    ./dev bench bench_import --rows 100000 --profile 30     # cProfile, top 30 functions
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import os
import pstats
import random
import sqlite3
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import common
from common import START, Timer, fmt_bytes, print_table, progress

from flows import bulk_insert, bulk_start, hazard_import, import_checks  # noqa: E402
from models.org import load_org  # noqa: E402

TARGET_S = 60.0
TARGET_RATIO = 5.0
DEMO_ORG = common.REPO / "playbooks" / "org" / "demo-district.yaml"
SHIPPED = common.REPO / "playbooks"
IMPORT_PLAYBOOKS = common.TESTS / "fixtures" / "imports"  # import-demo.yaml
ACTOR = "pingshan-admin"
HEADER = ("隐患编号", "单位编号", "隐患来源", "隐患等级", "隐患类别", "隐患地点", "隐患描述",
          "涉及企业", "发现时间", "发现人")
SOURCES = (("检查发现", 70), ("群众举报", 14), ("执法检查", 13), ("事故调查", 3))
CATEGORIES = ("消防安全", "用电安全", "燃气安全", "危险化学品", "建筑施工", "特种设备", "有限空间",
              "粉尘涉爆", "道路交通", "人员密集场所", "自建房", "其他")
PLACES = ("工业区", "商业街", "城中村", "住宅小区", "农贸市场", "物流园", "学校周边", "工地")
WHAT = ("消防通道堵塞，占用疏散通道", "灭火器过期未检验", "电动车室内违规充电", "私拉乱接电线",
        "燃气管道老化未更换", "危化品储存未分类隔离", "安全出口锁闭", "脚手架未设置防护网",
        "有限空间作业未审批", "粉尘清扫不及时", "应急照明损坏", "特种设备超期未检")
BUSINESS = ("五金制品", "电子科技", "物流", "餐饮管理", "建筑工程", "塑胶制品", "服装", "食品")
SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高梁郑谢宋唐许韩冯邓曹"
            "彭曾萧田董潘袁蔡蒋余于杜叶程")
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红文斌宁"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000, help="hazards in the file")
    parser.add_argument("--major", type=float, default=0.03, help="share of 重大 hazards")
    parser.add_argument("--playbook", default="auto",
                        help="playbook id (auto: hazard-3030 when shipped, else import-demo)")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--writer", type=float, default=1.0, metavar="S",
                        help="while importing, start one run every S seconds from another "
                             "thread and time how long each waits (0: off)")
    parser.add_argument("--chunk", type=int, default=0, metavar="N",
                        help="runs per transaction on SQLite (0: the product's CHUNK_RUNS; "
                             "a number above --rows: the whole file in one transaction)")
    parser.add_argument("--postgres", action="store_true",
                        help="import into a PostgreSQL server started here on loopback, with "
                             "PostgreSQL's own durability (fsync, synchronous commit) on: one "
                             "transaction through COPY; the floor stays SQLite's")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="profile the import with cProfile and print the top N functions")
    return parser.parse_args(argv)


# -- the file --------------------------------------------------------------------------------

def generate(n: int, major: float, seed: int) -> list[tuple[str, ...]]:
    """n rows of ten text cells, as a bureau's register export would have them."""
    rng = random.Random(seed)
    org = load_org(DEMO_ORG)
    communities = [u for u in org.units.values() if u.type == "community"]
    sources = [s for s, weight in SOURCES for _ in range(weight)]
    start = START - timedelta(days=365)
    people = [rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(("", *GIVEN))
              for _ in range(300)]
    rows = []
    for i in range(n):
        unit = communities[rng.randrange(len(communities))]
        found = start + timedelta(minutes=rng.randrange(365 * 24 * 60 - 60))
        local = (found + timedelta(hours=8)).replace(tzinfo=None)  # Asia/Shanghai
        place = rng.choice(PLACES)
        rows.append((
            f"YH2026{i + 1:07d}", unit.id, rng.choice(sources),
            "重大" if rng.random() < major else "一般", rng.choice(CATEGORIES),
            f"{unit.name}{place}{rng.randrange(1, 300)}号{rng.randrange(1, 20)}栋",
            rng.choice(WHAT) + "，需限期整改",
            f"深圳市{unit.name[:2]}{rng.choice(BUSINESS)}有限公司" if rng.random() < 0.7 else "",
            local.strftime("%Y-%m-%d %H:%M"), rng.choice(people),
        ))
    return rows


def csv_bytes(rows: list[tuple[str, ...]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")


# -- the floor -------------------------------------------------------------------------------

def floor(path: Path, rows: list[tuple[str, ...]]) -> float:
    """Seconds to executemany the rows into an empty table (stdlib sqlite3, one transaction)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE hazard_rows (code TEXT, unit TEXT, source TEXT, grade TEXT, "
                     "category TEXT, location TEXT, description TEXT, enterprise TEXT, "
                     "found_at TIMESTAMP, found_by TEXT)")
        with Timer() as t:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO hazard_rows VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            conn.execute("COMMIT")
        return t.seconds
    finally:
        conn.close()


def schema_floor(imported: Path, tmp: Path, runs: int) -> float:
    """Seconds for SQLite alone to write what the import wrote: the imported database's run,
    hazard, step_instance and audit_event rows copied with INSERT ... SELECT into an empty
    closeloop schema (the same indexes, triggers and foreign keys), one transaction, the same
    journal settings and page cache as the import. No Python per row: the least any import
    into this schema can cost on this machine."""
    from models.db import create_schema, make_engine

    target = tmp / "schema-floor.db"
    engine = make_engine(f"sqlite:///{target}")
    create_schema(engine)
    engine.dispose()
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA cache_size=-{min(512 * 1024, max(2048, runs))}")
        conn.execute("ATTACH DATABASE ? AS src", (str(imported),))
        with Timer() as t:
            conn.execute("BEGIN IMMEDIATE")
            for table in ("run", "hazard", "step_instance", "audit_event"):
                conn.execute(f"INSERT INTO main.{table} SELECT * FROM src.{table}")
            conn.execute("COMMIT")
        return t.seconds
    finally:
        conn.close()


# -- the import, with a breakdown of where the time goes --------------------------------------

@contextmanager
def timed(owner: Any, name: str, spent: dict[str, float], label: str,
          key: Callable[..., str] | None = None) -> Iterator[None]:
    """Replace owner.name by a wrapper adding its wall time to spent[label]."""
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[key(*args, **kwargs) if key else label] += time.perf_counter() - started

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, original)


class Writer(threading.Thread):
    """Another person using the system during the import: every `interval` seconds one
    start_run (a hazard registered by hand, its own transaction), timed end to end. On SQLite
    it waits for whatever write transaction the import holds."""

    def __init__(self, rt: Any, playbook: str, interval: float) -> None:
        super().__init__(name="bench-writer", daemon=True)
        self.rt, self.playbook, self.interval = rt, playbook, interval
        self.waits: list[float] = []
        self.errors: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        from flows import lifecycle

        while not self.done.wait(self.interval):
            started = time.perf_counter()
            try:
                lifecycle.start_run(self.rt, playbook_id=self.playbook, unit_id="liuhe",
                                    params={"location": f"并发登记{len(self.waits)}"},
                                    actor=ACTOR)
            except Exception as exc:  # reported: a writer that fails is the finding
                self.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            self.waits.append(time.perf_counter() - started)


def run_import(data: bytes, playbook: str, tmp: Path, profile: int, writer_s: float = 0.0,
               db_url: str | None = None,
               ) -> tuple[float, dict[str, float], dict[str, int], Path | None, Writer | None]:
    playbooks = SHIPPED if playbook == "hazard-3030" else IMPORT_PLAYBOOKS
    rt = common.runtime(tmp / "closeloop", playbooks=playbooks,
                        org_text=DEMO_ORG.read_text(encoding="utf-8"), db_url=db_url)
    spent: dict[str, float] = defaultdict(float)
    from sqlmodel import Session

    def table_of(insert: Any) -> str:
        return f"insert {insert.table.name}"

    profiler = cProfile.Profile() if profile else None
    try:
        with (timed(import_checks, "read_table", spent, "parse file"),
              timed(hazard_import, "_check_hazard_rows", spent, "check rows"),
              timed(hazard_import, "_check_stored", spent, "check database"),
              timed(bulk_start._Rows, "add", spent, "build rows"),
              timed(bulk_insert.BulkInsert, "flush", spent, "", key=table_of),
              timed(bulk_start, "write_summaries", spent, "summaries"),
              timed(hazard_import, "write_summaries", spent, "summaries"),
              timed(Session, "commit", spent, "commit")):
            writer = Writer(rt, playbook, writer_s) if writer_s > 0 else None
            with Timer() as t:
                if writer:
                    writer.start()
                if profiler:
                    profiler.enable()
                result = hazard_import.import_hazards(rt, data=data, filename="隐患清单.csv",
                                                      actor=ACTOR, playbook_id=playbook)
                if profiler:
                    profiler.disable()
            if writer:
                writer.done.set()
                writer.join()
        with rt.db.connect() as conn:
            counts = {table: int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar()
                                 or 0)
                      for table in ("run", "hazard", "step_instance", "audit_event",
                                    "notification")}
        by_hand = len(writer.waits) - len(writer.errors) if writer else 0
        if result.rows + by_hand != counts["run"] or counts["hazard"] != counts["run"]:
            raise SystemExit(f"imported {result.rows} rows but stored {counts}")
        path = common.db_path(rt) if db_url is None else None
    finally:
        rt.db.dispose()
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(profile)
    return t.seconds, dict(spent), counts, path, writer


@contextmanager
def database(postgres: bool) -> Iterator[str | None]:
    """None (a SQLite file per run) or the URL of a durable PostgreSQL started here."""
    if not postgres:
        yield None
        return
    from pg_server import PostgresServer  # tests/ is on sys.path (bench/common.py)

    with PostgresServer(durable=True) as pg:
        yield pg.url


def postgres_bytes(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT pg_database_size(current_database())"))
                       .scalar() or 0)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.chunk:
        hazard_import.CHUNK_RUNS = args.chunk
    playbook = args.playbook
    if playbook == "auto":
        playbook = "hazard-3030" if (SHIPPED / "hazard-3030.yaml").exists() else "import-demo"
    print(f"bench_import: {args.rows:,} hazards from CSV through flows.hazard_import "
          f"(playbook {playbook}, chunks of {hazard_import.CHUNK_RUNS:,} runs) vs executemany "
          "of the same rows into an empty SQLite table")
    progress(f"generating {args.rows:,} rows")
    rows = generate(args.rows, args.major, args.seed)
    data = csv_bytes(rows)
    progress(f"CSV file: {fmt_bytes(len(data))}")
    with common.temp_dir("import") as tmp, database(args.postgres) as db_url:
        progress("floor: executemany into an empty table")
        floor_s = floor(tmp / "floor.db", rows)
        progress(f"floor: {floor_s:.2f} s; importing"
                 + (" into PostgreSQL" if db_url else ""))
        import_s, spent, counts, path, writer = run_import(data, playbook, tmp, args.profile,
                                                           args.writer, db_url)
        schema_s: float | None = None
        if path is None:
            size = postgres_bytes(str(db_url))
        else:
            size = path.stat().st_size + (path.with_name(path.name + "-wal").stat().st_size
                                          if path.with_name(path.name + "-wal").exists() else 0)
            progress(f"import: {import_s:.1f} s; schema floor: SQLite alone writing the same "
                     "rows")
            schema_s = schema_floor(path, tmp, args.rows)
    ratio = common.ratio(import_s, floor_s)
    abs_ok = import_s <= TARGET_S
    ratio_ok = ratio <= TARGET_RATIO
    measured = sum(spent.values())
    breakdown = sorted(spent.items(), key=lambda kv: -kv[1])
    breakdown.append(("other (transaction, ids, pin, batch row)", import_s - measured))
    print_table(f"where the {import_s:.1f} s of the import go",
                ["phase", "seconds", "share %"],
                [[name, secs, 100 * secs / import_s] for name, secs in breakdown])
    print_table(
        "summary",
        ["figure", "value", "target", "verdict"],
        [[f"floor: executemany {args.rows:,} rows (s)", floor_s, "-", "-"],
         [f"import {args.rows:,} hazards (s)", import_s, f"<= {TARGET_S:.0f}",
          common.verdict(abs_ok)],
         ["ratio import / floor", ratio, f"<= {TARGET_RATIO:.0f}", common.verdict(ratio_ok)],
         ["database", "PostgreSQL (durable)" if path is None else "SQLite", "-", "-"],
         ["schema floor: SQLite alone writes the same rows (s)", schema_s or "-", "-", "-"],
         ["ratio schema floor / floor",
          common.ratio(schema_s, floor_s) if schema_s else "-", "-", "-"],
         ["ratio import / schema floor",
          common.ratio(import_s, schema_s) if schema_s else "-", "-", "-"],
         ["floor rows/s", args.rows / floor_s, "-", "-"],
         ["import rows/s", args.rows / import_s, "-", "-"],
         ["rows written (run/hazard/step/audit/note)",
          "/".join(f"{counts[k]:,}" for k in ("run", "hazard", "step_instance", "audit_event",
                                               "notification")), "-", "-"],
         ["database after import", fmt_bytes(size), "-", "-"],
         ["start_run during the import: n / p50 / max wait (s)",
          f"{len(writer.waits)} / {statistics.median(writer.waits):.2f} / "
          f"{max(writer.waits):.2f}" + (f" ({len(writer.errors)} failed)" if writer.errors
                                        else "") if writer and writer.waits else "-",
          "-", "-"],
         ["peak RSS of this process", fmt_bytes(common.peak_rss_bytes()), "-", "-"]],
    )
    common.emit_result(
        "bench_import", rows=args.rows, playbook=playbook, import_s=import_s, floor_s=floor_s,
        ratio=ratio, target_s=TARGET_S, target_ratio=TARGET_RATIO, ok=abs_ok and ratio_ok,
        ok_abs=abs_ok, ok_ratio=ratio_ok, rows_per_s=args.rows / import_s,
        database="postgresql" if path is None else "sqlite",
        schema_floor_s=schema_s,
        ratio_schema_floor=common.ratio(schema_s, floor_s) if schema_s else None,
        ratio_import_schema_floor=common.ratio(import_s, schema_s) if schema_s else None,
        floor_rows_per_s=args.rows / floor_s, breakdown_s=dict(breakdown), stored=counts,
        db_bytes=size, file_bytes=len(data), peak_rss_bytes=common.peak_rss_bytes(),
        cpus=os.cpu_count(),
        writer_waits_s=writer.waits if writer else [],
        writer_errors=writer.errors if writer else [],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
