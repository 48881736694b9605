"""Database engine and sessions. SQLite (default) gets WAL and a busy timeout so the API, the
sweeper and the segment runner can share one file; PostgreSQL is used as is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool
from sqlmodel import Session, SQLModel, create_engine


def _json_text(value: Any) -> str:
    """JSON columns keep Chinese as UTF-8 text, not \\uXXXX escapes: half the bytes for a
    hazard's params (a district-year is 400,000 of them), and readable with any SQL client."""
    return json.dumps(value, ensure_ascii=False)


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
    _check_columns(engine)
    for table in SQLModel.metadata.sorted_tables:  # an index added since the file was made
        for index in table.indexes:
            index.create(engine, checkfirst=True)
    from models.audit import install_audit_guards

    install_audit_guards(engine)


class SchemaOutOfDate(RuntimeError):
    """The database was made by an older closeloop and lacks columns this one writes."""


def _check_columns(engine: Engine) -> None:
    # No migrations before 1.0: refuse clearly rather than fail on the first write.
    found = inspect(engine)
    missing: list[str] = []
    for table in SQLModel.metadata.sorted_tables:
        have = {c["name"] for c in found.get_columns(table.name)}
        missing += [f"{table.name}.{c.name}" for c in table.columns if c.name not in have]
    if missing:
        raise SchemaOutOfDate(
            f"数据库由旧版本创建，缺少列 / the database was made by an older version and lacks "
            f"{', '.join(missing)}: start on a new CLOSELOOP_DATA_DIR / CLOSELOOP_DATABASE_URL")


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
