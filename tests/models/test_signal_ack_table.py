"""The `signal_ack` table (叫应 of a raised signal) on SQLite and on a real PostgreSQL: a database
made before it existed gains it, with its due index, at start, its rows kept; then a raise
records one row per person told, an answer and the sweeper's one chase write to it, and a
replayed chase writes nothing twice. Shipped playbook, demo district, ManualClock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime
from sqlalchemy import func, inspect, text
from sqlmodel import select

from flows import lifecycle
from flows.runtime import Runtime
from flows.signal_acks import MISSED_KIND, acknowledge, chase_missed
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import create_schema, read_session, session_scope
from models.outbox import Notification
from models.run import Run
from models.signal_ack import SignalAck

COMMANDER = "maluan-commander"


@pytest.fixture(params=["sqlite", "postgresql"])
def typhoon(request: pytest.FixtureRequest, tmp_path: Path,
            clock: ManualClock) -> Iterator[Runtime]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    rt = make_runtime(tmp_path / "rt", clock=clock, playbooks=SHIPPED_PLAYBOOKS,
                      org_path=DEMO_ORG, db_url=url)
    assert rt.db.dialect.name == request.param
    yield rt
    rt.db.dispose()


def test_an_older_database_gains_the_table_and_the_chase_runs_on_it(
        typhoon: Runtime, clock: ManualClock) -> None:
    run = lifecycle.start_run(typhoon, playbook_id="typhoon-633", unit_id="maluan",
                              params={"name": "山竹", "signal": "黄色"}, actor=COMMANDER)
    run_id = run.id or 0
    with typhoon.db.begin() as conn:  # as a version before the table made the database
        conn.execute(text("DROP TABLE signal_ack"))
    typhoon.db.dispose()

    create_schema(typhoon.db)

    found = inspect(typhoon.db)
    assert found.has_table("signal_ack")
    assert "ix_signal_ack_due" in {i["name"] for i in found.get_indexes("signal_ack")}
    with read_session(typhoon.db) as session:
        assert session.get(Run, run_id) is not None  # the run kept

    lifecycle.change_stage(typhoon, run_id=run_id, stage="severe", actor=COMMANDER,
                           params={"signal": "红色"})
    with read_session(typhoon.db) as session:
        rows = session.exec(select(SignalAck).where(SignalAck.run_id == run_id)).all()
    assert len(rows) > 3 and {r.value for r in rows} == {"红色"}
    head = next(r for r in rows if r.person_id == "jiangling-head")
    acknowledge(typhoon, run_id=run_id, ack_id=head.id or 0, actor="jiangling-head")
    clock.advance(timedelta(minutes=16))
    assert sweep_once(typhoon).signal_acks_chased == len(rows) - 1
    with session_scope(typhoon.db) as session:  # a replay finds nothing left to chase
        assert chase_missed(session, typhoon, clock.now()) == 0
    with read_session(typhoon.db) as session:
        chased = session.exec(select(func.count()).select_from(SignalAck).where(
            SignalAck.run_id == run_id, SignalAck.escalated_at.is_not(None))).one()  # type: ignore[union-attr]
        notes = session.exec(select(func.count()).select_from(Notification).where(
            Notification.run_id == run_id, Notification.kind == MISSED_KIND)).one()
        again = session.get(SignalAck, head.id)
    assert chased == len(rows) - 1 and notes >= chased
    assert again is not None and again.escalated_at is None and again.acked_at is not None
