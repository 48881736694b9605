"""Shared helpers for the benchmarks in bench/: runtimes on fresh SQLite files, bulk seeding,
percentiles, a table printer and the one-line machine-readable result that bench/all.py
collects.

Every benchmark measures a figure at the issue's size *and* a baseline in the same process
(an empty or small database), and prints the ratio: an absolute figure depends on the machine,
the ratio shows whether the cost grows with what is stored.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
TESTS = REPO / "tests"
for _path in (str(REPO), str(TESTS)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from factories import ENGINE_PLAYBOOKS, SMALL_ORG, make_runtime  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from sqlalchemy.engine import Connection, Engine  # noqa: E402

from flows.runtime import Runtime  # noqa: E402
from models.clock import Clock, ManualClock  # noqa: E402

# Monday 2026-03-02 09:00 in Shanghai: a working day, far from holidays (as in the tests).
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
RESULT_PREFIX = "@@bench "
CHUNK = 50_000

__all__ = ["ENGINE_PLAYBOOKS", "SMALL_ORG", "START"]


# -- runtimes ------------------------------------------------------------------------------------

@contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    """A scratch directory removed afterwards (set CLOSELOOP_BENCH_KEEP=1 to keep it)."""
    path = Path(tempfile.mkdtemp(prefix=f"closeloop-{prefix}-"))
    try:
        yield path
    finally:
        if os.environ.get("CLOSELOOP_BENCH_KEEP"):
            print(f"(kept {path})")
        else:
            shutil.rmtree(path, ignore_errors=True)


def runtime(data_dir: Path, *, clock: Clock | None = None, playbooks: Path = ENGINE_PLAYBOOKS,
            org_text: str | None = None, db_url: str | None = None) -> Runtime:
    """A runtime on a fresh SQLite file in data_dir (tests/factories.make_runtime: the small
    test org, the engine's test playbooks, the shipped working-day calendar)."""
    return make_runtime(data_dir, clock=clock or ManualClock(START), playbooks=playbooks,
                        org_text=org_text, db_url=db_url)


def db_path(rt: Runtime) -> Path:
    url = rt.settings.db_url
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a SQLite file: {url}")
    return Path(url.split("///", 1)[1])


def db_size(rt: Runtime) -> dict[str, int]:
    """Bytes of the SQLite file and its WAL."""
    path = db_path(rt)
    wal = path.with_name(path.name + "-wal")
    return {"db": path.stat().st_size if path.exists() else 0,
            "wal": wal.stat().st_size if wal.exists() else 0}


def checkpoint(rt: Runtime) -> None:
    """Fold the WAL back into the database file (a steady state, not a seeding leftover)."""
    with rt.db.connect() as conn:
        raw_sql(conn, "PRAGMA wal_checkpoint(TRUNCATE)")


def raw_sql(conn: Connection, sql: str) -> list[Any]:
    """Run a statement on the driver connection, outside SQLAlchemy's transaction handling
    (the product's engine sends BEGIN IMMEDIATE on every SQLAlchemy begin; PRAGMAs such as
    synchronous and wal_checkpoint must run outside a transaction)."""
    driver = conn.connection.driver_connection
    assert driver is not None
    return list(driver.execute(sql).fetchall())


# -- seeding -------------------------------------------------------------------------------------

@contextmanager
def seeding(engine: Engine) -> Iterator[Connection]:
    """One connection in one transaction for bulk seeding, with PRAGMA synchronous=OFF (set
    back to the product's NORMAL afterwards, so measurements see production settings)."""
    with engine.connect() as conn:
        raw_sql(conn, "PRAGMA synchronous=OFF")
        try:
            with conn.begin():
                yield conn
        finally:
            raw_sql(conn, "PRAGMA synchronous=NORMAL")


def bulk_insert(conn: Connection, table: Any, rows: Iterable[dict[str, Any]],
                chunk: int = CHUNK) -> int:
    """SQLAlchemy Core executemany in chunks; rows may be a generator. Returns the count."""
    stmt = insert(table)
    batch: list[dict[str, Any]] = []
    count = 0
    for row in rows:
        batch.append(row)
        if len(batch) >= chunk:
            conn.execute(stmt, batch)
            count += len(batch)
            batch = []
    if batch:
        conn.execute(stmt, batch)
        count += len(batch)
    return count


def max_id(conn: Connection, table: str) -> int:
    return int(conn.exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) FROM {table}").scalar() or 0)


# -- figures -------------------------------------------------------------------------------------

def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": float(len(values)),
        "mean": sum(values) / len(values) if values else math.nan,
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
    }


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else math.inf


class Timer:
    """`with Timer() as t: ...` then t.seconds / t.ms."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start

    @property
    def ms(self) -> float:
        return self.seconds * 1000.0


def fmt_ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 10_000 else f"{value / 1000:.2f} s"


def fmt_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain, aligned text table (numbers right-aligned)."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in rows) if rows else False
               for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if numeric[i] else c.ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    print()
    print(title)
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))
    print(flush=True)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def emit_result(name: str, **figures: Any) -> None:
    """One machine-readable line for bench/all.py (and CI logs)."""
    print(RESULT_PREFIX + json.dumps({"bench": name, **figures}, ensure_ascii=False,
                                     default=str), flush=True)


def progress(message: str) -> None:
    print(f"  … {message}", flush=True)


def peak_rss_bytes() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: KiB


def blank_row(table: Any) -> dict[str, Any]:
    """Every column of `table` set to its model's default, or None: Core inserts skip the
    models' Python defaults, and executemany wants the same keys in every row."""
    from pydantic_core import PydanticUndefined
    from sqlmodel import SQLModel

    fields: dict[str, Any] = {}
    for mapper in SQLModel._sa_registry.mappers:  # the model class mapped onto `table`
        if mapper.local_table is table:
            fields = mapper.class_.model_fields
    row: dict[str, Any] = {}
    for column in table.columns:
        info = fields.get(column.name)
        if info is not None and info.default_factory is not None:
            row[column.name] = info.default_factory()  # type: ignore[call-arg]
        elif info is not None and info.default is not PydanticUndefined:
            row[column.name] = info.default
        else:
            row[column.name] = None
    return row
