"""Domain errors to HTTP: 401/403/404/409/422 with the field or reason, 409 for a stored evidence
file that no longer holds what was uploaded, 503 while the evidence store cannot be reached.
Never a 500 for bad input; an unexpected error is logged and answered without internals."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, InternalError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import pages
from models.errors import (
    ConcurrentRuns,
    Conflict,
    EvidenceDamaged,
    ExtensionPastDeadline,
    Forbidden,
    InvalidInput,
    NoPreview,
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


# Pydantic's messages are English; a bureau user reads the Chinese first. Keyed by pydantic's
# error type (stable across versions, unlike its wording); {name} is filled from the error's ctx.
_ZH_BY_TYPE = {
    "missing": "必填",
    "extra_forbidden": "不认识的字段",
    "bool_type": "应为 true 或 false", "bool_parsing": "应为 true 或 false",
    "int_type": "应为整数", "int_parsing": "应为整数", "int_from_float": "应为整数",
    "float_type": "应为数字", "float_parsing": "应为数字",
    "string_type": "应为文本",
    "string_too_short": "至少 {min_length} 个字符", "string_too_long": "最多 {max_length} 个字符",
    "too_short": "至少 {min_length} 项", "too_long": "最多 {max_length} 项",
    "greater_than": "应大于 {gt}", "greater_than_equal": "应不小于 {ge}",
    "less_than": "应小于 {lt}", "less_than_equal": "应不大于 {le}",
    "datetime_type": "应为日期时间", "datetime_parsing": "日期时间格式不对",
    "datetime_from_date_parsing": "日期时间格式不对",
    "date_type": "应为日期", "date_parsing": "日期格式不对", "date_from_datetime_parsing":
    "日期格式不对",
    "timezone_aware": "须带时区（如 +08:00）",
    "literal_error": "只能是 {expected}", "enum": "只能是 {expected}",
    "list_type": "应为列表", "dict_type": "应为对象", "model_type": "应为对象",
    # A body that is JSON but not an object ("[]", "1"), or not JSON at all (text/plain): the
    # model is then validated from a list or from bytes.
    "model_attributes_type": "应为 JSON 对象", "mapping_type": "应为对象",
    "json_invalid": "不是合法的 JSON", "json_type": "不是合法的 JSON",
    "string_unicode": "应为 UTF-8 文本", "string_pattern_mismatch": "格式不对",
    "int_parsing_size": "整数超出范围", "finite_number": "应为有限数字",
    "multiple_of": "应为 {multiple_of} 的倍数", "none_required": "应为空（null）",
    "uuid_parsing": "应为 UUID", "uuid_type": "应为 UUID",
    "url_parsing": "应为网址", "url_type": "应为网址", "url_scheme": "网址协议不对",
    "time_parsing": "时间格式不对", "time_type": "应为时间",
    "time_delta_parsing": "时长格式不对", "time_delta_type": "应为时长",
    "decimal_parsing": "应为数字", "decimal_type": "应为数字",
    "set_type": "应为列表", "tuple_type": "应为列表", "bytes_type": "应为文本",
    "timezone_naive": "不能带时区", "date_past": "应为过去的日期", "date_future": "应为将来的日期",
    "datetime_past": "应为过去的时间", "datetime_future": "应为将来的时间",
    # A validator's own ValueError: its words are English unless it wrote them Chinese first
    # (then they are shown as they are, see _message).
    "value_error": "取值不对", "assertion_error": "取值不对",
}
_CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")
_VALIDATOR_PREFIXES = ("Value error, ", "Assertion failed, ")

# Statuses Starlette itself answers (no route for the path, a method the route does not take),
# in the API's shape and Chinese first, like every other error.
_ZH_BY_STATUS = {400: "请求无法解析", 404: "接口不存在", 405: "该接口不支持此请求方法"}


def _message(error: dict[str, object]) -> str:
    english = str(error.get("msg", ""))
    if english.startswith(_VALIDATOR_PREFIXES):
        said = english.split(", ", 1)[1]
        if _CJK.match(said):  # a validator that speaks Chinese first already
            return said
        if said.startswith("Expected UploadFile"):  # FastAPI's own check of a File() field
            return ("须为上传的文件（表单中的文件部分），不能是文本 / expected an uploaded file, "
                    "not a text field")
    zh = _ZH_BY_TYPE.get(str(error.get("type", "")))
    if zh is None:
        return english
    ctx = error.get("ctx")
    try:
        zh = zh.format(**ctx) if isinstance(ctx, dict) else zh
    except (KeyError, IndexError):  # a ctx without the name: the plain words still help
        zh = zh.split("{", 1)[0].strip() or zh
    return f"{zh} / {english}"


def invalid_input(field: str, message: str,
                  others: tuple[tuple[str, str], ...] = ()) -> dict[str, object]:
    """The 422 body for a wrong field (and any others of the same request): what the
    InvalidInput handler answers, and what the body guard (api/body_guard.py) answers before a
    route is reached. `field` and `detail` name the first; `errors` lists every one."""
    return {"error": "invalid_input", "field": field, "detail": f"{field}: {message}",
            "errors": [{"field": f, "message": m} for f, m in ((field, message), *others)]}


def _http_error(exc: StarletteHTTPException) -> JSONResponse:
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "error"
    english = str(exc.detail) if exc.detail else phrase
    zh = _ZH_BY_STATUS.get(exc.status_code)
    return JSONResponse(
        status_code=exc.status_code,
        content={"error": phrase.lower().replace(" ", "_").replace("-", "_"),
                 "detail": f"{zh} / {english}" if zh else english},
        headers=exc.headers)


def _storage_answer(request: Request, exc: DBAPIError, answer: dict[str, str]) -> JSONResponse:
    log.error("database refused a write for %s %s: %s", request.method, request.url.path,
              str(exc.orig or exc).splitlines()[0][:300])
    return JSONResponse(status_code=503, content=answer, headers={"Retry-After": "60"})


DATABASE_DOWN = {
    "error": "database_unavailable",
    "detail": "数据库暂时无法连接，请稍后重试；已提交的内容不会丢失 / the database cannot be "
              "reached; try again shortly (nothing committed is lost)"}


DATABASE_BUSY = {
    "error": "database_busy",
    "detail": "数据库正忙（正在处理大批写入），请稍后重试；已提交的内容不会丢失 / the database is "
              "busy with a large write; try again shortly (nothing committed is lost)"}


# PostgreSQL aborting one of two transactions that collided (deadlock_detected,
# serialization_failure): the database is up and the other person's action went through.
COLLIDED_SQLSTATES = frozenset({"40P01", "40001"})

COLLIDED = {
    "error": "conflict", "current": None,
    "detail": "他人正同时办理此事，本次操作未生效，请刷新后重试 / someone else acted on this at "
              "the same moment; nothing was changed, reload and try again"}


DATABASE_FULL = {
    "error": "database_disk_full",
    "detail": "数据库所在磁盘已满，本次操作未保存；请联系系统管理员清理磁盘空间后重试 / the disk "
              "holding the database is full; nothing was saved; ask the administrator to free "
              "space, then try again"}

DATABASE_READ_ONLY = {
    "error": "database_read_only",
    "detail": "数据库当前只读，本次操作未保存；请联系系统管理员（磁盘或数据库服务器处于只读状态）/ "
              "the database is read-only at the moment (its disk or server); nothing was saved; "
              "tell the administrator"}


def cannot_write(exc: DBAPIError) -> dict[str, str] | None:
    """The answer for a database that is there but takes no write: its disk is full (SQLite's
    SQLITE_FULL, PostgreSQL's disk_full) or it is read-only (SQLite's file on a read-only
    disk, a PostgreSQL standby or one set read-only). None for anything else."""
    state = getattr(exc.orig, "sqlstate", None)
    said = str(exc.orig or exc)
    if state == "53100" or "database or disk is full" in said:
        return DATABASE_FULL
    if state == "25006" or "readonly database" in said:
        return DATABASE_READ_ONLY
    return None


def install(app: FastAPI) -> None:
    @app.exception_handler(InternalError)
    async def _database_refused(request: Request, exc: InternalError) -> Response:
        # PostgreSQL's read-only transaction (a standby after a failover) is an InternalError:
        # a state of the database the operator must hear of, not a 500.
        answer = cannot_write(exc)
        if answer is None:
            raise exc  # the app's handler of unexpected errors answers it, as before
        return _storage_answer(request, exc, answer)

    @app.exception_handler(OperationalError)
    async def _database_down(request: Request, exc: OperationalError) -> JSONResponse:
        answer = cannot_write(exc)
        if answer is not None:
            # Up, but full or read-only: "cannot be reached" would send the operator
            # looking for an outage instead of freeing the disk.
            return _storage_answer(request, exc, answer)
        if getattr(exc.orig, "sqlstate", None) in COLLIDED_SQLSTATES:
            # A collision, not an outage: a 503 "cannot be reached" would send an operator
            # looking for a database that is there. Rolled back, so nothing is half-written.
            log.warning("%s %s collided with another transaction: %s", request.method,
                        request.url.path, str(exc.orig).splitlines()[0][:300])
            return JSONResponse(status_code=409, content=COLLIDED)
        # The database went away (PostgreSQL stopped, the network to it cut, SQLite's file
        # locked past the busy timeout): a 503 the client can retry, never a bare 500. The
        # transaction was rolled back, so nothing is half-written. One line in the log, not a
        # traceback per request.
        said = str(exc.orig or exc).splitlines()[0][:300]
        log.warning("database unavailable for %s %s: %s", request.method, request.url.path,
                    said)
        # SQLite's one writer held past the busy timeout is busy, not gone: say so, so nobody
        # goes looking for a database that is there.
        busy = "database is locked" in said
        return JSONResponse(status_code=503, content=DATABASE_BUSY if busy else DATABASE_DOWN,
                            headers={"Retry-After": "5"})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and pages.wants_page(request):
            return pages.not_found(request.url.path)
        return _http_error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(tuple(e.get("loc", ()))), "message": _message(e)}
                  for e in exc.errors()]
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        return JSONResponse(status_code=422, content={
            "error": "invalid_input", "field": first["field"],
            "detail": f"{first['field']}: {first['message']}", "errors": errors})

    @app.exception_handler(InvalidInput)
    async def _invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        return JSONResponse(status_code=422,
                            content=invalid_input(exc.field, exc.message, exc.others))

    @app.exception_handler(SourceInvalid)
    async def _source(_: Request, exc: SourceInvalid) -> JSONResponse:
        return JSONResponse(status_code=422, content={
            "error": getattr(exc, "error_code", "playbook_invalid"), "detail": str(exc),
            "errors": [e.as_dict() for e in exc.errors]})

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        if pages.wants_page(request):
            return pages.not_found(request.url.path)
        return JSONResponse(status_code=404, content={"error": "not_found", "detail": str(exc)})

    @app.exception_handler(NoPreview)
    async def _no_preview(_: Request, exc: NoPreview) -> JSONResponse:
        # The type lets a page say "cannot be shown" of a photo and offer a PDF by its name.
        return JSONResponse(status_code=404, content={
            "error": "no_preview", "detail": str(exc), "evidence": exc.ident,
            "content_type": exc.content_type})

    @app.exception_handler(EvidenceDamaged)
    async def _damaged(_: Request, exc: EvidenceDamaged) -> JSONResponse:
        # Logged where it was found (flows/evidence.py), with the file's path and hashes.
        return JSONResponse(status_code=409, content={
            "error": "evidence_damaged", "detail": str(exc), "evidence": exc.evidence_id,
            "current": None})

    @app.exception_handler(ExtensionPastDeadline)
    async def _past_deadline(_: Request, exc: ExtensionPastDeadline) -> JSONResponse:
        # Its own code: a page tells "too late to ask" from "already asked" (both 409s).
        return JSONResponse(status_code=409, content={
            "error": "extension_past_deadline", "detail": str(exc), "current": exc.current})

    @app.exception_handler(ConcurrentRuns)
    async def _concurrent(_: Request, exc: ConcurrentRuns) -> JSONResponse:
        return JSONResponse(status_code=409, content={
            "error": "concurrent_runs", "detail": str(exc), "current": None, "runs": exc.runs})

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

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # A bug, not bad input (bad input is a 4xx above). Starlette logs the traceback once
        # the answer is sent; the caller gets JSON in the product's words, never the bare
        # "Internal Server Error" text a phone would show as is. Whatever the request wrote
        # inside a transaction was rolled back with it; what it may have done outside one is
        # for the person to look at, so the answer says to check before trying again.
        return JSONResponse(status_code=500, content=INTERNAL_ERROR)


INTERNAL_ERROR = {
    "error": "internal_error",
    "detail": "服务器内部错误，本次操作未能完成，已记入日志；请刷新查看当前状态后再试，"
              "如仍出错请联系系统管理员 / internal error (logged): the request did not complete; "
              "reload to see the current state before trying again"}
