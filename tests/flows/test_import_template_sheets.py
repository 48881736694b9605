"""flows/import_template.py beside the readers it writes for: the 填写说明 sheet never looks like
a register to flows/tabular.py (no row names two of either import's columns), and every way
of writing 发现时间 it lists is one the import reads."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from flows.found_times import WRITTEN_FORMS, Times
from flows.hazard_import import HAZARD_COLUMNS
from flows.import_checks import known_header
from flows.import_template import (
    NOTES_SHEET,
    hazard_template,
    risk_template,
    template_bytes,
)
from flows.risk_import import RISK_COLUMNS
from flows.runtime import Runtime


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
