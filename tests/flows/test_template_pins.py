"""A template edited, broken or removed while runs of its playbook are in flight (SPEC §2: a
running run keeps the playbook version it started with): the runs already under way render
their papers with the template as it was when they started; runs started after the edit get
the new text; and an upgrade alone names no playbook as changed without a new version."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from factories import (
    DEMO_ORG,
    ENGINE_PLAYBOOKS,
    SHIPPED_PLAYBOOKS,
    make_runtime,
    png_bytes,
    run_steps,
)
from sqlmodel import select

from flows import lifecycle, tasks
from flows.catalog import reused_versions
from flows.evidence import store_evidence
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.audit import AuditEvent
from models.clock import ManualClock
from models.db import read_session, session_scope
from models.documents import Document, PlaybookVersion
from models.run import Run

TEMPLATE = "short-report.md.j2"


def start(rt: Runtime) -> int:
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "一社区3号楼"}, actor="s1-commander")
    drain_wakes(rt)
    return run.id or 0


def walk_to_the_record(rt: Runtime, run_id: int) -> str:
    """Hand in and verify the inspection, so the run files its record; the record's text."""
    steps = {s.step_key: s for s in run_steps(rt, run_id)}
    tasks.complete(rt, step_id=steps["receive"].id or 0, actor="s1-duty")
    drain_wakes(rt)
    inspect = next(s for s in run_steps(rt, run_id) if s.step_key == "inspect")
    photo = store_evidence(rt, data=png_bytes(rgb=(run_id % 256, 0, 0)), filename="site.png",
                           uploaded_by="c1-grid").id
    tasks.complete(rt, step_id=inspect.id or 0, actor="c1-grid", note="已核查", evidence=[photo])
    tasks.verify(rt, step_id=inspect.id or 0, actor="s1-insp1", approve=True, note="属实")
    drain_wakes(rt)
    with read_session(rt.db) as session:
        docs = session.exec(select(Document).where(Document.run_id == run_id)).all()
        failed = session.exec(select(AuditEvent).where(
            AuditEvent.run_id == run_id, AuditEvent.action == "render_failed")).all()
    assert failed == []
    assert len(docs) == 1
    return docs[0].body


def test_runs_in_flight_keep_their_template_and_new_runs_get_the_edit(
        tmp_path: Path, clock: ManualClock) -> None:
    books = tmp_path / "books"
    shutil.copytree(ENGINE_PLAYBOOKS, books)
    rt = make_runtime(tmp_path / "data", clock=clock, playbooks=books)
    before = start(rt)
    rt.db.dispose()

    # Edited into a broken template while the run is open, then the server restarts.
    (books / "templates" / TEMPLATE).write_text("{% if %}坏了", encoding="utf-8")
    broken = make_runtime(tmp_path / "data", clock=clock, playbooks=books)
    assert "核查说明：已核查" in walk_to_the_record(broken, before)
    broken.db.dispose()

    # Fixed with new wording: a run started now gets it; the earlier run kept the old one.
    (books / "templates" / TEMPLATE).write_text("新版首报：{{ params.location }}\n",
                                                encoding="utf-8")
    fixed = make_runtime(tmp_path / "data", clock=clock, playbooks=books)
    after = start(fixed)
    assert walk_to_the_record(fixed, after) == "新版首报：一社区3号楼\n"
    with read_session(fixed.db) as session:
        shas = {pv.sha256 for pv in session.exec(select(PlaybookVersion).where(
            PlaybookVersion.playbook_id == "quick-escalation")).all()}
        assert len(shas) == 2  # the template is part of the version
        assert reused_versions(session, fixed.catalog) == ["quick-escalation v1"]


def test_a_version_stored_before_templates_were_pinned_renders_from_the_folder(
        tmp_path: Path, clock: ManualClock) -> None:
    """An upgrade: a run pinned a version without templates (its sha256 the file's own hash).
    It renders from the folder as before, and the file unchanged is not named as reused."""
    rt = make_runtime(tmp_path / "data", clock=clock)
    run_id = start(rt)
    pb = rt.catalog.current["quick-escalation"]
    old = pb.model_dump(mode="json", by_alias=True)
    del old["templates"], old["source_sha256"]
    old["sha256"] = pb.source_sha256
    with session_scope(rt.db) as session:
        session.add(PlaybookVersion(sha256=pb.source_sha256 or "", playbook_id=pb.id,
                                    version=pb.version, compiled=old,
                                    first_used_at=clock.now()))
        run = session.get(Run, run_id)
        assert run is not None
        run.playbook_sha = pb.source_sha256 or ""
        session.add(run)
    rt.db.dispose()
    again = make_runtime(tmp_path / "data", clock=clock)
    with read_session(again.db) as session:
        assert reused_versions(session, again.catalog) == []
    assert "核查说明：已核查" in walk_to_the_record(again, run_id)


def test_a_supervision_letter_edited_while_a_hazard_is_open_keeps_its_text(
        tmp_path: Path, clock: ManualClock) -> None:
    """The 督办函 a level of the ladder files (sweeper) is the run's version's too."""
    books = tmp_path / "books"
    shutil.copytree(SHIPPED_PLAYBOOKS, books)
    rt = make_runtime(tmp_path / "data", clock=clock, playbooks=books, org_path=DEMO_ORG)
    run = lifecycle.start_run(rt, playbook_id="hazard-3030", unit_id="liuhe", actor="wang-qiang",
                              params={"location": "六和社区和平路18号", "grade": "一般",
                                      "code": "PS-2026-0302-001"})
    drain_wakes(rt)
    rt.db.dispose()
    (books / "templates" / "supervision-letter.md.j2").write_text("{{ 未知 }", encoding="utf-8")
    edited = make_runtime(tmp_path / "data", clock=clock, playbooks=books, org_path=DEMO_ORG)
    rectify = next(s for s in run_steps(edited, run.id or 0) if s.step_key == "rectify")
    assert rectify.due_at is not None
    clock.set(rectify.due_at + timedelta(minutes=1))
    sweep_once(edited)
    with read_session(edited.db) as session:
        [letter] = session.exec(select(Document).where(Document.run_id == run.id)).all()
    assert letter.template == "supervision-letter.md.j2"
    assert letter.body.startswith("# 督办函") and "六和社区和平路18号" in letter.body
