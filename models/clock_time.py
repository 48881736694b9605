"""A time of day written in YAML (交接班 08:30, 续报 07:00): "HH:MM", 24-hour, quoted. Read by
the org file's rosters (models/roster.py) and the playbooks' `recur.at` (flows/spec.py), with
the same words for the same mistakes: YAML 1.1 reads an unquoted 17:00 as the sexagesimal
number 1020, which is said as such rather than as a bad value."""

from __future__ import annotations

import re
from datetime import time
from typing import Any

from models.errors import clipped

CLOCK_TIME_PATTERN = r"^([01]\d|2[0-3]):([0-5]\d)$"
_CLOCK = re.compile(CLOCK_TIME_PATTERN)


def parse_clock_time(value: Any, *, name_zh: str, examples_zh: str, subject_en: str,
                     example_en: str) -> time:
    """`value` as a time of day; ValueError (Chinese first) otherwise. The message names the
    value as `name_zh` (时刻, 交接班时刻) with `examples_zh`, and in English `subject_en`
    ("change_at is a time of day") with `example_en`."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        said = f"{value // 60:02d}:{value % 60:02d}"
        raise ValueError(f"时刻须加引号：未加引号的 {said} 被 YAML 读成了数字 {value}，请写 "
                         f"\"{said}\" / quote the time: YAML reads an unquoted {said} as the "
                         f"number {value}; write \"{said}\"")
    match = _CLOCK.match(value) if isinstance(value, str) else None
    if match is None:
        shown = clipped(repr(value), 40)
        raise ValueError(f"{name_zh}写作 HH:MM（24 小时制，加引号，如 {examples_zh}）；收到 "
                         f"{shown} / {subject_en} HH:MM (24-hour, quoted, e.g. {example_en}); "
                         f"got {shown}")
    return time(int(match[1]), int(match[2]))
