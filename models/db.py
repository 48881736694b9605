"""Database engine and sessions. SQLite (default) gets WAL and a busy timeout so the API, the
sweeper and the segment runner can share one file; PostgreSQL is used as is."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Column, event, inspect, literal
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateColumn
from sqlmodel import Session, SQLModel, create_engine

from models.errors import CloseloopError

logger = logging.getLogger(__name__)


# One encoder for every JSON column: json.dumps with an argument builds a new encoder per call
# (a third of the 4.6 µs a hazard's params take; 400,000 of them in a district-year import).
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def _json_text(value: Any) -> str:
    """JSON columns keep Chinese as UTF-8 text, not \\uXXXX escapes: half the bytes for a
    hazard's params (a district-year is 400,000 of them), and readable with any SQL client."""
    return _ENCODE(value)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            json_serializer=_json_text,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; we issue BEGIN IMMEDIATE for writes
        # ourselves (see write_session) so two writers queue instead of failing mid-transaction.
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, echo=echo, json_serializer=_json_text, pool_pre_ping=True,
                         pool_size=10, max_overflow=20)


def make_bench_engine(url: str) -> Engine:
    """An engine without pooling, for benchmarks that open and drop databases freely."""
    return create_engine(url, json_serializer=_json_text, poolclass=NullPool)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we send BEGIN ourselves
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "BEGIN IMMEDIATE")
    conn.exec_driver_sql(mode)


def create_schema(engine: Engine) -> None:
    import models.tables  # noqa: F401  (registers every table on SQLModel.metadata)

    SQLModel.metadata.create_all(engine)
    _upgrade_columns(engine)
    from models.stale_unique import drop_stale_uniques

    drop_stale_uniques(engine)  # before the indexes: a table copied anew has none yet
    for table in SQLModel.metadata.sorted_tables:  # an index added since the file was made
        for index in table.indexes:
            index.create(engine, checkfirst=True)
    from models.audit import install_audit_guards

    install_audit_guards(engine)


class SchemaOutOfDate(CloseloopError):
    """The database cannot be brought up to this version by adding columns (a column that
    needs a value old rows cannot be given), or was made by a newer version."""


def _upgrade_columns(engine: Engine) -> None:
    """Add the columns this version has and the database lacks, in one transaction.

    A bureau upgrading closeloop keeps its history: a new column is added to the existing
    tables, old rows getting the column's default (NULL where it may be empty). Nothing is
    dropped or changed. A database made by a newer version, or a new column that old rows
    cannot be given a value for, is refused by name before anything is changed."""
    found = inspect(engine)
    adds: list[tuple[str, str]] = []
    refused: list[str] = []
    newer: list[str] = []
    for table in SQLModel.metadata.sorted_tables:
        if not found.has_table(table.name):
            continue
        have = {c["name"]: c for c in found.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have:
                ddl = _add_column_ddl(engine, column)
                if ddl is None:
                    refused.append(f"{table.name}.{column.name}")
                else:
                    adds.append((f"{table.name}.{column.name}", ddl))
        ours = {c.name for c in table.columns}
        newer += [f"{table.name}.{name}" for name, c in have.items()
                  if name not in ours and not c["nullable"] and c.get("default") is None]
    if newer:
        raise SchemaOutOfDate(
            f"数据库由更新的版本创建 / the database was made by a newer version: this one would "
            f"not fill {', '.join(newer)}")
    if refused:
        raise SchemaOutOfDate(
            f"数据库由旧版本创建，无法自动补列 / the database was made by an older version and "
            f"lacks {', '.join(refused)}, which old rows cannot be given a value for: start on "
            f"a new CLOSELOOP_DATA_DIR / CLOSELOOP_DATABASE_URL")
    if not adds:
        return
    try:
        with engine.begin() as conn:  # all columns or none
            for _, ddl in adds:
                conn.exec_driver_sql(ddl)
    except DBAPIError:
        # Two processes starting on one old database (serve and a CLI command): the other
        # added them first. Anything still missing is a real failure.
        missing = {n for n, _ in adds} - {
            f"{t}.{c['name']}" for t in {n.split(".")[0] for n, _ in adds}
            for c in inspect(engine).get_columns(t)}
        if missing:
            raise
        return
    logger.warning("数据库已升级 / database upgraded: added %s", ", ".join(n for n, _ in adds))


def _add_column_ddl(engine: Engine, column: Column[Any]) -> str | None:
    """ALTER TABLE … ADD COLUMN for `column`, or None when old rows could not be given a
    value (NOT NULL without a default that can be written in SQL)."""
    if column.primary_key:
        return None
    dialect = engine.dialect
    default = ""
    if not column.nullable and column.server_default is None:
        value = _default_value(column)
        if value is None:
            return None
        if isinstance(value, dict | list):
            default = " DEFAULT " + _sql_string(_json_text(value))
        else:
            default = " DEFAULT " + str(
                literal(value, type_=column.type).compile(
                    dialect=dialect, compile_kwargs={"literal_binds": True}))
    spec = CreateColumn(column).compile(dialect=dialect)
    table = dialect.identifier_preparer.format_table(column.table)
    return f"ALTER TABLE {table} ADD COLUMN {spec}{default}"


def _default_value(column: Column[Any]) -> Any:
    """The Python default a new row gets, when it does not depend on the row."""
    default = column.default
    if default is None:
        return None
    if default.is_scalar:
        return default.arg
    if default.is_callable:
        try:  # SQLModel's default_factory (dict, list): called with SQLAlchemy's context
            value = default.arg(None)
        except Exception:  # a default that needs its row: none for old rows
            return None
        return value if isinstance(value, dict | list) else None
    return None


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error. Writes on SQLite start with
    BEGIN IMMEDIATE, so a read-then-write can never fail half-way with 'database is locked'."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A read-only transaction (plain BEGIN on SQLite, so readers never wait for writers)."""
    with Session(engine, expire_on_commit=False) as session:
        session.connection(execution_options={"sqlite_begin": "BEGIN"})
        # Closing (not rolling back) ends the transaction without expiring what was read, so
        # rows stay usable after the block.
        yield session
