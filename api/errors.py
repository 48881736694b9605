"""Domain errors to HTTP: 401/403/404/409/422 with the field or reason, 503 while the evidence
store cannot be reached. Never a 500 for bad input; an unexpected error is logged and answered
without internals."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from models.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    SourceInvalid,
    StoreUnavailable,
    Unauthorized,
)

log = logging.getLogger("closeloop.api")


def _field(loc: tuple[object, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg", "")}
                  for e in exc.errors()]
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        return JSONResponse(status_code=422, content={
            "error": "invalid_input", "field": first["field"],
            "detail": f"{first['field']}: {first['message']}", "errors": errors})

    @app.exception_handler(InvalidInput)
    async def _invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        return JSONResponse(status_code=422, content={
            "error": "invalid_input", "field": exc.field, "detail": str(exc),
            "errors": [{"field": exc.field, "message": exc.message}]})

    @app.exception_handler(SourceInvalid)
    async def _source(_: Request, exc: SourceInvalid) -> JSONResponse:
        return JSONResponse(status_code=422, content={
            "error": "playbook_invalid", "detail": str(exc),
            "errors": [e.as_dict() for e in exc.errors]})

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(status_code=404, content={"error": "not_found", "detail": str(exc)})

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse(status_code=409, content={
            "error": "conflict", "detail": str(exc), "current": exc.current})

    @app.exception_handler(Forbidden)
    async def _forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return JSONResponse(status_code=403, content={"error": "forbidden", "detail": exc.reason})

    @app.exception_handler(Unauthorized)
    async def _unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
        return JSONResponse(status_code=401, content={"error": "unauthorized",
                                                      "detail": str(exc)},
                            headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(StoreUnavailable)
    async def _store_unavailable(_: Request, exc: StoreUnavailable) -> JSONResponse:
        # The reason names the store's URL: the log gets it, the caller only what to do.
        log.warning("%s", exc)
        return JSONResponse(status_code=503, content={
            "error": "evidence_store_unavailable",
            "detail": "证据存储暂不可用，请稍后重试 / evidence store unavailable; try again later"},
            headers={"Retry-After": "30"})
