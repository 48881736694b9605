"""JSON columns hold Chinese as UTF-8 text, not \\uXXXX escapes (models/db._json_text): what a
bureau's DBA sees in any SQL client is readable, and a district-year of hazard params takes
half the bytes. tests/flows/test_engine_postgres.py checks the same on PostgreSQL."""

from __future__ import annotations

import json

from sqlalchemy import text

from flows import lifecycle
from flows.runtime import Runtime
from models.db import read_session


def stored_params(rt: Runtime, run_id: int) -> str:
    with read_session(rt.db) as session:
        raw = session.execute(text("SELECT CAST(params AS TEXT) FROM run WHERE id = :id"),
                              {"id": run_id}).scalar_one()
    return str(raw)


def test_chinese_params_are_stored_as_utf8_text(rt: Runtime) -> None:
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "六和社区某小区3栋"}, actor="s1-commander")
    raw = stored_params(rt, run.id or 0)
    assert "六和社区某小区3栋" in raw
    assert "\\u" not in raw
    assert json.loads(raw)["location"] == "六和社区某小区3栋"
    assert run.params["location"] == "六和社区某小区3栋"
