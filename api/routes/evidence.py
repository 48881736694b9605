"""Evidence upload and download."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from api.deps import CurrentPerson, RuntimeDep
from api.uploads import sent_name
from flows.access import can_read_step
from flows.evidence import read_evidence, store_evidence
from models.db import read_session
from models.documents import Evidence
from models.errors import Forbidden, NotFound
from models.run import Run
from models.task import StepInstance

router = APIRouter(prefix="/api/evidence", tags=["evidence"])


class EvidencePublic(BaseModel):
    id: str
    sha256: str
    size: int
    content_type: str
    filename: str


@router.post("", status_code=201, response_model=EvidencePublic)
async def upload(rt: RuntimeDep, person: CurrentPerson,
                 file: Annotated[UploadFile, File()]) -> EvidencePublic:
    """Upload a photo or document; attach it by id when completing a task."""
    data = await file.read(rt.settings.max_evidence_bytes + 1)
    # In a worker thread: storing may wait on an object store (up to its timeout), which must
    # not hold up every other request on the event loop.
    row = await run_in_threadpool(store_evidence, rt, data=data,
                                  filename=sent_name(file, "upload"), uploaded_by=person)
    return EvidencePublic(id=row.id, sha256=row.sha256, size=row.size,
                          content_type=row.content_type, filename=row.filename)


@router.get("/{evidence_id}")
def download(evidence_id: str, rt: RuntimeDep, person: CurrentPerson) -> Response:
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
    # The stored type, never the browser's guess from the bytes; shown in the page, saved
    # under the name it was uploaded with.
    name = quote(row.filename or row.id, safe="")
    return Response(read_evidence(row, rt), media_type=row.content_type, headers={
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f"inline; filename*=UTF-8''{name}"})
