"""Builders for tests and benchmarks: runtimes on fresh databases, tokens, uploads."""

from __future__ import annotations

import io
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlmodel import select

from flows.catalog import load_context
from flows.loader import load_playbook_text
from flows.runtime import Runtime, build_runtime
from models.audit import AuditEvent
from models.clock import Clock
from models.db import read_session
from models.errors import PlaybookInvalid
from models.hazard import Hazard
from models.queries import run_detail
from models.run import Run
from models.settings import Settings
from models.task import SKIPPED, StepInstance

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
ENGINE_PLAYBOOKS = TESTS / "fixtures" / "engine"
SMALL_ORG = TESTS / "fixtures" / "org" / "small.yaml"
SHIPPED_PLAYBOOKS = REPO / "playbooks"
DEMO_ORG = SHIPPED_PLAYBOOKS / "org" / "demo-district.yaml"


def make_runtime(
    data_dir: Path, *, clock: Clock, playbooks: Path = ENGINE_PLAYBOOKS,
    org_text: str | None = None, channel_url: str | None = None, db_url: str | None = None,
    org_path: Path | None = None, settings: dict[str, object] | None = None,
) -> Runtime:
    """A runtime on a fresh database in `data_dir`; `settings` overrides Settings fields (like
    evidence_url)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if org_path is None:
        text = org_text if org_text is not None else SMALL_ORG.read_text(encoding="utf-8")
        if channel_url:
            text = text.replace("json://127.0.0.1:9/duty", channel_url)
        org_path = data_dir / "org.yaml"
        org_path.write_text(text, encoding="utf-8")
    fields: dict[str, object] = {
        "data_dir": data_dir, "playbooks": playbooks, "org": org_path, "database_url": db_url,
        "calendar": SHIPPED_PLAYBOOKS / "calendar" / "cn-workdays.yaml", "secret": "test-secret",
        **(settings or {}),
    }
    built = Settings(**fields, _env_file=None)  # type: ignore[arg-type, call-arg]
    return build_runtime(built, clock=clock)


def books_with(tmp_path: Path, files: dict[str, str]) -> Path:
    """A playbooks folder holding just these files (name -> text; "templates/x.j2" too)."""
    books = tmp_path / "books"
    for name, text in files.items():
        (books / name).parent.mkdir(parents=True, exist_ok=True)
        (books / name).write_text(text, encoding="utf-8")
    return books


def campaign_books(tmp_path: Path) -> Path:
    """The engine's test playbooks plus the shipped 3030 campaign and the templates it sends
    (register-demo hazards join the campaign)."""
    books = tmp_path / "books"
    shutil.copytree(ENGINE_PLAYBOOKS, books)
    shutil.copy(SHIPPED_PLAYBOOKS / "campaign-3030.yaml", books)
    for template in ("campaign-shortfall.md.j2", "_report.j2"):
        shutil.copy(SHIPPED_PLAYBOOKS / "templates" / template, books / "templates")
    return books


def png_bytes(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    """A real (tiny) PNG of one colour, so evidence checks see a photo, not a stand-in
    (distinct colours are distinct photos to them)."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def evidence_file(name: str) -> bytes:
    """A file made by a real tool (tests/fixtures/evidence/README.md): a HEIC photo, an MP4
    or a PDF as the upload checks must take them."""
    return (TESTS / "fixtures" / "evidence" / name).read_bytes()


def pdf_bytes(pages: int = 1, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A real PDF as Pillow writes one (a scanned page of one colour; `pages` appended as
    incremental updates, the way a PDF grows when it is signed or filled in)."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30), rgb).save(out, format="PDF")
    for page in range(1, pages):
        Image.new("RGB", (40, 30), (page * 40 % 256, 90, 90)).save(out, format="PDF",
                                                                   append=True)
    return out.getvalue()


def before_after(ids: list[str]) -> dict[str, str]:
    """`evidence_labels` for a rectification's photos: the first 整改前, the others 整改后."""
    return {ev_id: "整改前" if i == 0 else "整改后" for i, ev_id in enumerate(ids)}


def run_steps(rt: Runtime, run_id: int) -> list[StepInstance]:
    """A run's step rows in order, then the steps it passed over (`Run.skipped`, which have no
    row) as unsaved instances with status `skipped` and no id, so tests can read both alike."""
    with read_session(rt.db) as session:
        rows, _, _ = run_detail(session, run_id=run_id)
        run = session.get(Run, run_id)
        passed_over = list(run.skipped or []) if run else []
    return [*rows, *(StepInstance(id=None, run_id=run_id, step_key=key, title=key,
                                  action="", status=SKIPPED) for key in passed_over)]


def refused(rt: Runtime, text: str, filename: str = "bad.yaml") -> str:
    """The loader's errors for playbook `text` against rt's org chart, one per line; fails the
    test if the playbook loads."""
    context = load_context(rt.settings.playbooks, rt.org)  # as the server loads them
    try:
        load_playbook_text(text, filename=filename, context=context)
    except PlaybookInvalid as caught:
        return "\n".join(str(e) for e in caught.errors)
    raise AssertionError(f"{filename} loaded; expected it to be refused")


def small_org_without_c2() -> str:
    """The small test org with community c2 (and its people) cut out: an org file edited
    while runs of c2 are still open."""
    text = SMALL_ORG.read_text(encoding="utf-8")
    c2 = text[text.index("          - id: c2\n"):text.index("      - id: s2\n")]
    return text.replace(c2, "")


def run_row(rt: Runtime, run_id: int) -> Run:
    """The run as stored now."""
    with read_session(rt.db) as session:
        run = session.get(Run, run_id)
        assert run is not None, f"no run {run_id}"
        return run


def step_row(rt: Runtime, run_id: int, key: str) -> StepInstance:
    """The one instance of step `key` of the run (not for fan-out steps)."""
    with read_session(rt.db) as session:
        return session.exec(select(StepInstance).where(
            StepInstance.run_id == run_id, StepInstance.step_key == key)).one()


def race(*calls: Callable[[], object], timeout: float = 120) -> list[object]:
    """Run the calls in threads released at the same instant; results (or the exceptions they
    raised) in call order, for the caller to judge."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def worker(i: int, call: Callable[[], object]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:  # collected and asserted on by the caller
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    return results


def seed_hazards(rt: Runtime, hazards: list[dict[str, Any]], *, playbook_id: str,
                 first_id: int = 1000) -> None:
    """Register rows (and their runs) written straight into the database, for volume and
    dates: `unit` plus any Hazard field (`street` defaults to the small org's street of the
    unit); the run starts when the hazard was found."""
    streets = {"c1": "s1", "c2": "s1", "s1": "s1", "s2": "s2"}
    now = rt.clock.now()
    runs, rows = [], []
    for i, h in enumerate(hazards, start=first_id):
        h = dict(h)
        unit = h.pop("unit")
        street = h.pop("street", streets.get(unit))
        runs.append({"id": i, "playbook_id": playbook_id, "playbook_version": 1,
                     "playbook_sha": "0" * 64, "title": f"隐患{i}", "unit_id": unit,
                     "status": "running", "params": {}, "started_by": "d1-commander",
                     "started_at": h.get("found_at", now), "segments": 0})
        rows.append({"run_id": i, "code": f"YH{i:06d}", "playbook_id": playbook_id,
                     "unit_id": unit, "street_id": street, "source": "检查发现",
                     "grade": "一般", "category": None, "location": f"测试地点{i}",
                     "description": None, "enterprise": None, "found_at": now,
                     "found_by": None, "due_at": None, "original_due_at": None,
                     "status": "整改中", "closed_at": None, "plan": {},
                     "campaign_run_id": None, "import_id": None, "updated_at": now, **h})
    with rt.db.begin() as conn:
        conn.execute(insert(Run.__table__), runs)  # type: ignore[arg-type]
        conn.execute(insert(Hazard.__table__), rows)  # type: ignore[arg-type]


def run_events(rt: Runtime, run_id: int, action: str) -> list[AuditEvent]:
    """The run's timeline events of one action, oldest first."""
    with read_session(rt.db) as session:
        return list(session.exec(select(AuditEvent).where(
            AuditEvent.run_id == run_id, AuditEvent.action == action)
            .order_by(AuditEvent.id)).all())  # type: ignore[arg-type]


def start_one_and_bulk(one: Runtime, bulk: Runtime, playbook_id: str,
                       inputs: list[tuple[str, dict[str, Any]]]) -> Any:
    """The same runs started twice, by d1-admin: in `one` through start_run, run by run, and in
    `bulk` through bulk_start in one transaction, so a test compares what each wrote. Returns
    bulk_start's result."""
    from flows import lifecycle
    from flows.bulk_plan import NewRun
    from flows.bulk_start import bulk_start
    from flows.params import validate_params
    from models.db import session_scope
    for unit, params in inputs:
        lifecycle.start_run(one, playbook_id=playbook_id, unit_id=unit, params=params,
                            actor="d1-admin")
    playbook = bulk.catalog.get(playbook_id)
    with session_scope(bulk.db) as session:
        return bulk_start(session, bulk, playbook=playbook, actor="d1-admin",
                          runs=[NewRun(u, validate_params(playbook, p)) for u, p in inputs])


# What an assignee fills in for each declared output type when a test only needs the step done.
TYPED_ANSWERS: dict[str, Any] = {
    "bool": True, "int": 120, "string": "已落实", "datetime": "2026-03-02T08:30:00+08:00",
    "list": ["已落实"]}


def complete_answered(rt: Runtime, row: StepInstance, **given: Any) -> StepInstance:
    """The row's first assignee completes it: every required output answered by its type
    (TYPED_ANSWERS) unless `given`, with photos of their own when the step asks for them. A
    second required count is 0, so counts that must add up (a return's returned + still
    sheltered = the 120 moved) do."""
    from flows import tasks
    from flows.evidence import store_evidence

    run = run_row(rt, row.run_id)
    spec = rt.catalog.pinned(rt.db, run.playbook_sha).step(row.step_key)
    who = row.assignees[0]
    outputs = {name: TYPED_ANSWERS[o.type] for name, o in spec.outputs.items() if o.required}
    counts = [name for name, o in spec.outputs.items() if o.required and o.type == "int"]
    outputs |= {name: 0 for name in counts[1:]}
    wanted = spec.evidence.min_photos if spec.evidence else 0
    photos = [store_evidence(rt, data=png_bytes(2 + i, 2), filename="现场.png",
                             uploaded_by=who).id for i in range(wanted)]
    # Labelled in the order the step names them (整改前, then 整改后 for the rest).
    kinds = spec.evidence.labels if spec.evidence else []
    labels = {ev_id: kinds[min(i, len(kinds) - 1)] for i, ev_id in enumerate(photos)} \
        if kinds else {}
    return tasks.complete(rt, step_id=row.id or 0, actor=who, note="已落实",
                          outputs=outputs | given, evidence=photos, evidence_labels=labels)


def wait_for(check: Callable[[], object], timeout: float = 20.0) -> None:
    """Poll `check` until it is true (work of a background thread: the segment runner, a
    server), failing the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def steps_seen_by(client: Any, headers: dict[str, str], run_id: int) -> dict[str, dict[str, Any]]:
    """A run's steps as GET /api/runs/{id} answers them (to `headers`' person), by step id."""
    r = client.get(f"/api/runs/{run_id}", headers=headers)
    assert r.status_code == 200, r.text
    return {s["step"]: s for s in r.json()["steps"]}
