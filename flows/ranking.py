"""The monthly ranking of units (综合评价月排名) in hazard closure, counted from the hazard
register with three grouped SQL aggregates on indexed ranges (found_at, closed_at, and the
open-deadline index), whatever the number of hazards stored.

**The month** is a calendar month in the bureau's time zone (Asia/Shanghai by default):
`2026-03` is [2026-03-01 00:00, 2026-04-01 00:00) local time, i.e. [2026-02-28 16:00,
2026-03-31 16:00) UTC. A hazard belongs to a unit of the ranked level by its register row:
`street_id` for `level=street` (街道/镇), its unit's community or village for
`level=community` (社区/村). Every unit of that level within the scope is listed, with zeros
when it had no hazards. Cancelled hazards (已撤销: registered in error, withdrawn) count
nowhere.

**Which months**: 2000-01 to the current month (local, by the runtime's clock). A later month
has no figures yet (counting it would call every hazard due before then "overdue at its end"),
so it is refused. The current month is counted up to now: its figures run over [start, now),
and "at month end" below reads "now" (`as_of`), so a hazard due later this month is not
overdue yet.

**The figures** of a unit, for month [start, end) (end: `as_of`, for the current month):

- `found`: hazards with `found_at` in the month.
- `closed`: hazards closed (销号) in the month: `closed_at` in the month, whenever found.
- `closed_of_found`: of the `found`, those whose `closed_at` is also in the month.
- `closure_rate` = closed_of_found / found (None when nothing was found). A cohort rate: the
  share of the month's own hazards closed within it, so it is 0..1 and one month's figure
  never borrows closures of older hazards. Considered and not chosen: closed / found (a
  unit clearing a backlog scores above 100%, and one finding little scores high); closed /
  (open at month start + found), a clearance rate (fair to backlogs but dominated by
  hazards found long ago, so a month's effort barely moves it). The cohort rate treats a
  hazard found on the 30th the same in every unit, so the handicap is shared.
- `overdue`: hazards overdue at month end: found before the end, deadline (`due_at`, the
  current one, after any approved extension) before the end, and not closed by the end
  (`closed_at` unset or at/after the end).
- `mean_days_to_close`: over the month's `closed`, the mean of closed_at − found_at in days,
  to 1 decimal (half up; each hazard's span counted to the second). None when none closed.
- `on_time`: of the month's `closed`, those closed by their deadline (closed_at <= due_at;
  a hazard without a deadline counts as on time). `on_time_rate` = on_time / closed (None
  when none closed). Measured against the current deadline: an approved extension moves it
  (the original deadline stays in the register as 原整改期限).

**Published months**: once a district manager publishes a finished month
(flows/ranking_publish.py), the month reads its published counts, ranked as below, instead of
this live count; `live=true` on the API recounts.

**The rank** orders units by, in turn: on-time rate (higher first), closure rate (higher
first), overdue count (fewer first), mean days to close (fewer first); a missing rate or
mean (nothing closed, nothing found) ranks below any value. Units equal on all four share
a rank and the next rank skips (1, 2, 2, 4). Rates are compared exactly (as fractions), so
rounding never splits or merges a tie.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, and_, case, cast, func, or_
from sqlmodel import Session, select

from models.errors import InvalidInput
from models.hazard import Hazard
from models.org import OrgChart
from models.register_queries import CANCELLED

LEVELS: dict[str, tuple[str, ...]] = {
    "street": ("street", "town"),  # 街道 / 镇
    "community": ("community", "village"),  # 社区 / 村
}
MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
FIRST_YEAR, LAST_YEAR = 2000, 2099  # the registers' window (api/routes/hazards.py's filters)
DAY_SECONDS = 86_400


@dataclass
class RankingRow:
    unit_id: str
    unit_name: str
    found: int = 0
    closed: int = 0
    closed_of_found: int = 0
    overdue: int = 0
    on_time: int = 0
    close_seconds: int = 0  # sum over `closed` of closed_at - found_at
    position: int = 0  # the unit's place in the org chart (orders units of equal rank)
    rank: int = 0
    closure_rate: float | None = None
    on_time_rate: float | None = None
    mean_days_to_close: float | None = None
    _key: tuple[Any, ...] = field(default=(), repr=False)


@dataclass
class Ranking:
    month: str
    level: str
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    rows: list[RankingRow]
    as_of: datetime  # UTC: the figures' cut-off, `end` or (the current month) now


def previous_month(now: datetime, tz: ZoneInfo) -> str:
    """The month before `now`'s in the bureau's zone, YYYY-MM: the one a ranking or reporting
    page shows when none is asked for (the last whole month)."""
    today = now.astimezone(tz)
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def month_bounds(month: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of a local calendar month, in UTC."""
    m = MONTH.fullmatch(month or "")
    if not m or not 1 <= int(m[2]) <= 12:
        raise InvalidInput("month", f"月份格式应为 YYYY-MM（如 2026-03）/ expected a month like "
                           f"2026-03, got {month!r}")
    year, mon = int(m[1]), int(m[2])
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InvalidInput("month", f"月份须在 {FIRST_YEAR}-01 至 {LAST_YEAR}-12 之间 / month must "
                           f"be between {FIRST_YEAR}-01 and {LAST_YEAR}-12, got {month!r}")
    start = datetime(year, mon, 1, tzinfo=tz)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def check_level(level: str) -> None:
    if level not in LEVELS:
        raise InvalidInput("level", f"unknown level {level!r} (known: {', '.join(LEVELS)})")


def ranked_units(org: OrgChart, *, level: str, within: str | None = None) -> list[str]:
    """Every unit of the level (in org-chart order), within a unit (and below) if given."""
    check_level(level)
    return [u.id for u in org.units_where(within=within) if u.type in LEVELS[level]]


def _span_seconds(session: Session) -> Any:
    """closed_at - found_at in whole seconds, per row, in the database's own arithmetic."""
    if session.get_bind().dialect.name == "sqlite":
        span = (func.julianday(Hazard.closed_at) - func.julianday(Hazard.found_at)) * DAY_SECONDS
    else:
        span = func.extract("epoch", Hazard.closed_at - Hazard.found_at)  # type: ignore[operator]
    return cast(func.round(span), BigInteger)


def check_not_future(month: str, tz: ZoneInfo, now: datetime) -> None:
    """A month after the current one (local, `now` from the runtime's clock) has no figures."""
    current = now.astimezone(tz)
    if month > f"{current.year:04d}-{current.month:02d}":  # YYYY-MM compares as text
        raise InvalidInput("month", "月份不能晚于本月 / month is in the future")


def monthly_ranking(
    session: Session, *, org: OrgChart, month: str, tz: ZoneInfo, now: datetime,
    units: Sequence[str] | None = None, level: str = "street",
) -> Ranking:
    """The ranking of `units` (default: every unit of `level` in the org) for `month`, as of
    `now` (the runtime's clock): a later month is refused, the current one counted to now."""
    check_level(level)
    start, end = month_bounds(month, tz)
    check_not_future(month, tz, now)
    as_of = min(end, now.astimezone(UTC))
    targets = list(units) if units is not None else ranked_units(org, level=level)
    rows = {u: RankingRow(unit_id=u, unit_name=org.unit(u).name, position=i)
            for i, u in enumerate(targets)}
    if level == "street":
        key: Any = Hazard.street_id
        owner = {u: u for u in targets}
    else:  # a community's hazards are those of its units (itself and any below)
        key = Hazard.unit_id
        owner = {d: u for u in targets for d in org.descendants(u)}
    if owner:
        _count(session, rows, owner, key, start, as_of)
    rank_rows(list(rows.values()))
    return Ranking(month=month, level=level, start=start, end=end, as_of=as_of,
                   rows=sorted(rows.values(), key=lambda r: (r.rank, r.position)))


def _count(session: Session, rows: dict[str, RankingRow], owner: dict[str, str], key: Any,
           start: datetime, end: datetime) -> None:
    """Four grouped counts over [start, end) (`end`: the month's, or now for the current
    month), each one range of one time index. The scope is applied to the groups, not in
    SQL, and the groups are an expression, not the bare column: either a
    `street_id IN (...)` or a GROUP BY in index order tempts SQLite's planner (which has no
    ANALYZE statistics in production) onto ix_hazard_street_found, a scan of every hazard."""
    live = Hazard.status != CANCELLED
    closed = Hazard.closed_at
    group = func.coalesce(key, "")

    def add(query: Any, fields: tuple[str, ...]) -> None:
        for unit_id, *values in session.exec(query.group_by(group)):  # type: ignore[call-overload]
            target = owner.get(unit_id)
            if target is None:  # outside the scope, or no unit of the level
                continue
            row = rows[target]
            for name, value in zip(fields, values, strict=True):
                setattr(row, name, getattr(row, name) + int(value or 0))

    # found in the month (ix_hazard_found_rank), and of those closed in it
    add(select(group, func.count(),
               func.count(case((and_(closed >= start, closed < end), 1))))  # type: ignore[operator]
        .where(Hazard.found_at >= start, Hazard.found_at < end, live),
        ("found", "closed_of_found"))
    # closed in the month (ix_hazard_due_rank): on time, and the days they took
    on_time = or_(Hazard.due_at.is_(None), closed <= Hazard.due_at)  # type: ignore[union-attr,operator]
    add(select(group, func.count(), func.count(case((on_time, 1))),
               func.sum(_span_seconds(session)))
        .where(closed >= start, closed < end, live),  # type: ignore[operator]
        ("closed", "on_time", "close_seconds"))
    # overdue at month end (ix_hazard_due_rank), in two ranges: still open now, and closed
    # since the end but late at it
    late = [Hazard.due_at < end, Hazard.found_at < end, live]  # type: ignore[operator]
    for not_closed_by_end in (closed.is_(None), closed >= end):  # type: ignore[union-attr,operator]
        add(select(group, func.count()).where(not_closed_by_end, *late), ("overdue",))


def _ratio(part: int, whole: int) -> Fraction | None:
    return Fraction(part, whole) if whole else None


def rank_rows(rows: list[RankingRow]) -> None:
    """Rates, mean and rank of each row from its counts (the order in the module docstring)."""
    for r in rows:
        closure = _ratio(r.closed_of_found, r.found)
        on_time = _ratio(r.on_time, r.closed)
        mean = Fraction(r.close_seconds, r.closed * DAY_SECONDS) if r.closed else None
        r.closure_rate = None if closure is None else round(float(closure), 4)
        r.on_time_rate = None if on_time is None else round(float(on_time), 4)
        r.mean_days_to_close = None if mean is None else float(
            (Decimal(mean.numerator) / Decimal(mean.denominator)).quantize(
                Decimal("0.1"), rounding=ROUND_HALF_UP))
        # Ascending sort key: a missing value (True) after any present one (False).
        r._key = (on_time is None, -(on_time or 0), closure is None, -(closure or 0),
                  r.overdue, mean is None, mean or 0)
    ordered = sorted(rows, key=lambda r: r._key)
    for i, r in enumerate(ordered):
        r.rank = ordered[i - 1].rank if i and r._key == ordered[i - 1]._key else i + 1
