"""A database made before escalation letters were filed as documents had UNIQUE (step_id) on
`document` (one document per step). Upgraded, it must file every letter of a step's ladder (督办函,
提级督办函, 约谈通知), not the first alone: the old key is dropped at start, its rows kept. The old
table is made from the DDL that version issued (tests/fixtures/upgrade), on SQLite and on a real
PostgreSQL; the shipped hazard playbook on the demo district, the real sweeper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime, run_steps
from sqlalchemy import create_engine, text
from sqlalchemy.schema import CreateTable
from sqlmodel import SQLModel, select

from flows import lifecycle
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import create_schema, make_engine, read_session
from models.documents import Document
from models.run import Run

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "upgrade"


@pytest.fixture(params=["sqlite", "postgresql"])
def old_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database holding `document` as commit 25a197a made it, with one of its rows."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old' / 'closeloop.db'}"
        (tmp_path / "old").mkdir()
    else:
        url = request.getfixturevalue("pg_url")
    engine = create_engine(url)
    ddl = (FIXTURES / f"document-25a197a.{request.param}.sql").read_text(encoding="utf-8")
    with engine.begin() as conn:
        for statement in filter(str.strip, ddl.split(";")):
            conn.exec_driver_sql(statement)
        conn.execute(text("INSERT INTO document (run_id, step_id, template, title, body, "
                          "created_at) VALUES (7, 70, 'first-report.md.j2', '首报', '旧文书', "
                          ":at)"), {"at": datetime(2026, 11, 20, 2, 0)})
    engine.dispose()
    return url


def test_an_old_document_table_files_every_letter_of_a_ladder(
        old_url: str, tmp_path: Path, clock: ManualClock) -> None:
    rt = make_runtime(tmp_path / "data", clock=clock, playbooks=SHIPPED_PLAYBOOKS,
                      org_path=DEMO_ORG, db_url=old_url)
    try:
        run = lifecycle.start_run(rt, playbook_id="hazard-3030", unit_id="liuhe",
                                  actor="pingshan-street-commander",
                                  params={"location": "六和社区和平路12号", "grade": "一般",
                                          "description": "消防通道堵塞"})
        [rectify] = [s for s in run_steps(rt, run.id or 0) if s.step_key == "rectify"]
        assert rectify.due_at is not None
        for days in (0, 3, 7):  # 督办函, 提级督办函, 约谈通知
            clock.set(rectify.due_at + timedelta(days=days, minutes=1))
            sweep_once(rt)
        with read_session(rt.db) as session:
            letters = session.exec(select(Document).where(Document.step_id == rectify.id)
                                   .order_by(Document.level)).all()  # type: ignore[arg-type]
            old = session.exec(select(Document).where(Document.step_id == 70)).one()
        assert [(d.level, d.title.split("：")[0]) for d in letters] == [
            (1, "督办函"), (2, "提级督办函"), (3, "约谈")]
        assert all(d.number for d in letters)  # each under its own 文号
        # The old row is kept as it was, with what a new row would have had.
        assert (old.run_id, old.title, old.body, old.subject, old.recipients) == (
            7, "首报", "旧文书", "", [])
        assert old.created_at == datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
        create_schema(rt.db)  # a second start finds nothing more to do
    finally:
        rt.db.dispose()


def test_a_stale_key_on_a_table_others_refer_to_is_left_with_an_error_not_a_failed_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """SQLite drops a constraint only by copying the table, and dropping `run` would delete
    under every hazard's foreign key: such a key is kept, said in the log, and the server
    starts with every row."""
    engine = make_engine(f"sqlite:///{tmp_path / 'closeloop.db'}")
    ddl = str(CreateTable(Run.__table__).compile(dialect=engine.dialect)).rstrip().rstrip(")")
    with engine.begin() as conn:  # `run` as a version with UNIQUE (title) would have made it
        conn.exec_driver_sql(ddl + ", UNIQUE (title))")
    SQLModel.metadata.create_all(engine)  # the other tables, as that version had them
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO run (id, playbook_id, playbook_version, playbook_sha, title, unit_id, "
            "status, params, started_by, started_at, segments, skipped, skipped_recorded, "
            "passed_over_stages) "
            "VALUES (1, 'p', 1, 's', 't', 'u', 'running', '{}', 'a', '2026-11-20', 0, '[]', 0, "
            "'[]')")
        conn.exec_driver_sql(
            "INSERT INTO hazard (run_id, code, playbook_id, unit_id, source, grade, location, "
            "found_at, status, plan, updated_at) VALUES (1, 'YH1', 'p', 'u', '检查发现', '一般', "
            "'x', '2026-11-20', '登记', '{}', '2026-11-20')")
    with caplog.at_level("ERROR", logger="models.stale_unique"):
        create_schema(engine)
    assert "run keeps the unique key (title)" in caplog.text
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM hazard").scalar() == 1
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM run").scalar() == 1
    engine.dispose()
