"""Which message and which letter of its level a firing is (第N次督办, 约谈（第N次）), for every
step of a sweep batch from one query each, not one count per firing: 1,000 escalations in a
tick were 1,000 counts, about a third of the tick.

The counts keep the per-firing meaning exactly: messages are the escalation rows of the step,
kind and level scheduled before the firing; letters are the documents the step's level filed
with the level's template. A firing's own rows are not yet written when it is counted (the
batch writes them at its end), and a step fires each level at most once per sweep (missed
repeats collapse into one firing, flows/timers.py), so counts read at the start of the batch
are the counts each firing would have read on its own."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from models.documents import Document
from models.escalation import Escalation

# The ladders whose messages say which time of the level they are (flows/sweeper._message).
COUNTED_KINDS = ("escalate", "verify")


class SentBefore:
    """The batch's earlier messages and letters, read on first use (a batch that fires no
    ladder level reads nothing)."""

    def __init__(self, session: Session, step_ids: list[int]) -> None:
        self._session = session
        self._step_ids = sorted(set(step_ids))
        # (step, kind, level) -> (rows, latest scheduled_at)
        self._messages: dict[tuple[int, str, int], tuple[int, datetime]] | None = None
        self._letters: dict[tuple[int, int, str], int] | None = None

    def messages(self, step_id: int, kind: str, level: int, scheduled_at: datetime) -> int:
        """Escalation rows of this step's `kind` ladder at `level` scheduled before
        `scheduled_at`."""
        if self._messages is None:
            self._messages = self._read_messages()
        count, latest = self._messages.get((step_id, kind, level), (0, None))
        if latest is None or latest < scheduled_at:
            return count
        # A row at or after this firing: the same firing swept again (a second sweeper that
        # read the step before the first one's commit) or a ladder restarted earlier than it
        # ran before. Rare, so counted exactly on its own rather than by fetching every row.
        return self._session.exec(select(func.count()).select_from(Escalation).where(
            Escalation.step_id == step_id, Escalation.kind == kind,
            Escalation.level == level,
            col(Escalation.scheduled_at) < scheduled_at)).one()

    def letters(self, step_id: int, level: int, template: str) -> int:
        """Letters this step's `level` filed with `template`."""
        if self._letters is None:
            self._letters = self._read_letters()
        return self._letters.get((step_id, level, template), 0)

    def _read_messages(self) -> dict[tuple[int, str, int], tuple[int, datetime]]:
        if not self._step_ids:
            return {}
        rows = self._session.exec(
            select(Escalation.step_id, Escalation.kind, Escalation.level, func.count(),
                   func.max(Escalation.scheduled_at))
            .where(col(Escalation.step_id).in_(self._step_ids),
                   col(Escalation.kind).in_(COUNTED_KINDS))
            .group_by(Escalation.step_id, Escalation.kind, Escalation.level)).all()
        return {(step_id, kind, level): (count, latest)
                for step_id, kind, level, count, latest in rows}

    def _read_letters(self) -> dict[tuple[int, int, str], int]:
        if not self._step_ids:
            return {}
        rows = self._session.exec(
            select(Document.step_id, Document.level, Document.template, func.count())
            .where(col(Document.step_id).in_(self._step_ids),
                   col(Document.level).is_not(None))
            .group_by(Document.step_id, Document.level, Document.template)).all()
        return {(step_id, level, template): count
                for step_id, level, template, count in rows}
