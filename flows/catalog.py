"""The playbooks a server knows: the current version of each file, plus every compiled version
a run has pinned (kept in the database, so a run finishes on the playbook it started with)."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from flows.loader import LoadContext, declared_id, load_catalog
from flows.spec import Playbook
from models.documents import PlaybookVersion
from models.errors import InvalidInput, NotFound, SourceError
from models.org import OrgChart
from models.writes import insert_ignoring_duplicates


def load_context(playbooks_dir: Path, org: OrgChart) -> LoadContext:
    return LoadContext(
        playbooks_dir=playbooks_dir,
        known_roles=set(org.roles) | {"commander", "manager", "admin"},
        known_unit_types=set(org.unit_types),
        known_channels=set(org.channels),
        known_playbooks=None,
    )


class Catalog:
    def __init__(self, playbooks_dir: Path, org: OrgChart) -> None:
        self.playbooks_dir = playbooks_dir
        self.context = load_context(playbooks_dir, org)
        self._lock = threading.Lock()
        self._pinned: dict[str, Playbook] = {}
        self.current: dict[str, Playbook] = {}
        self.errors: list[SourceError] = []
        self._failed_ids: dict[str, str | None] = {}
        # Playbook id -> why its file failed, for the ids served from their last good version
        # (keep_last_good) instead of the file.
        self.fallbacks: dict[str, str] = {}
        self.reload()

    def reload(self) -> list[SourceError]:
        current, errors = load_catalog(self.playbooks_dir, context=self.context)
        # The id each failed file declares: `gas-leak-2026.yaml` saying `id: gas-leak` is the
        # gas leak playbook that failed, though its file is not named after it.
        failed_ids = {e.file: declared_id(Path(e.file)) for e in errors}
        with self._lock:
            self.current = current
            self.errors = errors
            self._failed_ids = failed_ids
            for pb in current.values():
                self._pinned.setdefault(pb.sha256, pb)
        return errors

    def adopt_pins(self, earlier: Catalog) -> None:
        """Keep the compiled versions `earlier` held (a reload's new catalog): runs of the last
        version go on finding it in memory instead of reading it back from the database."""
        with earlier._lock:
            pins = dict(earlier._pinned)
        with self._lock:
            for sha, pb in pins.items():
                self._pinned.setdefault(sha, pb)

    def keep_last_good(self, db: Engine) -> list[str]:
        """For each playbook whose file failed to load, the version runs last started on,
        from the database, as its current one: an operator's typo in gas-leak.yaml before a
        restart must not leave the commander at 3 a.m. unable to start a gas-leak response.
        That version is what runs already used, templates included; /healthz stays degraded
        and the pages say the file is broken until it is mended. A playbook no run ever used
        has no stored version and stays unstartable. Returns the ids served so."""
        broken = self._not_loaded()
        if not broken:
            return []
        with Session(db) as session:
            rows = session.exec(
                select(PlaybookVersion)
                .where(PlaybookVersion.playbook_id.in_(list(broken)))  # type: ignore[attr-defined]
                .order_by(PlaybookVersion.first_used_at.desc())  # type: ignore[attr-defined]
            ).all()
        latest: dict[str, PlaybookVersion] = {}
        for row in rows:
            latest.setdefault(row.playbook_id, row)
        with self._lock:
            for pid, row in latest.items():
                pb = Playbook.model_validate(row.compiled)
                self.current[pid] = pb
                self._pinned.setdefault(pb.sha256, pb)
                self.fallbacks[pid] = broken[pid]
        return sorted(latest)

    def _not_loaded(self) -> dict[str, str]:
        """Playbook id -> the error that keeps it from loading, for each playbook file of the
        folder that did not load: its own file's first error, else the first of all (a broken
        module it uses reports the module's file, not the playbook's)."""
        if not self.errors:
            return {}
        out: dict[str, str] = {}
        for path in sorted(self.playbooks_dir.glob("*.yaml")):
            pid = declared_id(path) or path.stem
            if pid in self.current or pid in out:
                continue
            own = [e for e in self.errors if e.file == str(path)]
            out[pid] = str((own or self.errors)[0])
        return out

    def get(self, playbook_id: str) -> Playbook:
        try:
            return self.current[playbook_id]
        except KeyError:
            raise NotFound("playbook", playbook_id) from None

    def unknown(self, playbook_id: str) -> InvalidInput:
        """The 422 for a playbook id that is not loaded: a file of that name that failed to
        load says so with its first error (a commander at 3 a.m. learns the playbook is
        broken, not that it does not exist); otherwise the ids that are loaded."""
        shown = playbook_id[:80]
        failed = [e for e in self.errors if playbook_id in (Path(e.file).stem,
                                                            self._failed_ids.get(e.file))]
        if failed:
            first = failed[0]
            return InvalidInput("playbook", f"流程 {shown} 的文件有错误，未能加载，请联系管理员修正"
                                f"（{first}）/ playbook '{shown}' failed to load: {first}")
        known = ", ".join(sorted(self.current))
        more = ""
        if self.errors:
            files = len({e.file for e in self.errors})
            more = f"；另有 {files} 个文件未能加载 / {files} file(s) failed to load"
        return InvalidInput("playbook", f"没有流程 {shown}，可选：{known}{more} / unknown "
                            f"playbook '{shown}' (known: {known})")

    def pin(self, session: Session, playbook: Playbook, now: datetime) -> None:
        """Make sure the compiled playbook is stored before a run refers to it. Two first
        runs of a new version at once (PostgreSQL) both get here: the insert skips the row the
        other wrote, instead of one of them failing on the key."""
        if session.get(PlaybookVersion, playbook.sha256) is None:
            insert_ignoring_duplicates(session, PlaybookVersion, [{
                "sha256": playbook.sha256, "playbook_id": playbook.id,
                "version": playbook.version,
                "compiled": playbook.model_dump(mode="json", by_alias=True),
                "first_used_at": now,
            }])

    def pinned(self, db: Engine | Session, sha256: str) -> Playbook:
        """The compiled playbook a run pinned, from memory or from the database."""
        found = self._pinned.get(sha256)
        if found is not None:
            return found
        if isinstance(db, Session):
            row = db.get(PlaybookVersion, sha256)
        else:
            with Session(db) as session:
                row = session.exec(
                    select(PlaybookVersion).where(PlaybookVersion.sha256 == sha256)
                ).first()
        if row is None:
            raise NotFound("playbook version", sha256)
        pb = Playbook.model_validate(row.compiled)
        with self._lock:
            self._pinned[sha256] = pb
        return pb


def reused_versions(session: Session, catalog: Catalog) -> list[str]:
    """Playbooks whose file changed without a new version number: runs already started on
    the earlier content report the same `playbook_version` as runs of this one, so "version
    1" no longer says which steps a run had. Each as "id v1". Runs are not affected (each
    keeps the compiled playbook it pinned); the author is told to bump the version."""
    current = catalog.current
    if not current:
        return []
    rows = session.exec(select(PlaybookVersion.playbook_id, PlaybookVersion.version,
                               PlaybookVersion.sha256, PlaybookVersion.compiled)
                        .where(PlaybookVersion.playbook_id.in_(list(current)))  # type: ignore[attr-defined]
                        ).all()
    # A version stored before templates were pinned has no source_sha256 (its sha256 is the
    # file's own hash): against it only the file counts, so an upgrade alone names nothing.
    return sorted({f"{pid} v{version}" for pid, version, sha, compiled in rows
                   if pid in current and current[pid].version == version
                   and current[pid].sha256 != sha
                   and ("source_sha256" in compiled or current[pid].source_sha256 != sha)})
