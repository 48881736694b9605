"""A database made by an older closeloop is brought up to date at start by adding the columns it
lacks, its rows kept; one that cannot be (a new column old rows have no value for) or that a
newer version made is refused by name with nothing changed. SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from flows import lifecycle
from flows.runtime import Runtime
from models import db
from models.db import SchemaOutOfDate, create_schema, read_session
from models.run import Run


@pytest.fixture(params=["rt", "pg_rt"])
def any_rt(request: pytest.FixtureRequest) -> Runtime:
    return request.getfixturevalue(request.param)


def columns(engine: Engine, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}


def drop(engine: Engine, *columns: str) -> None:
    with engine.begin() as conn:
        for name in columns:
            table, column = name.split(".")
            conn.execute(text(f'ALTER TABLE {table} DROP COLUMN "{column}"'))


def started(rt: Runtime) -> int:
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "六和社区"}, actor="s1-commander")
    assert run.id is not None
    return run.id


def test_an_older_database_gains_the_new_columns_and_keeps_its_rows(any_rt: Runtime) -> None:
    engine = any_rt.db
    run_id = started(any_rt)
    drop(engine, "run.skipped_recorded", "run.skipped", "hazard.original_due_at")
    engine.dispose()

    create_schema(engine)

    assert {"skipped_recorded", "skipped"} <= columns(engine, "run")
    assert "original_due_at" in columns(engine, "hazard")
    with read_session(engine) as session:
        run = session.get(Run, run_id)
        assert run is not None
        # Old rows get what a new row would have had.
        assert (run.skipped_recorded, run.skipped, run.params) == (0, [], {"location": "六和社区"})
    started(any_rt)  # and the engine writes to the upgraded tables as to new ones
    create_schema(engine)  # nothing more to add the second time


def test_a_column_old_rows_have_no_value_for_is_refused_and_nothing_is_added(
        any_rt: Runtime) -> None:
    engine = any_rt.db
    started(any_rt)
    drop(engine, "run.title", "run.skipped_recorded")
    engine.dispose()

    with pytest.raises(SchemaOutOfDate, match=r"older version.*run\.title") as refused:
        create_schema(engine)
    assert "skipped_recorded" not in str(refused.value)  # it could be added; title cannot
    assert not {"title", "skipped_recorded"} & columns(engine, "run")  # all or nothing


def test_a_database_of_a_newer_version_is_refused_by_name(any_rt: Runtime) -> None:
    engine = any_rt.db
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            # SQLite cannot add a NOT NULL column without a default: make the table anew.
            sql = conn.execute(text("SELECT sql FROM sqlite_master "
                                    "WHERE type = 'table' AND name = 'wake'")).scalar_one()
            conn.execute(text("DROP TABLE wake"))
            conn.execute(text(sql.replace("(", "(priority INTEGER NOT NULL, ", 1)))
        else:
            conn.execute(text("ALTER TABLE wake ADD COLUMN priority integer NOT NULL"))
    with pytest.raises(SchemaOutOfDate, match=r"newer version.*wake\.priority"):
        create_schema(engine)


def test_two_processes_upgrading_one_database_at_once_both_start(
        any_rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = any_rt.db
    drop(engine, "run.skipped_recorded")
    real = db._add_column_ddl

    def the_other_process_got_there_first(engine_: Engine, column: Any) -> str | None:
        ddl = real(engine_, column)
        with engine.begin() as conn:  # between this one's look and its ALTER
            conn.execute(text(str(ddl)))
        return ddl

    monkeypatch.setattr(db, "_add_column_ddl", the_other_process_got_there_first)
    create_schema(engine)
    assert "skipped_recorded" in columns(engine, "run")
