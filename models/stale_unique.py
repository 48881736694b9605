"""Unique keys an older version declared and this one no longer does, dropped at start.

A key still in the database refuses rows this version means to write, and the engine's
replay-safe inserts (ON CONFLICT DO NOTHING, models/writes.py) then drop them without a word: a
database made before escalation letters were filed as documents kept UNIQUE (step_id) on
`document`, so every letter after a step's first (提级督办函, 约谈通知) was silently lost. Only
uniqueness is dropped here, and only where no key of this version covers the same columns;
columns and rows are kept (SQLite cannot drop a table's constraint: the table is copied anew
without it, rows and ids as they were)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, PrimaryKeyConstraint, Table, UniqueConstraint, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.schema import CreateTable
from sqlmodel import SQLModel

logger = logging.getLogger(__name__)


def drop_stale_uniques(engine: Engine) -> None:
    """In one transaction (BEGIN IMMEDIATE on SQLite, so two servers starting on one old
    database do it once)."""
    dropped: list[str] = []
    with engine.begin() as conn:
        found = inspect(conn)
        for table in SQLModel.metadata.sorted_tables:
            if not found.has_table(table.name):
                continue
            declared = _declared(table)
            ours = {ix.name for ix in table.indexes}
            for key in found.get_unique_constraints(table.name):
                if frozenset(key["column_names"]) not in declared:
                    if not _drop_constraint(conn, table, key):
                        logger.error("数据库升级未完成 / upgrade incomplete: %s keeps the unique "
                                     "key (%s), which rows of other tables refer to; drop it "
                                     "by hand", table.name, ", ".join(key["column_names"]))
                        continue
                    dropped.append(f"{table.name}({', '.join(key['column_names'])})")
            for ix in found.get_indexes(table.name):
                names = ix["column_names"]
                if (not ix["unique"] or ix["name"] in ours or ix.get("duplicates_constraint")
                        or None in names or frozenset(names) in declared):
                    continue
                conn.exec_driver_sql(f"DROP INDEX IF EXISTS {_quote(conn, ix['name'])}")
                dropped.append(f"{table.name}({', '.join(n or '' for n in names)})")
    if dropped:
        logger.warning("数据库已升级 / database upgraded: dropped unique keys this version no "
                       "longer has: %s", ", ".join(dropped))


def _declared(table: Table) -> set[frozenset[str]]:
    """The column sets this version keeps unique (a column's unique=True is a constraint)."""
    keys = {frozenset(c.name for c in k.columns) for k in table.constraints
            if isinstance(k, UniqueConstraint | PrimaryKeyConstraint)}
    return keys | {frozenset(c.name for c in ix.columns) for ix in table.indexes if ix.unique}


def _drop_constraint(conn: Connection, table: Table, key: dict[str, Any]) -> bool:
    """Whether the key could be dropped."""
    if conn.dialect.name != "sqlite":
        conn.exec_driver_sql(f"ALTER TABLE {_quote(conn, table.name)} DROP CONSTRAINT IF "
                             f"EXISTS {_quote(conn, key['name'])}")
        return True
    # Dropping a table other tables' foreign keys point at deletes under them (foreign_keys
    # is on, and cannot be turned off inside the transaction): such a table is not copied.
    if any(fk.column.table.name == table.name for other in SQLModel.metadata.sorted_tables
           for fk in other.foreign_keys if other is not table):
        return False
    # The table as this version makes it, under a temporary name, the rows copied over; its
    # indexes are made again by create_schema right after.
    name, temp = _quote(conn, table.name), _quote(conn, f"{table.name}__upgrade")
    ddl = str(CreateTable(table).compile(dialect=conn.dialect))
    conn.exec_driver_sql(ddl.replace(f"CREATE TABLE {name} (", f"CREATE TABLE {temp} (", 1))
    columns = ", ".join(_quote(conn, c.name) for c in table.columns)
    conn.exec_driver_sql(f"INSERT INTO {temp} ({columns}) SELECT {columns} FROM {name}")
    conn.exec_driver_sql(f"DROP TABLE {name}")
    conn.exec_driver_sql(f"ALTER TABLE {temp} RENAME TO {name}")
    return True


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)
