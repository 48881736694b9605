"""Total rows (合计、小计、总计、共计) in a register a clerk exports from Excel or WPS: the
row at the bottom (or under each street's group) that counts the rows above. It is not a
hazard nor a risk point, so an import leaves it out and says so, instead of refusing the
file for a row with no unit and no location.

A row is a total row when its first non-empty cell is one of those words (spaces, a colon
and a count may follow: 合计：5条, 合 计, 小计(项)) and every other non-empty cell is a
count: a number, or digits with a counting word or a percent sign (13, 5条, 95%). A row with
any other text (a location, a unit, a description) is data and is checked as such."""

from __future__ import annotations

import re
from typing import Any

from flows.tabular import Table

_SPACES = re.compile(r"[\s\u3000]+")
_LABEL = re.compile(r"^(?:合计|小计|总计|共计)[:：]?[()（）共\d.,，条项个处件家]*$")
_COUNT = re.compile(r"^共?[\d.,，]+(?:条|项|个|处|件|家|%|％)?$")


def _is_count(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and _COUNT.match(_SPACES.sub("", value)) is not None


def is_total_row(cells: list[Any]) -> bool:
    """Whether a row's cells (None for empty) are a 合计/小计 row, as the docstring says."""
    filled = [c for c in cells if c is not None]
    if not filled or not isinstance(filled[0], str):
        return False
    if _LABEL.match(_SPACES.sub("", filled[0])) is None:
        return False
    return all(_is_count(c) for c in filled[1:])


def drop_total_rows(table: Table) -> list[int]:
    """Take the total rows out of `table.rows`; their row numbers, in file order."""
    kept: list[tuple[int, list[Any]]] = []
    dropped: list[int] = []
    for number, cells in table.rows:
        # The label is in the row's first cells: a cheap look before the full check.
        if cells and any(isinstance(c, str) and "计" in c for c in cells[:3]) \
                and is_total_row(cells):
            dropped.append(number)
        else:
            kept.append((number, cells))
    if dropped:
        table.rows = kept
    return dropped
