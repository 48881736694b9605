"""Publishing a month's ranking (综合评价月排名通报), and reading the published one.

A finished month is counted live from the register (flows/ranking.py) until a manager of the
whole district publishes it. Publishing stores each unit's counts for both levels (streets,
communities); from then on `published_ranking` answers for that month, so a hazard cancelled
later, or an extension approved after the month, no longer moves a ranking the bureau has
announced. Rates, means and ranks are derived from the stored counts exactly as live, for
whatever scope the reader asks (a street's communities are ranked among themselves).

Publishing a month again is a correction: it needs a reason, and it adds a publication; the
earlier one and its figures stay, and the audit trail names both. The current month cannot
be published: it is not over.
"""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from flows.access import require_right
from flows.params import ParamValueError
from flows.params import check_text as check_plain_text
from flows.ranking import LEVELS, Ranking, RankingRow, month_bounds, monthly_ranking, rank_rows
from flows.runtime import Runtime
from models.db import session_scope
from models.errors import Conflict, InvalidInput
from models.ranking import RankingFigure, RankingPublication
from models.writes import add_event, insert_rows

MAX_REASON = 500
COUNTS = ("found", "closed", "closed_of_found", "overdue", "on_time", "close_seconds")


def latest_publication(session: Session, month: str) -> RankingPublication | None:
    return session.exec(
        select(RankingPublication).where(RankingPublication.month == month)
        .order_by(RankingPublication.id.desc())  # type: ignore[union-attr]
        .limit(1)
    ).first()


def publish_ranking(rt: Runtime, *, month: str, actor: str, reason: str | None = None
                    ) -> RankingPublication:
    """Store the month's ranking as published, in `actor`'s name (a manager of the whole
    district). Raises InvalidInput for a month not yet over, Conflict for a month already
    published when no reason is given for publishing it again."""
    require_right(rt.org, actor, "manager", rt.org.root_id)
    now = rt.clock.now()
    _, end = month_bounds(month, rt.tz)
    if end > now:
        raise InvalidInput("month", f"{month} 尚未结束，不能发布；月末之后再发布 / {month} is not "
                           "over yet; publish it after its last day")
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > MAX_REASON:
        raise InvalidInput("reason", f"原因不能超过 {MAX_REASON} 字 / at most {MAX_REASON} "
                           "characters")
    if reason is not None:
        # Kept with the published figures for good: no control or bidi characters, which
        # would make it read backwards wherever it is shown, as for every note (check_note).
        try:
            check_plain_text(reason)
        except ParamValueError as exc:
            raise InvalidInput("reason", exc.text) from None
    with session_scope(rt.db) as session:
        earlier = latest_publication(session, month)
        if earlier is not None and reason is None:
            when = rt.renderer.local(earlier.published_at)
            who = rt.org.person_name(earlier.published_by)
            raise Conflict(f"{month} 的排名已于 {when} 由 {who} 发布；如需更正，请说明原因后"
                           f"重新发布 / the {month} ranking was published at {when} by {who}; "
                           "to correct it, publish again with a reason", current="published")
        publication = RankingPublication(month=month, published_at=now, published_by=actor,
                                         reason=reason)
        session.add(publication)
        session.flush()
        figures = []
        for level in LEVELS:
            counted = monthly_ranking(session, org=rt.org, month=month, tz=rt.tz, now=now,
                                      level=level)
            figures += [{"publication_id": publication.id, "level": level,
                         "unit_id": r.unit_id, "position": r.position,
                         "unit_name": r.unit_name, **{c: getattr(r, c) for c in COUNTS}}
                        for r in counted.rows]
        insert_rows(session, RankingFigure, figures)
        add_event(session, at=now, actor=actor, action="ranking_published", detail={
            "month": month, "publication": publication.id, "units": len(figures),
            "replaces": earlier.id if earlier else None, "reason": reason})
        session.refresh(publication)
        session.expunge(publication)
        return publication


def published_ranking(
    session: Session, *, month: str, level: str, tz: ZoneInfo,
    units: Sequence[str] | None = None, publication: RankingPublication | None = None,
) -> tuple[Ranking, RankingPublication] | None:
    """The month's latest published ranking at `level`, restricted to `units` (None: every
    unit published) and ranked among them; None when the month was never published.
    `publication`: the month's latest, when the caller has already read it."""
    publication = publication or latest_publication(session, month)
    if publication is None:
        return None
    figures = session.exec(
        select(RankingFigure).where(RankingFigure.publication_id == publication.id,
                                    RankingFigure.level == level)
        .order_by(RankingFigure.position)  # type: ignore[arg-type]
    ).all()
    wanted = set(units) if units is not None else None
    rows = [RankingRow(unit_id=f.unit_id, unit_name=f.unit_name, position=f.position,
                       **{c: getattr(f, c) for c in COUNTS})
            for f in figures if wanted is None or f.unit_id in wanted]
    rank_rows(rows)
    start, end = month_bounds(month, tz)
    rows.sort(key=lambda r: (r.rank, r.position))
    return Ranking(month=month, level=level, start=start, end=end, rows=rows,
                   as_of=end), publication

