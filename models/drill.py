"""Drills (演练): a run of a real playbook for practice. A drill must never read as a real event,
nor a real event as a drill: the message and document rows of a drill run get the 【演练】 mark
here, where every one of them is written (models/writes.insert_ignoring_duplicates), rather
than in each of the templates and titles that make them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement
from sqlmodel import Session, col, select

from models.run import Run

# 桌面推演: a tabletop exercise; 实战演练: people go out and do it; 盲演: participants were not
# told beforehand (unannounced). Recorded, not hidden: every message still says 演练.
DRILL_KINDS = ("桌面推演", "实战演练", "盲演")
DRILL_KINDS_EN = {"桌面推演": "tabletop", "实战演练": "field drill", "盲演": "unannounced drill"}
MARK = "【演练】"
MESSAGE_LINE = "【演练】本消息为演练，非真实事件。"
DOCUMENT_LINE = "**【演练】演练文书，非真实事件**"
_TITLE_WIDTH = 300  # notification.title and document.title are VARCHAR(300)


def is_drill(run: Run) -> bool:
    return run.drill_kind is not None


def real_runs() -> ColumnElement[bool]:
    """The condition that keeps drills out of anything counting real work."""
    return col(Run.drill_kind).is_(None)


def marked_title(title: str) -> str:
    return title if title.startswith(MARK) else (MARK + title)[:_TITLE_WIDTH]


def marked_message(body: str) -> str:
    return body if body.startswith(MESSAGE_LINE) else f"{MESSAGE_LINE}\n{body}"


def marked_document(body: str) -> str:
    return body if body.startswith(DOCUMENT_LINE) else f"{DOCUMENT_LINE}\n\n{body}"


def is_drill_document(body: str) -> bool:
    """A document filed by a drill run (marked_document opened it with the drill line)."""
    return body.startswith(DOCUMENT_LINE)


def drill_run_ids(session: Session, run_ids: set[int]) -> set[int]:
    if not run_ids:
        return set()
    ids = sorted(run_ids)
    found: set[int] = set()
    for start in range(0, len(ids), 500):  # well under any database's bound-parameter limit
        found.update(session.exec(select(Run.id).where(
            col(Run.id).in_(ids[start:start + 500]), col(Run.drill_kind).is_not(None))).all())
    return {i for i in found if i is not None}


def mark_rows(session: Session, rows: Sequence[dict[str, Any]], *, document: bool
              ) -> Sequence[dict[str, Any]]:
    """`rows` (notification or document rows) with those of drill runs marked: the title
    starts 【演练】, the body opens with a line saying it is a drill. Rows of real runs, and
    rows of no run (a bulk import's summary), are returned as they are."""
    drills = drill_run_ids(session, {r["run_id"] for r in rows if r.get("run_id") is not None})
    if not drills:
        return rows
    body_mark = marked_document if document else marked_message
    return [r | {"title": marked_title(r["title"]), "body": body_mark(r["body"])}
            if r.get("run_id") in drills else r for r in rows]
