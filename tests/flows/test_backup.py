"""`closeloop backup` (flows/backup.py): a snapshot of the database taken while a writer holds a
transaction open, the evidence copied and checked against its recorded SHA-256, and a backup
that is itself a data dir: a server built on it after the original folder is gone finds the
runs and the photos. Refusals write nothing; a damaged photo is named and left out."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from factories import ENGINE_PLAYBOOKS, REPO, SMALL_ORG, make_runtime, png_bytes

from flows import lifecycle
from flows.backup import BackupRefused, back_up
from flows.evidence import read_evidence, store_evidence
from flows.runtime import Runtime
from models.clock import ManualClock
from models.db import read_session
from models.documents import Evidence
from models.run import Run

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def runtime(data_dir: Path) -> Runtime:
    # The org chart outside the data dir, as an installation keeps it.
    return make_runtime(data_dir, clock=ManualClock(NOW), org_path=SMALL_ORG)


def start(rt: Runtime) -> int:
    return lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                               params={"location": "一社区3号楼"}, actor="s1-commander").id or 0


def test_the_backup_is_a_data_dir_that_outlives_the_original(tmp_path: Path) -> None:
    rt = runtime(tmp_path / "data")
    run_id = start(rt)
    photo = png_bytes(3, 2)
    evidence = store_evidence(rt, data=photo, filename="整改后.png", uploaded_by="c1-grid")
    store_evidence(rt, data=photo, filename="again.png", uploaded_by="c1-grid")  # same bytes

    taken = back_up(rt.settings, tmp_path / "backup", now=NOW)
    rt.db.dispose()
    assert taken.counts["runs"] == 1 and taken.counts["evidence"] == 2
    # One photo cited twice is one file, checked.
    assert (taken.evidence_copied, taken.evidence_bytes, taken.problems) == (1, len(photo), [])
    manifest = json.loads((tmp_path / "backup" / "backup.json").read_text(encoding="utf-8"))
    assert manifest["counts"] == taken.counts and "closeloop.db" in manifest["files"]

    # The disk is lost; the server is brought up on the backup.
    shutil.rmtree(tmp_path / "data")
    restored = runtime(tmp_path / "backup")
    with read_session(restored.db) as session:
        run = session.get(Run, run_id)
        row = session.get(Evidence, evidence.id)
    assert run is not None and run.status == "running"
    assert row is not None and str(tmp_path / "data") in row.stored_path  # the old folder
    assert read_evidence(row, restored) == photo  # found by its content address
    restored.db.dispose()


def test_a_writer_mid_transaction_neither_blocks_the_backup_nor_leaks_into_it(
        tmp_path: Path) -> None:
    rt = runtime(tmp_path / "data")
    start(rt)
    writer = sqlite3.connect(tmp_path / "data" / "closeloop.db", timeout=0)
    writer.execute("BEGIN IMMEDIATE")  # the server, half-way through a write
    writer.execute("UPDATE run SET title = '写到一半' WHERE id = 1")
    try:
        back_up(rt.settings, tmp_path / "backup", now=NOW)
    finally:
        writer.rollback()
        writer.close()
    copy = sqlite3.connect(tmp_path / "backup" / "closeloop.db")
    [(title,)] = copy.execute("SELECT title FROM run").fetchall()
    assert title != "写到一半"
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    copy.close()
    rt.db.dispose()


def test_a_damaged_photo_is_named_and_left_out_the_rest_is_kept(tmp_path: Path) -> None:
    rt = runtime(tmp_path / "data")
    good = store_evidence(rt, data=png_bytes(2, 2), filename="a.png", uploaded_by="c1-grid")
    bad = store_evidence(rt, data=png_bytes(4, 4), filename="b.png", uploaded_by="c1-grid")
    Path(bad.stored_path).write_bytes(b"swapped")
    taken = back_up(rt.settings, tmp_path / "backup", now=NOW)
    assert taken.evidence_copied == 1
    assert taken.problems == [f"证据 {bad.id} 的文件已损坏或被替换，未复制 / evidence {bad.id}: "
                              "file damaged or swapped, not copied"]
    kept = tmp_path / "backup" / "evidence" / good.sha256[:2] / good.sha256
    assert kept.read_bytes() == png_bytes(2, 2)
    assert not (tmp_path / "backup" / "evidence" / bad.sha256[:2]).exists()
    rt.db.dispose()


def test_a_folder_with_files_or_inside_the_data_dir_is_refused_and_nothing_written(
        tmp_path: Path) -> None:
    rt = runtime(tmp_path / "data")
    used = tmp_path / "used"
    used.mkdir()
    (used / "note.txt").write_text("x", encoding="utf-8")
    with pytest.raises(BackupRefused, match="已存在且不为空"):
        back_up(rt.settings, used, now=NOW)
    assert sorted(p.name for p in used.iterdir()) == ["note.txt"]
    with pytest.raises(BackupRefused, match="不能在数据目录"):
        back_up(rt.settings, tmp_path / "data" / "b", now=NOW)
    assert not (tmp_path / "data" / "b").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers
    rt.db.dispose()


def test_the_command_backs_up_and_a_server_starts_on_the_copy(tmp_path: Path) -> None:
    rt = runtime(tmp_path / "data")
    start(rt)
    rt.db.dispose()
    env = {"CLOSELOOP_DATA_DIR": str(tmp_path / "data"), "CLOSELOOP_ORG": str(SMALL_ORG),
           "CLOSELOOP_PLAYBOOKS": str(ENGINE_PLAYBOOKS), "CLOSELOOP_SECRET": "test-secret",
           "PYTHONIOENCODING": "utf-8", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "api.cli", "backup", str(tmp_path / "b")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"备份已写入 {tmp_path / 'b'} / backup written to " \
                                          f"{tmp_path / 'b'}"
    assert "流程实例 1" in done.stdout
    again = subprocess.run([sys.executable, "-m", "api.cli", "backup", str(tmp_path / "b")],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "已存在且不为空" in again.stderr
    swept = subprocess.run([sys.executable, "-m", "api.cli", "sweep", "--once"], cwd=REPO,
                           env=env | {"CLOSELOOP_DATA_DIR": str(tmp_path / "b")},
                           capture_output=True, text=True, timeout=120)
    assert swept.returncode == 0, swept.stderr
    assert json.loads(swept.stdout)["examined"] >= 0


def test_on_postgresql_the_rest_is_backed_up_and_the_database_left_to_pg_dump(
        tmp_path: Path, pg_url: str) -> None:
    rt = make_runtime(tmp_path / "data", clock=ManualClock(NOW), org_path=SMALL_ORG,
                      db_url=pg_url)
    start(rt)
    photo = store_evidence(rt, data=png_bytes(5, 5), filename="p.png", uploaded_by="c1-grid")
    taken = back_up(rt.settings, tmp_path / "backup", now=NOW)
    assert taken.database == "postgresql"
    assert taken.counts["runs"] == 1 and taken.evidence_copied == 1
    assert not (tmp_path / "backup" / "closeloop.db").exists()
    assert (tmp_path / "backup" / "evidence" / photo.sha256[:2] / photo.sha256).is_file()
    rt.db.dispose()
