"""Published monthly rankings (综合评价月排名通报). A month's ranking is counted live from the
hazard register until a district manager publishes it; from then on the month reads what was
published, since a later cancel or an extension approved afterwards would otherwise move a
ranking the bureau has already announced. Publishing a month again (a correction) adds a new
publication with its reason; the earlier ones stay, so every announced figure can be traced."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index
from sqlmodel import Field, SQLModel

from models.base import utc_column


class RankingPublication(SQLModel, table=True):
    __tablename__ = "ranking_publication"
    __table_args__ = (Index("ix_ranking_publication_month", "month", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    month: str = Field(max_length=7)  # YYYY-MM, the bureau's calendar month
    published_at: datetime = utc_column()
    published_by: str = Field(max_length=80)
    reason: str | None = Field(default=None, max_length=500)  # why it was published again


class RankingFigure(SQLModel, table=True):
    """A unit's counts as published; rates, means and ranks are derived from them the same
    way as live (flows/ranking.py), for whatever scope a reader asks."""

    __tablename__ = "ranking_figure"

    publication_id: int = Field(foreign_key="ranking_publication.id", primary_key=True)
    level: str = Field(max_length=12, primary_key=True)
    unit_id: str = Field(max_length=80, primary_key=True)
    position: int  # the unit's place in the org chart when published (orders ties)
    unit_name: str = Field(max_length=200)
    found: int = 0
    closed: int = 0
    closed_of_found: int = 0
    overdue: int = 0
    on_time: int = 0
    # Seconds summed over a month's closures: a district's exceed 32 bits.
    close_seconds: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
