"""第N次督办 read for a whole sweep batch at once: a tick's statements do not grow with the
escalations it fires, and each letter and message still says which time of its level it is,
step by step, after downtime and after an extension restarts the ladder."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from factories import ENGINE_PLAYBOOKS, make_runtime
from sqlalchemy import event
from sqlmodel import select

from flows import lifecycle, tasks
from flows.runtime import Runtime
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.documents import Document
from models.task import StepInstance

# Both levels send a letter; each repeats every 10 s until the step is done.
LETTER_LADDER = """\
id: letter-ladder
version: 1
title: 督办函测试
title_en: Letter ladder test
params:
  location: {type: string, required: true, title: 地点}
steps:
  - id: receive
    title: 接警登记
    role: duty_officer
    due: 2s
    escalate:
      - after: 0s
        notify: [section_chief]
        title: 督办函
        template: ladder-letter.md.j2
        repeat: 10s
      - after: 20s
        notify: [director]
        title: 约谈
        template: ladder-letter.md.j2
        repeat: 10s
"""
LETTER = "# {{ level_title }}\n\n{{ run.title }}：第 {{ ordinal }} 次督办\n"


def letter_books(tmp_path: Path) -> Path:
    books = tmp_path / "books"
    shutil.copytree(ENGINE_PLAYBOOKS, books)
    (books / "letter-ladder.yaml").write_text(LETTER_LADDER, encoding="utf-8")
    (books / "templates" / "ladder-letter.md.j2").write_text(LETTER, encoding="utf-8")
    return books


def start(rt: Runtime, playbook: str, place: str) -> int:
    run = lifecycle.start_run(rt, playbook_id=playbook, unit_id="c1",
                              params={"location": place}, actor="s1-commander")
    return run.id or 0


@contextmanager
def statements(rt: Runtime) -> Iterator[list[str]]:
    """Every SQL statement the runtime's engine sends while the block runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(rt.db, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(rt.db, "before_cursor_execute", record)


def reads_of(seen: list[str], table: str) -> int:
    return sum(1 for s in seen if s.startswith("SELECT") and f"FROM {table} " in f"{s} ")


def tick_firing(rt: Runtime, clock: ManualClock, playbook: str, runs: int,
                ) -> tuple[int, list[str]]:
    """Start `runs` runs, let their first level fall due, sweep once: (fired, statements)."""
    for n in range(runs):
        start(rt, playbook, f"测点{n}")
    clock.advance(timedelta(seconds=3))
    with statements(rt) as seen:
        report = sweep_once(rt)
    return report.fired, seen


def test_a_ticks_statements_do_not_grow_with_the_escalations_it_fires(
        make_rt: Callable[..., Runtime], clock: ManualClock) -> None:
    """1,000 escalations in a tick were 1,000 counts of the level's earlier messages."""
    small, large = make_rt(), make_rt()
    fired_small, seen_small = tick_firing(small, clock, "quick-escalation", 2)
    fired_large, seen_large = tick_firing(large, clock, "quick-escalation", 40)
    assert (fired_small, fired_large) == (2, 40)
    assert len(seen_large) == len(seen_small)
    assert reads_of(seen_large, "escalation") == reads_of(seen_small, "escalation") == 1


def test_a_letter_ladder_reads_earlier_letters_once_per_batch(
        make_rt: Callable[..., Runtime], clock: ManualClock, tmp_path: Path) -> None:
    books = letter_books(tmp_path)
    small, large = make_rt(playbooks=books), make_rt(playbooks=books)
    fired_small, seen_small = tick_firing(small, clock, "letter-ladder", 2)
    fired_large, seen_large = tick_firing(large, clock, "letter-ladder", 30)
    assert (fired_small, fired_large) == (2, 30)
    assert reads_of(seen_large, "escalation") == reads_of(seen_small, "escalation") == 1
    assert reads_of(seen_large, "document") == reads_of(seen_small, "document") == 1


def letters(rt: Runtime, run_id: int) -> list[tuple[int, int, str, str]]:
    """(level, repeat, title, the body's 第N次督办) of a run's letters, tick by tick."""
    with read_session(rt.db) as session:
        rows = session.exec(select(Document).where(Document.run_id == run_id)).all()
    found = sorted(rows, key=lambda d: (d.created_at, d.level or 0))
    return [(d.level or 0, d.repeat, d.title, re.findall(r"第 \d+ 次督办", d.body)[0])
            for d in found]


def test_letters_of_one_level_keep_their_own_count_step_by_step_in_one_tick(
        make_rt: Callable[..., Runtime], clock: ManualClock, tmp_path: Path) -> None:
    walk_letter_ladder(make_rt(playbooks=letter_books(tmp_path)), clock)


def test_letters_keep_their_own_count_on_postgresql(
        pg_url: str, clock: ManualClock, tmp_path: Path) -> None:
    rt = make_runtime(tmp_path / "pg", clock=clock, db_url=pg_url,
                      playbooks=letter_books(tmp_path))
    assert rt.db.dialect.name == "postgresql"
    try:
        walk_letter_ladder(rt, clock)
    finally:
        rt.db.dispose()


def walk_letter_ladder(rt: Runtime, clock: ManualClock) -> None:
    """Two runs of letter-ladder: levels firing together in one tick for different steps,
    then for the same step after downtime, then after an extension restarts a ladder."""
    a = start(rt, "letter-ladder", "甲")
    clock.advance(timedelta(seconds=3))  # a: level 1 at 2 s
    sweep_once(rt)
    clock.advance(timedelta(seconds=10))  # 13 s: a's level 1 again (12 s)
    sweep_once(rt)
    b = start(rt, "letter-ladder", "乙")  # due at 15 s, level 1 then
    clock.advance(timedelta(seconds=10))
    # 23 s, one tick: a's third 督办函 and its first 约谈 (22 s), b's first 督办函 (15 s).
    assert sweep_once(rt).fired == 3
    assert letters(rt, a) == [
        (1, 0, "督办函：接警登记", "第 1 次督办"),
        (1, 1, "督办函（第2次）：接警登记", "第 2 次督办"),
        (1, 2, "督办函（第3次）：接警登记", "第 3 次督办"),
        (2, 0, "约谈：接警登记", "第 1 次督办"),
    ]
    assert letters(rt, b) == [(1, 0, "督办函：接警登记", "第 1 次督办")]

    # Down for 40 s: each step's missed repeats of each level collapse into one letter, and
    # in that one tick a's two levels and b's two levels each count only their own.
    clock.advance(timedelta(seconds=40))  # 63 s
    assert sweep_once(rt).fired == 4
    assert letters(rt, a)[4:] == [
        (1, 6, "督办函（第4次）：接警登记", "第 4 次督办"),
        (2, 4, "约谈（第2次）：接警登记", "第 2 次督办"),
    ]
    # b's 约谈 first fired in this very tick: no missed repeat of it besides (flows/timers.py).
    assert letters(rt, b)[1:] == [
        (1, 4, "督办函（第2次）：接警登记", "第 2 次督办"),
        (2, 0, "约谈：接警登记", "第 1 次督办"),
    ]

    # An approved extension restarts b's ladder: its next 督办函 is still the third sent.
    with read_session(rt.db) as session:
        step = session.exec(select(StepInstance).where(StepInstance.run_id == b)).one()
    tasks.extend(rt, step_id=step.id or 0, actor="s1-commander",
                 due_at=clock.now() + timedelta(minutes=5), reason="等待燃气公司到场")
    clock.advance(timedelta(minutes=5, seconds=1))
    sweep_once(rt)
    assert letters(rt, b)[3:] == [(1, 0, "督办函（第3次）：接警登记", "第 3 次督办")]
