"""Playbooks: list, read, validate."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentPerson, RuntimeDep
from api.playbook_view import playbook_json
from flows.loader import load_playbook_text
from models.errors import InvalidInput

router = APIRouter(prefix="/api/playbooks", tags=["playbooks"])


@router.get("")
def list_(rt: RuntimeDep, person: CurrentPerson) -> dict[str, Any]:
    """Playbooks loaded from the playbooks folder, and files that failed to load; a playbook
    whose file failed but that runs used before is listed from that last good version, with
    `broken_file` saying what is wrong with the file."""
    data = [
        {"id": pb.id, "version": pb.version, "title": pb.title, "title_en": pb.title_en,
         "kind": pb.kind, "steps": len(pb.steps), "stages": pb.stages,
         "stage_titles": pb.stage_titles,
         # Its file failed to load: this is the version its runs last used (why, here).
         "broken_file": rt.catalog.fallbacks.get(pb.id)}
        for pb in sorted(rt.catalog.current.values(), key=lambda p: p.id)
    ]
    return {"data": data, "count": len(data), "errors": [e.as_dict() for e in rt.catalog.errors]}


@router.get("/{playbook_id}")
def read(playbook_id: str, rt: RuntimeDep, person: CurrentPerson) -> dict[str, Any]:
    """The compiled playbook (modules spliced in, steps in order), as api/playbook_view.py
    shapes it for the pages."""
    return playbook_json(rt.catalog.get(playbook_id))


@router.post("/validate")
async def validate(request: Request, rt: RuntimeDep, person: CurrentPerson) -> dict[str, Any]:
    """Validate a playbook sent as the YAML body: 200 when valid, else 422 with every error."""
    raw = await request.body()  # at most MAX_BODY_BYTES: api/body_guard.py stops a larger one
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("body", "流程文件须为 UTF-8 文本 / playbook must be UTF-8 text") from exc
    name = request.query_params.get("filename", "playbook.yaml")
    # Loading is CPU-bound (a big playbook takes a second or more): in a worker thread, so
    # every other request is answered meanwhile instead of waiting on the event loop.
    # Waiting for the turn holds no worker thread (they are shared with every other route:
    # forty authors blocked in them starved everyone's inbox); only the loading does.
    deadline = time.monotonic() + WAIT_S
    while not _VALIDATING.acquire(blocking=False):
        if time.monotonic() >= deadline:
            raise HTTPException(
                status_code=429, headers={"Retry-After": "10"},
                detail="另一个流程正在校验，请几秒后重试 / another playbook is being validated; "
                       "try again in a few seconds")
        await asyncio.sleep(0.05)
    try:
        pb = await run_in_threadpool(
            load_playbook_text, text, filename=name, context=rt.catalog.context)
    finally:
        _VALIDATING.release()
    return {"valid": True, "id": pb.id, "version": pb.version, "steps": len(pb.steps)}


# One validation at a time. Loading a large playbook is seconds of pure-Python CPU: a dozen at
# once (anyone signed in may validate) held the interpreter so that a grid worker's inbox took
# 11 s to answer. One at a time, the rest of the server keeps its pace; a second author waits
# a little, then is told to try again.
_VALIDATING = threading.BoundedSemaphore(1)
WAIT_S = 10.0

