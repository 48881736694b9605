"""Evidence on a real PostgreSQL 15 server on loopback: two completions at once (two tasks, each
thread holding its checks until the other has passed them too) citing the same file, or the same
picture uploaded twice, give one success and one 422, with the loser's task and files untouched;
a file name with a NUL (which PostgreSQL refuses in text) is cleaned before the row is written.
Fails (not skips) when the server binaries are missing."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from factories import png_bytes, race
from factories import step_row as one
from sqlmodel import select

from flows import lifecycle, tasks
from flows.evidence import store_evidence
from flows.runtime import Runtime
from models.audit import AuditEvent
from models.db import read_session
from models.documents import Evidence
from models.errors import InvalidInput
from models.task import StepInstance

HOLD = 3.0  # seconds a thread waits at the barrier for the other (which may be blocked)


@pytest.fixture
def prt(pg_rt: Runtime) -> Runtime:
    return pg_rt


def receive_task(rt: Runtime) -> int:
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "一社区3号楼"}, actor="s1-commander")
    return one(rt, run.id or 0, "receive").id or 0


def held_transitions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each completion, its checks passed, waits (up to HOLD) for the other to pass its own
    before moving its task: the interleaving that let both attach the same file. A completion
    that cannot pass its checks until the other is done (the rows are locked) never arrives,
    and the one waiting goes on alone."""
    barrier = threading.Barrier(2, timeout=HOLD)
    real = tasks.transition

    def held(*args: Any, **kwargs: Any) -> None:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        real(*args, **kwargs)

    monkeypatch.setattr(tasks, "transition", held)


def step(rt: Runtime, step_id: int) -> StepInstance:
    with read_session(rt.db) as session:
        found = session.get(StepInstance, step_id)
        assert found is not None
        return found


def evidence(rt: Runtime, ev_id: str) -> Evidence:
    with read_session(rt.db) as session:
        found = session.get(Evidence, ev_id)
        assert found is not None
        return found


def done_events(rt: Runtime, step_id: int) -> list[AuditEvent]:
    with read_session(rt.db) as session:
        return list(session.exec(select(AuditEvent).where(
            AuditEvent.step_id == step_id, AuditEvent.action == "done")).all())


def one_won(rt: Runtime, results: list[object], step_ids: list[int],
            cited: list[str]) -> None:
    """Exactly one completion succeeded; the other is a 422 on evidence, wrote nothing."""
    winners = [i for i, r in enumerate(results) if isinstance(r, StepInstance)]
    losers = [i for i, r in enumerate(results) if isinstance(r, InvalidInput)]
    assert len(winners) == 1 and len(losers) == 1, results
    won, lost = winners[0], losers[0]
    assert str(results[lost]).split(": ", 1)[0].startswith("evidence")
    assert step(rt, step_ids[won]).status == "done"
    assert step(rt, step_ids[won]).evidence == [cited[won]]
    assert evidence(rt, cited[won]).step_id == step_ids[won]
    loser = step(rt, step_ids[lost])
    assert loser.status == "ready" and loser.evidence == [] and loser.version == 1
    assert done_events(rt, step_ids[lost]) == []
    if cited[lost] != cited[won]:
        assert evidence(rt, cited[lost]).step_id is None


def test_two_completions_citing_the_same_file_one_wins(
    prt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = receive_task(prt), receive_task(prt)
    photo = store_evidence(prt, data=png_bytes(), filename="现场.png", uploaded_by="s1-duty").id
    held_transitions(monkeypatch)
    results = race(
        lambda: tasks.complete(prt, step_id=first, actor="s1-duty", evidence=[photo]),
        lambda: tasks.complete(prt, step_id=second, actor="s1-duty", evidence=[photo]),
    )
    one_won(prt, results, [first, second], [photo, photo])
    lost = next(r for r in results if isinstance(r, InvalidInput))
    assert "已附在其他任务上" in lost.message


def test_two_completions_citing_one_picture_uploaded_twice_one_wins(
    prt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = receive_task(prt), receive_task(prt)
    photos = [store_evidence(prt, data=png_bytes(), filename=f"{i}.png",
                             uploaded_by="s1-duty").id for i in range(2)]
    held_transitions(monkeypatch)
    results = race(
        lambda: tasks.complete(prt, step_id=first, actor="s1-duty", evidence=[photos[0]]),
        lambda: tasks.complete(prt, step_id=second, actor="s1-duty", evidence=[photos[1]]),
    )
    one_won(prt, results, [first, second], photos)


def test_a_file_name_with_a_nul_is_stored_cleaned(prt: Runtime) -> None:
    row = store_evidence(prt, data=png_bytes(), filename="现场\x00照片\u202e.png",
                         uploaded_by="c1-grid")
    assert evidence(prt, row.id).filename == "现场照片.png"
    empty = store_evidence(prt, data=png_bytes(3, 3), filename="\x00", uploaded_by="c1-grid")
    assert evidence(prt, empty.id).filename == "证据.png"
