"""flows/import_template.py beside the readers it writes for: the 填写说明 sheet never looks like
a register to flows/tabular.py (no row names two of either import's columns), and every way
of writing 发现时间 it lists is one the import reads."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlmodel import select

from flows.found_times import WRITTEN_FORMS, Times
from flows.hazard_import import HAZARD_COLUMNS, import_hazards
from flows.import_checks import ImportInvalid, known_header
from flows.import_template import (
    NOTES_SHEET,
    hazard_template,
    risk_template,
    template_bytes,
)
from flows.risk_import import RISK_COLUMNS
from flows.runtime import Runtime
from models.db import read_session
from models.hazard import Hazard
from models.run import Run


@pytest.mark.parametrize("kind", ["hazards", "risks"])
def test_no_row_of_the_notes_names_two_columns(demo: Runtime, kind: str) -> None:
    template = (hazard_template(demo, "pingshan-admin") if kind == "hazards"
                else risk_template(demo, "pingshan-admin"))
    book = load_workbook(io.BytesIO(template_bytes(template, "xlsx")))
    rows = list(book[NOTES_SHEET].iter_rows(values_only=True))
    assert len(rows) > len(template.guides) + len(template.units)  # every unit listed
    for columns in (HAZARD_COLUMNS, RISK_COLUMNS):
        known = known_header(columns)
        for row in rows:
            named = [c for c in row if isinstance(c, str) and known(c)]
            assert len(named) < 2, f"{row} would read as a register's header"


def test_every_written_form_of_a_found_time_is_read() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    times = Times(tz, datetime(2026, 11, 20, tzinfo=UTC))
    for text in WRITTEN_FORMS:
        found = times.parse(text)
        assert found is not None and found.astimezone(tz).date() == datetime(2026, 2, 1).date()


def test_the_location_limit_is_the_registers_in_the_notes_and_the_import(demo: Runtime) -> None:
    """隐患地点 takes what the register holds (300 characters), as registering one hazard
    does: not 289, once the width left in the run's title beside the playbook's (a title is
    cut with "…" at its own width, the register keeps the whole place)."""
    template = hazard_template(demo, "sun-li")
    [guide] = [g for g in template.guides if g.column.key == "location"]
    assert guide.accepts.endswith("；最多 300 个字符")
    header = "单位编号,隐患地点,隐患描述"
    place = "六和社区" + "和" * 296
    done = import_hazards(demo, data=f"{header}\nliuhe,{place},消防通道堵塞\n".encode(),
                          filename="隐患.csv", actor="sun-li")
    assert len(done.run_ids) == 1
    with read_session(demo.db) as session:
        [entry] = session.exec(select(Hazard)).all()
        run = session.get(Run, entry.run_id)
    assert entry.location == place and run is not None and run.title.endswith("和…")
    with pytest.raises(ImportInvalid) as exc:
        import_hazards(demo, data=f"{header}\nliuhe,{place}和,消防通道堵塞\n".encode(),
                       filename="隐患2.csv", actor="sun-li")
    [problem] = exc.value.problems
    assert problem.column == "隐患地点" and "300" in problem.zh
