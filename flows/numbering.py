"""Issuing document numbers (文号) from the bureau's register (models/numbering.py).

A number is taken inside the transaction that files or sends the document, so a rolled-back
filing gives its number back and a committed one never shares it: the counter row is bumped
with one UPDATE (SQLite's writers are serialised by BEGIN IMMEDIATE; PostgreSQL locks the row
until commit), and a (run, prefix, subject) already numbered keeps its number.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from flows.runtime import Runtime
from models.numbering import DocCounter, DocNumber

RUN_SUBJECT = "run"  # a step's document: one number per prefix and run


def issue_number(
    session: Session, rt: Runtime, *, prefix: str, run_id: int, step_key: str,
    subject: str = RUN_SUBJECT, now: datetime,
) -> DocNumber:
    """The number of this (run, prefix, subject), issued now if it has none yet: the next of
    `prefix` in the year `now` falls in, on the bureau's clock."""
    known = session.exec(select(DocNumber).where(
        DocNumber.run_id == run_id, DocNumber.prefix == prefix, DocNumber.subject == subject,
    )).first()
    if known is not None:
        return known
    year = now.astimezone(rt.tz).year
    seq = _next(session, prefix, year)
    row = DocNumber(prefix=prefix, year=year, seq=seq, run_id=run_id, step_key=step_key,
                    subject=subject, issued_at=now)
    session.add(row)
    session.flush()
    return row


def _next(session: Session, prefix: str, year: int) -> int:
    bump = (update(DocCounter).where(DocCounter.prefix == prefix, DocCounter.year == year)
            .values(last=DocCounter.last + 1).returning(DocCounter.last))
    got = session.execute(bump).scalar()
    if got is not None:
        return int(got)
    dialect = session.get_bind().dialect.name
    ins = (sqlite_insert if dialect == "sqlite" else pg_insert)(DocCounter.__table__)  # type: ignore[attr-defined]
    # The first number of a prefix this year; if another transaction created the counter
    # meanwhile (PostgreSQL), ours inserts nothing and the bump below waits for theirs.
    created = session.execute(
        ins.values(prefix=prefix, year=year, last=1).on_conflict_do_nothing()
        .returning(DocCounter.__table__.c.last)  # type: ignore[attr-defined]
    ).scalar()
    if created is not None:
        return int(created)
    return int(session.execute(bump).scalar_one())


def run_numbers(session: Session, run_id: int) -> dict[str, str]:
    """The numbers a run's steps issued, by step key (the closure form cites the notice's)."""
    rows = session.exec(select(DocNumber).where(
        DocNumber.run_id == run_id, DocNumber.subject == RUN_SUBJECT)).all()
    return {row.step_key: row.text for row in rows}


def issued_for_run(session: Session, run_id: int) -> list[DocNumber]:
    """Every number a run was issued (its documents' and its ladder's letters'), in order."""
    return list(session.exec(select(DocNumber).where(DocNumber.run_id == run_id)
                             .order_by(DocNumber.issued_at, DocNumber.id)).all())  # type: ignore[arg-type]
