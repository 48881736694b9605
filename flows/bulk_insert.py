"""Writing the rows of many runs at once (flows/bulk_start.py) in the caller's transaction.
Only the values that vary are bound per row, encoded by the columns' own SQLAlchemy bind
processors so what is stored is exactly what the ORM stores; the constant columns are part of
the statement. SQLite: executemany with the constants as SQL literals; PostgreSQL through
psycopg: COPY; any other driver: a Core insert."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import JSON, Table, insert, text
from sqlalchemy.engine import Connection
from sqlmodel import Session

_NOT_WRAPPED = object()


def table_of(model: Any) -> Table:
    return cast(Table, model.__table__)


def unchanged(value: Any) -> Any:
    return value


def copy_json_text(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """psycopg's JSON bind value (a Json wrapper, serialised again at every COPY row) as the
    JSON text it stands for, made once: constants and cached values then cost nothing."""
    def encode(value: Any) -> Any:
        wrapped = process(value)
        obj = getattr(wrapped, "obj", _NOT_WRAPPED)
        if obj is _NOT_WRAPPED:
            return wrapped
        return (getattr(wrapped, "dumps", None) or json.dumps)(obj)

    return encode


def memoised(enc: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`enc` remembering its results for values that repeat (and for empty containers)."""
    cache: dict[Any, Any] = {}

    def encode(value: Any) -> Any:
        try:
            return cache[value]
        except KeyError:
            found = cache[value] = enc(value)
            return found
        except TypeError:  # a dict or list: only the empty ones are cached
            if value:
                return enc(value)
            key = ("empty", type(value))
            if key not in cache:
                cache[key] = enc(value)
            return cache[key]

    return encode


def sql_literal(value: Any) -> str:
    """An encoded constant as SQLite SQL text (values from the playbook and the org chart)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


class RowWriter:
    """The connection of the caller's transaction, and how values reach it. The driver gets
    values encoded by the columns' own SQLAlchemy bind processors (`enc`), so what is stored
    is exactly what the ORM stores (SQLite: executemany; PostgreSQL with psycopg: COPY); any
    other driver gets a Core insert."""

    def __init__(self, session: Session) -> None:
        self.conn: Connection = session.connection()
        self.dialect = self.conn.dialect
        self.raw = self.dialect.name == "sqlite"
        # PostgreSQL through psycopg 3: COPY, fed the values SQLAlchemy would give the driver.
        self.copy = self.dialect.name == "postgresql" and self.dialect.driver == "psycopg"

    def enc(self, model: Any, column: str) -> Callable[[Any], Any]:
        if not (self.raw or self.copy):
            return unchanged
        col = table_of(model).c[column]
        process = col.type.dialect_impl(self.dialect).bind_processor(self.dialect)
        if process is None:
            return unchanged
        if self.copy and isinstance(col.type, JSON):
            return copy_json_text(process)
        return cast(Callable[[Any], Any], process)

    @contextmanager
    def page_cache(self, runs: int) -> Iterator[None]:
        """On SQLite, a page cache of about 1 KiB per run (up to 512 MiB) while the batch is
        written, the connection's own size afterwards. The indexes of a 400,000-run batch do
        not fit SQLite's default 2 MiB, and pages evicted mid-transaction are written to the
        WAL and read back (measured: hazard inserts 14.8 s -> 6.9 s at 400,000). This is
        memory only; durability (synchronous, journal) is untouched."""
        driver = self.conn.connection.driver_connection if self.raw else None
        wanted = min(512 * 1024, runs)  # KiB
        if driver is None or wanted <= 2048:
            yield
            return
        before = driver.execute("PRAGMA cache_size").fetchone()[0]
        driver.execute(f"PRAGMA cache_size=-{wanted}")
        try:
            yield
        finally:
            driver.execute(f"PRAGMA cache_size={int(before)}")

    def run_ids(self, count: int) -> list[int]:
        if count == 0:
            return []
        if self.raw:  # the transaction holds SQLite's write lock (BEGIN IMMEDIATE)
            top = int(self.conn.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM run")
                      .scalar() or 0)
            return list(range(top + 1, top + count + 1))
        rows = self.conn.execute(
            text("SELECT nextval(pg_get_serial_sequence('run', 'id')) "
                 "FROM generate_series(1, :n)"), {"n": count}
        ).scalars().all()
        return sorted(int(r) for r in rows)


class BulkInsert:
    """One INSERT: the columns that vary per row are bound (`rows` holds their encoded values),
    every other column is a constant of the statement. On SQLite the constants are written
    into the SQL as literals: binding fewer values per row is what makes a wide row cheap. On
    PostgreSQL (psycopg) the rows go through COPY, which is several times faster there than
    an executemany of INSERTs."""

    def __init__(self, w: RowWriter, model: Any, varying: Sequence[str],
                 const: dict[str, Any]) -> None:
        table = table_of(model)
        names = [c.name for c in table.columns]
        missing = set(names) - set(varying) - set(const) - {"id"}
        if missing:
            raise ValueError(f"{table.name}: no value for {sorted(missing)}")
        self.w = w
        self.table = table
        self.varying = tuple(varying)
        self.const = {c: w.enc(model, c)(v) for c, v in const.items()}
        self.rows: list[tuple[Any, ...]] = []
        quote = w.dialect.identifier_preparer.quote
        self.copy_sql = (f"COPY {quote(table.name)} "
                         f"({', '.join(quote(c) for c in [*self.varying, *self.const])}) "
                         "FROM STDIN")
        if w.raw:
            columns = [*self.varying, *self.const]
            values = ["?"] * len(self.varying) + [sql_literal(v) for v in self.const.values()]
            self.sql = (f"INSERT INTO {quote(table.name)} "
                        f"({', '.join(quote(c) for c in columns)}) VALUES ({', '.join(values)})")

    def flush(self) -> None:
        if not self.rows:
            return
        if self.w.raw:
            self.w.conn.exec_driver_sql(self.sql, self.rows)  # type: ignore[arg-type]
        elif self.w.copy:
            tail = tuple(self.const.values())
            driver = self.w.conn.connection.driver_connection
            with driver.cursor() as cur, cur.copy(self.copy_sql) as copy:  # type: ignore[union-attr]
                for row in self.rows:
                    copy.write_row(row + tail)
        else:
            self.w.conn.execute(insert(self.table), [
                {**self.const, **dict(zip(self.varying, row, strict=True))} for row in self.rows])
        self.rows.clear()  # the same list: appends are kept per outcome (_Rows._targets)
