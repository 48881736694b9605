"""Evidence upload and download."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.deps import MAX_ROW, CurrentPerson, RuntimeDep
from api.uploads import sent_name
from flows import evidence_preview, tasks
from flows.access import can_read_step
from flows.evidence import read_evidence, store_evidence
from flows.runtime import Runtime
from models.db import read_session
from models.documents import Evidence
from models.errors import Forbidden, NotFound
from models.run import Run
from models.task import StepInstance

router = APIRouter(prefix="/api/evidence", tags=["evidence"])


class EvidenceUse(BaseModel):
    """A task of another run already handed in with the same photo; all None when the caller
    may not read it."""

    task_id: int | None
    task_title: str | None
    run_id: int | None
    run_title: str | None


class EvidencePublic(BaseModel):
    id: str
    sha256: str
    size: int
    content_type: str
    filename: str
    reused: list[EvidenceUse] = Field(
        default_factory=list,
        description="With `task`: the tasks of other runs already handed in with the same "
                    "content, for which completing `task` citing this file will be refused.")
    warning: str | None = Field(default=None, description="What `reused` means, to show the "
                                "person (Chinese first); none when nothing is wrong.")


def _store(rt: Runtime, data: bytes, filename: str, person: str,
           task: int | None) -> EvidencePublic:
    if task is not None:  # before storing: a task they may not read is refused, not hinted at
        tasks.require_readable(rt, step_id=task, person=person)
    row = store_evidence(rt, data=data, filename=filename, uploaded_by=person)
    uses = (tasks.earlier_uses(rt, step_id=task, sha256=row.sha256, person=person)
            if task is not None else [])
    return EvidencePublic(id=row.id, sha256=row.sha256, size=row.size,
                          content_type=row.content_type, filename=row.filename,
                          reused=[EvidenceUse(**vars(u)) for u in uses],
                          warning=tasks.reuse_warning(uses))


@router.post("", status_code=201, response_model=EvidencePublic)
async def upload(rt: RuntimeDep, person: CurrentPerson,
                 file: Annotated[UploadFile, File()],
                 task: Annotated[int | None, Form(ge=1, le=MAX_ROW)] = None) -> EvidencePublic:
    """Upload a photo or document; attach it by id when completing a task. Given the `task` it
    is for, the answer warns at once (`reused`, `warning`) when the same photo was already
    handed in for a task of another run, which completing that task would refuse."""
    data = await file.read(rt.settings.max_evidence_bytes + 1)
    # In a worker thread: storing may wait on an object store (up to its timeout), which must
    # not hold up every other request on the event loop.
    return await run_in_threadpool(_store, rt, data, sent_name(file, "upload"), person, task)


def _readable(rt: Runtime, evidence_id: str, person: str) -> Evidence:
    with read_session(rt.db) as session:
        row = session.get(Evidence, evidence_id)
        if row is None:
            raise NotFound("evidence", evidence_id)
        step = session.get(StepInstance, row.step_id) if row.step_id else None
        run = session.get(Run, step.run_id) if step is not None else None
    # Whoever may read the run sees its steps (flows.access.can_read_step), so its photos too.
    if row.uploaded_by != person and (step is None or not can_read_step(
            rt.org, person, step, run_unit_id=run.unit_id if run else None)):
        raise Forbidden("无权查看该证据 / evidence belongs to another unit")
    return row


@router.get("/{evidence_id}")
def download(evidence_id: str, rt: RuntimeDep, person: CurrentPerson) -> Response:
    row = _readable(rt, evidence_id, person)
    # The stored type, never the browser's guess from the bytes; shown in the page, saved
    # under the name it was uploaded with.
    name = quote(row.filename or row.id, safe="")
    return Response(read_evidence(row, rt), media_type=row.content_type, headers={
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f"inline; filename*=UTF-8''{name}"})


@router.get("/{evidence_id}/preview",
            responses={404: {"description": "no preview: open the original"}})
def preview(evidence_id: str, rt: RuntimeDep, person: CurrentPerson) -> Response:
    """A photo as a JPEG of at most 800 px, for thumbnails on a phone (the original is
    `GET /api/evidence/{id}`); 404 for a file that has no preview (HEIC, PDF, video)."""
    row = _readable(rt, evidence_id, person)
    # Never changes (the original is addressed by its hash): the phone keeps it.
    return Response(evidence_preview.preview(row, rt), media_type="image/jpeg", headers={
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=31536000, immutable"})
