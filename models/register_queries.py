"""Keyword-only read queries over the registers (三个清单): the hazard list (隐患清单), the
rectification list (整改清单: hazards not closed yet) and the risk points (风险清单), with
filters, sorting and paging that stay on the hazard table's indexes, and streaming readers
for exports (rows fetched in chunks, never a whole register in memory).

"Open" means not closed (销号, `closed_at` unset) and not cancelled (the run was withdrawn,
status 已撤销): the same reading as a 3030 campaign's progress (flows/campaigns.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, true
from sqlmodel import Session, select

from models.hazard import Hazard, RiskPoint

# The phase label flows/registers.py writes when a hazard's run is cancelled.
CANCELLED = "已撤销"
# Pseudo statuses a `status` filter accepts next to the phase labels themselves.
OPEN = "open"
CLOSED = "closed"

HAZARD_SORTS = {
    "found_at": (Hazard.found_at,), "due_at": (Hazard.due_at,),
    "closed_at": (Hazard.closed_at,), "code": (Hazard.code,),
}
RISK_LEVELS = ("重大", "较大", "一般", "低")  # highest first
RISK_SORTS = ("level", "code", "name", "updated_at")
EXPORT_CHUNK = 2_000


@dataclass(frozen=True)
class HazardFilter:
    """What a hazard list, the rectification list and their exports filter on. Times are
    aware datetimes (the route turns a naive one into the bureau's local time); `until`
    bounds are exclusive. `units=None` means every unit."""

    units: Sequence[str] | None = None
    statuses: Sequence[str] | None = None  # phase labels, or OPEN / CLOSED
    grade: str | None = None
    source: str | None = None
    category: str | None = None
    overdue: bool | None = None  # open and due_at < now
    # Overdue at that moment: a month's 月末逾期未销号数, hazard by hazard (the ranking's rule:
    # found and due before it, not closed by it, not cancelled).
    overdue_at: datetime | None = None
    found_since: datetime | None = None
    found_until: datetime | None = None
    closed_since: datetime | None = None
    closed_until: datetime | None = None
    campaign: int | None = None
    code: str | None = None
    q: str | None = None  # number, location, description or enterprise contains
    open_only: bool = False


def is_open() -> ColumnElement[bool]:
    return and_(Hazard.closed_at.is_(None), Hazard.status != CANCELLED)  # type: ignore[union-attr]


def is_open_row(h: Hazard) -> bool:
    """`is_open()` for a row in hand."""
    return h.closed_at is None and h.status != CANCELLED


def hazard_conditions(f: HazardFilter, *, now: datetime) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if f.units is not None:
        conds.append(Hazard.unit_id.in_(list(f.units)))  # type: ignore[attr-defined]
    if f.statuses:
        labels = [s for s in f.statuses if s not in (OPEN, CLOSED)]
        either: list[ColumnElement[bool]] = []
        if labels:
            either.append(Hazard.status.in_(labels))  # type: ignore[attr-defined]
        if OPEN in f.statuses:
            either.append(is_open())
        if CLOSED in f.statuses:
            either.append(Hazard.closed_at.is_not(None))  # type: ignore[union-attr]
        conds.append(or_(*either))
    if f.open_only:
        conds.append(is_open())
    if f.grade:
        conds.append(Hazard.grade == f.grade)
    if f.source:
        conds.append(Hazard.source == f.source)
    if f.category:
        conds.append(Hazard.category == f.category)
    if f.overdue is True:
        conds += [is_open(), Hazard.due_at < now]  # type: ignore[operator]
    elif f.overdue is False:
        conds.append(or_(~is_open(), Hazard.due_at.is_(None),  # type: ignore[union-attr]
                         Hazard.due_at >= now))  # type: ignore[operator]
    if f.overdue_at is not None:
        at = f.overdue_at
        conds += [Hazard.status != CANCELLED, Hazard.found_at < at,
                  Hazard.due_at < at,  # type: ignore[operator]
                  or_(Hazard.closed_at.is_(None), Hazard.closed_at >= at)]  # type: ignore[union-attr,operator]
    if f.found_since:
        conds.append(Hazard.found_at >= f.found_since)
    if f.found_until:
        conds.append(Hazard.found_at < f.found_until)
    if f.closed_since:
        conds.append(Hazard.closed_at >= f.closed_since)  # type: ignore[operator]
    if f.closed_until:
        conds.append(Hazard.closed_at < f.closed_until)  # type: ignore[operator]
    if f.campaign is not None:
        conds.append(Hazard.campaign_run_id == f.campaign)
    if f.code:
        conds.append(Hazard.code == f.code)
    if f.q:
        # Also the number and the enterprise: what a field person has in hand is the number on
        # the notice pinned at the site (PS-2026-01235) or the shop's name, not the wording of
        # the register's description.
        conds.append(or_(Hazard.location.contains(f.q, autoescape=True),  # type: ignore[attr-defined]
                         Hazard.description.contains(f.q, autoescape=True),  # type: ignore[union-attr]
                         Hazard.code.contains(f.q, autoescape=True),  # type: ignore[attr-defined]
                         Hazard.enterprise.contains(f.q, autoescape=True)))  # type: ignore[union-attr]
    return conds


def hazard_order(sort: str) -> list[Any]:
    """`found_at`, `-found_at`, `due_at`, ...: at most one leading '-' (descending). Rows
    without the value (no deadline, not closed) come last either way; the run id breaks ties
    so pages never overlap."""
    desc = sort.startswith("-")
    key = sort.removeprefix("-")
    if key not in HAZARD_SORTS:
        raise ValueError(f"unknown sort {sort!r}")
    order: list[Any] = []
    for col in HAZARD_SORTS[key]:
        if key in ("due_at", "closed_at"):
            order.append(col.is_(None))  # type: ignore[union-attr]
        order.append(col.desc() if desc else col.asc())  # type: ignore[union-attr]
    order.append(Hazard.run_id.desc() if desc else Hazard.run_id.asc())  # type: ignore[attr-defined]
    return order


def list_hazards(
    session: Session, *, filters: HazardFilter, now: datetime, sort: str = "-found_at",
    limit: int = 50, offset: int = 0,
) -> tuple[list[Hazard], int]:
    """One page of the hazard register and the count of all that match. The page is chosen
    on run ids first (an index can answer that without reading rows), then its rows read."""
    where = and_(true(), *hazard_conditions(filters, now=now))
    total = session.exec(select(func.count()).select_from(Hazard).where(where)).one()
    ids = _page_ids(session, where, sort, offset=offset, limit=limit)
    found = {h.run_id: h for h in session.exec(
        select(Hazard).where(Hazard.run_id.in_(ids)))}  # type: ignore[attr-defined]
    return [found[i] for i in ids], int(total)


def _page_ids(session: Session, where: Any, sort: str, *, offset: int, limit: int
              ) -> list[int]:
    """The run ids of one page in `sort` order. A sort on a value some rows lack (due_at,
    closed_at: those rows last) is read as two ranges, the rows with the value in its order and
    then the rest by run id: `ORDER BY due_at IS NULL, due_at` cannot follow an index, so the
    整改清单's first page of 1,000,000 open hazards sorted all of them (~200 ms); ordered by
    due_at alone it reads the index from the start and stops after the page."""
    key = sort.removeprefix("-")
    if key not in ("due_at", "closed_at"):
        return list(session.exec(
            select(Hazard.run_id).where(where).order_by(*hazard_order(sort))
            .offset(offset).limit(limit)).all())
    desc = sort.startswith("-")
    col = HAZARD_SORTS[key][0]
    tie = Hazard.run_id.desc() if desc else Hazard.run_id.asc()  # type: ignore[attr-defined]
    valued = and_(where, col.is_not(None))  # type: ignore[union-attr]
    ids = list(session.exec(
        select(Hazard.run_id).where(valued)
        .order_by(col.desc() if desc else col.asc(), tie)  # type: ignore[union-attr]
        .offset(offset).limit(limit)).all())
    if len(ids) == limit:
        return ids
    # The page runs past the rows with the value: how many of those came before it says how
    # far into the rest it starts.
    before = offset + len(ids) if ids or offset == 0 else session.exec(
        select(func.count()).select_from(Hazard).where(valued)).one()
    rest = and_(where, col.is_(None))  # type: ignore[union-attr]
    return ids + list(session.exec(
        select(Hazard.run_id).where(rest).order_by(tie)
        .offset(max(offset - before, 0)).limit(limit - len(ids))).all())


def iter_hazards(
    session: Session, *, filters: HazardFilter, now: datetime, sort: str = "-found_at",
    chunk: int = EXPORT_CHUNK,
) -> Iterator[Hazard]:
    """Every matching hazard, fetched `chunk` rows at a time (for exports)."""
    where = and_(true(), *hazard_conditions(filters, now=now))
    stmt = (select(Hazard).where(where).order_by(*hazard_order(sort))
            .execution_options(yield_per=chunk))
    yield from session.exec(stmt)


def get_hazard(session: Session, *, run_id: int) -> Hazard | None:
    return session.get(Hazard, run_id)


# -- risk points (风险清单) ------------------------------------------------------------------

@dataclass(frozen=True)
class RiskFilter:
    units: Sequence[str] | None = None
    level: str | None = None
    category: str | None = None
    q: str | None = None  # name or location contains


def _risk_conditions(f: RiskFilter) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if f.units is not None:
        conds.append(RiskPoint.unit_id.in_(list(f.units)))  # type: ignore[attr-defined]
    if f.level:
        conds.append(RiskPoint.level == f.level)
    if f.category:
        conds.append(RiskPoint.category == f.category)
    if f.q:
        conds.append(or_(RiskPoint.name.contains(f.q, autoescape=True),  # type: ignore[attr-defined]
                         RiskPoint.location.contains(f.q, autoescape=True)))  # type: ignore[union-attr]
    return conds


def _risk_order(sort: str) -> list[Any]:
    desc = sort.startswith("-")
    key = sort.removeprefix("-")
    if key not in RISK_SORTS:
        raise ValueError(f"unknown sort {sort!r}")
    if key == "level":  # 重大 first; unknown levels after the known ones
        rank = case({lvl: i for i, lvl in enumerate(RISK_LEVELS)}, value=RiskPoint.level,
                    else_=len(RISK_LEVELS))
        first: Any = rank.desc() if desc else rank.asc()
        return [first, RiskPoint.code.asc()]  # type: ignore[attr-defined]
    col = getattr(RiskPoint, key)
    return [col.desc() if desc else col.asc(),
            RiskPoint.id.desc() if desc else RiskPoint.id.asc()]  # type: ignore[union-attr]


def list_risks(
    session: Session, *, filters: RiskFilter, sort: str = "level", limit: int = 50,
    offset: int = 0,
) -> tuple[list[RiskPoint], int]:
    where = and_(true(), *_risk_conditions(filters))
    total = session.exec(select(func.count()).select_from(RiskPoint).where(where)).one()
    rows = session.exec(
        select(RiskPoint).where(where).order_by(*_risk_order(sort)).offset(offset).limit(limit)
    ).all()
    return list(rows), int(total)


def iter_risks(
    session: Session, *, filters: RiskFilter, sort: str = "level", chunk: int = EXPORT_CHUNK,
) -> Iterator[RiskPoint]:
    where = and_(true(), *_risk_conditions(filters))
    stmt = (select(RiskPoint).where(where).order_by(*_risk_order(sort))
            .execution_options(yield_per=chunk))
    yield from session.exec(stmt)
