"""`units(type=..., within=run.unit)` in a document template: in expressions `run.unit` is the
unit's id, in templates its view ({id, name, ...}); the helper takes either, so the idiom a
playbook's `for_each` uses also files its paper (before, the document failed to render with
"unhashable type: 'dict'" and was not filed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from factories import books_with
from sqlmodel import select

from flows import lifecycle
from flows.runtime import Runtime
from flows.segments import drain_wakes
from models.db import read_session
from models.documents import Document

BOOK = """\
id: roster-paper
version: 1
title: 社区名单
steps:
  - id: paper
    title: 生成社区名单
    action: document
    template: communities.md.j2
"""
TEMPLATE = """\
{% for u in units(type='community', within=run.unit) %}{{ u.name }}
{% endfor %}共 {{ units(type='community', within=run.unit) | length }} 个社区
"""


def test_a_template_lists_the_runs_communities_with_within_run_unit(
        make_rt: Callable[..., Runtime], tmp_path: Path) -> None:
    rt = make_rt(playbooks=books_with(tmp_path, {
        "roster-paper.yaml": BOOK, "templates/communities.md.j2": TEMPLATE}))
    run = lifecycle.start_run(rt, playbook_id="roster-paper", unit_id="s1", params={},
                              actor="d1-commander")
    drain_wakes(rt)
    with read_session(rt.db) as session:
        [doc] = session.exec(select(Document).where(Document.run_id == run.id)).all()
    assert doc.body == "一社区\n二社区\n共 2 个社区\n"
