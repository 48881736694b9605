"""`closeloop backup DEST`: a consistent copy of the data dir, taken while the server runs.

On the embedded default everything a bureau has is in the data dir: the SQLite database (runs,
tasks, deadlines, the audit trail), the evidence photos, Prefect's history, the imported
spreadsheets and the installation secret (tokens, the roll-call draw). Copying the folder
with `cp` while the server writes can give a database torn between two transactions; this
takes the database through SQLite's online backup (one read transaction: a snapshot, while
the server goes on writing), then copies the evidence the snapshot refers to, each file
checked against the SHA-256 the database recorded, so a photo damaged on disk is found now
and not on the day it is needed.

The backup is itself a data dir: `CLOSELOOP_DATA_DIR=DEST closeloop serve` runs on it, and
restoring is copying it back. All or nothing: it is written beside DEST and renamed into place
at the end, so a DEST that exists is a finished backup; a DEST already holding files is
refused. On PostgreSQL the database is the server's to back up (pg_dump); the rest is copied
the same way. Evidence kept elsewhere (CLOSELOOP_EVIDENCE_URL) is the store's to back up.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from flows.evidence_store import ObjectMissing, open_store, read_at
from flows.locate import zh_en
from models.errors import CloseloopError, StoreUnavailable
from models.settings import Settings

MANIFEST = "backup.json"
DATABASE = "closeloop.db"
PREFECT_DATABASE = Path("prefect") / "prefect.db"
# Small files of the data dir a restored server needs as they were.
_KEPT_FILES = ("secret", "calendar-counted.sha256")


class BackupRefused(CloseloopError):
    """A backup that cannot be taken as asked; nothing was written."""

    error_code = "backup_refused"


@dataclass
class Backup:
    """What a backup holds, as the operator checks it (and backup.json keeps it)."""

    dest: Path
    taken_at: datetime
    database: str  # "sqlite", or "postgresql" (not in the backup: pg_dump)
    counts: dict[str, int] = field(default_factory=dict)  # runs, tasks, audit events, evidence
    evidence_copied: int = 0
    evidence_bytes: int = 0
    evidence_elsewhere: str | None = None  # the store's kind, when not the data dir's own
    problems: list[str] = field(default_factory=list)  # evidence missing or damaged
    files: dict[str, str] = field(default_factory=dict)  # path in the backup -> sha256

    def manifest(self) -> dict[str, Any]:
        return {"taken_at": self.taken_at.isoformat(), "database": self.database,
                "counts": self.counts, "evidence_copied": self.evidence_copied,
                "evidence_bytes": self.evidence_bytes,
                "evidence_elsewhere": self.evidence_elsewhere,
                "problems": self.problems, "files": self.files}


def back_up(settings: Settings, dest: Path, *, now: datetime) -> Backup:
    """Write the backup of `settings`' data dir to `dest`; BackupRefused, with nothing
    written, when `dest` holds files already or its folder cannot be written."""
    dest = dest.resolve()
    _check_dest(settings, dest)
    work = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)  # a backup of this process that died half-way
    work.mkdir(mode=0o700)
    try:
        taken = _write(settings, work, now=now)
        manifest = taken.manifest()
        (work / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n",
                                     encoding="utf-8")
        if dest.exists():
            dest.rmdir()  # empty: checked above
        work.rename(dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    taken.dest = dest
    return taken


def _check_dest(settings: Settings, dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupRefused(zh_en(f"备份目录 {dest} 已存在且不为空；请指定新的目录",
                                  f"{dest} exists and is not empty; name a new folder"))
    data_dir = settings.data_dir.resolve()
    if dest == data_dir or data_dir in dest.parents:
        raise BackupRefused(zh_en(f"备份目录 {dest} 不能在数据目录 {data_dir} 之内",
                                  f"{dest} is inside the data directory {data_dir}"))
    if not dest.parent.is_dir() or not os.access(dest.parent, os.W_OK):
        raise BackupRefused(zh_en(f"无法在 {dest.parent} 中写入备份",
                                  f"cannot write a backup in {dest.parent}"))


def _write(settings: Settings, work: Path, *, now: datetime) -> Backup:
    url = make_url(settings.db_url)
    sqlite = url.get_backend_name() == "sqlite"
    taken = Backup(dest=work, taken_at=now, database="sqlite" if sqlite else url.get_backend_name())
    if sqlite:
        source = Path(url.database or "")
        if not source.is_file():
            raise BackupRefused(zh_en(f"数据库文件 {source} 不存在", f"no database at {source}"))
        _snapshot(source, work / DATABASE)
        reading_url = f"sqlite:///{work / DATABASE}"
    else:
        reading_url = settings.db_url
    engine = create_engine(reading_url)
    try:
        with engine.connect() as db:
            taken.counts = {name: db.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                            for name, table in (("runs", "run"), ("tasks", "step_instance"),
                                                ("audit_events", "audit_event"),
                                                ("evidence", "evidence"))}
            evidence = db.execute(text("SELECT id, sha256, stored_path FROM evidence")).all()
    finally:
        engine.dispose()
    if settings.evidence_url:
        taken.evidence_elsewhere = make_url_kind(settings.evidence_url)
    else:
        _copy_evidence(settings, evidence, work, taken)
    prefect_db = settings.data_dir / PREFECT_DATABASE
    if prefect_db.is_file():
        (work / PREFECT_DATABASE).parent.mkdir()
        _snapshot(prefect_db, work / PREFECT_DATABASE)
    for name in _KEPT_FILES:
        if (settings.data_dir / name).is_file():
            shutil.copy2(settings.data_dir / name, work / name)
    if (settings.data_dir / "imports").is_dir():
        shutil.copytree(settings.data_dir / "imports", work / "imports")
    taken.files = {str(path.relative_to(work)): _sha256(path)
                   for path in sorted(work.rglob("*")) if path.is_file()
                   and not str(path.relative_to(work)).startswith("evidence")}
    return taken


def make_url_kind(evidence_url: str) -> str:
    """The evidence store named without its address or credentials."""
    return evidence_url.split(":", 1)[0].lower()


def _snapshot(source: Path, target: Path) -> None:
    """SQLite's online backup: every page as of one read transaction, whatever the server
    writes meanwhile (WAL lets it go on), then the copy checked."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        [verdict] = dst.execute("PRAGMA quick_check").fetchone()
        if verdict != "ok":
            raise BackupRefused(zh_en(f"数据库副本校验失败：{verdict}",
                                      f"the database copy failed its check: {verdict}"))
    finally:
        dst.close()
        src.close()
    target.chmod(0o600)


def _copy_evidence(settings: Settings, rows: list[Any], work: Path, taken: Backup) -> None:
    store = open_store(settings)
    for evidence_id, sha256, stored_path in rows:
        target = work / "evidence" / sha256[:2] / sha256
        if target.exists():
            continue  # one photo cited twice is one file
        try:
            data = read_at(stored_path, store)
        except (ObjectMissing, StoreUnavailable):
            taken.problems.append(zh_en(f"证据 {evidence_id} 的文件缺失（{stored_path}）",
                                        f"evidence {evidence_id}: file missing"))
            continue
        if hashlib.sha256(data).hexdigest() != sha256:
            taken.problems.append(zh_en(f"证据 {evidence_id} 的文件已损坏或被替换，未复制",
                                        f"evidence {evidence_id}: file damaged or swapped, "
                                        "not copied"))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        taken.evidence_copied += 1
        taken.evidence_bytes += len(data)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
