"""Column helpers shared by every table: UTC timestamps and JSON columns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, TypeDecorator

# The largest row id both databases hold: the id columns are INTEGER, 64-bit on SQLite but
# 32-bit on PostgreSQL, where asking for 2**31 is an out-of-range error (a 500), not "no such
# row". Ids from outside (paths, queries, run params, import cells) are held to it.
MAX_ID = 2**31 - 1


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: SQLite keeps no zone, and we never store local time."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def utc_column(**kwargs: Any) -> Any:
    from sqlmodel import Field

    return Field(sa_type=UTCDateTime, **kwargs)


def json_column(default_factory: Any = None, **kwargs: Any) -> Any:
    from sqlmodel import Field

    if default_factory is not None:
        return Field(default_factory=default_factory, sa_type=JSON, **kwargs)
    return Field(default=None, sa_type=JSON, **kwargs)
