"""The bureau's document-number register (发文字号): every numbered document a run issues (a
supervision notice, a 督办函, a 约谈通知) takes the next number of its prefix in the year it is
issued, as 坪应急督〔2026〕15号 (GB/T 9704-2012: 发文机关代字、年份、发文顺序号; the number has
no leading zeros and no 第).

`DocCounter` holds the last number of each (prefix, year); `DocNumber` records who got which, so
a re-rendered document (a notice sent after it was filed, a retried firing) keeps its number.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import utc_column

MAX_PREFIX = 20


class DocCounter(SQLModel, table=True):
    __tablename__ = "doc_counter"

    prefix: str = Field(primary_key=True, max_length=MAX_PREFIX)
    year: int = Field(primary_key=True)
    last: int = 0


class DocNumber(SQLModel, table=True):
    __tablename__ = "doc_number"
    __table_args__ = (
        UniqueConstraint("prefix", "year", "seq", name="ux_doc_number_seq"),
        # What a number was issued for: `run` for a step's document (the notice and its
        # serving share one), an escalation's key for each letter of the ladder.
        UniqueConstraint("run_id", "prefix", "subject", name="ux_doc_number_subject"),
    )

    id: int | None = Field(default=None, primary_key=True)
    prefix: str = Field(max_length=MAX_PREFIX)
    year: int
    seq: int
    run_id: int = Field(index=True)
    step_key: str = Field(max_length=120)
    subject: str = Field(max_length=200)
    issued_at: datetime = utc_column()

    @property
    def text(self) -> str:
        return doc_text(self.prefix, self.year, self.seq)


def doc_text(prefix: str, year: int, seq: int) -> str:
    return f"{prefix}〔{year}〕{seq}号"
