"""One guard in front of every route for what a request carries before FastAPI parses it.

Text that no database can store must never reach one: SQLite's driver cannot encode a lone
surrogate ("\\ud800") and PostgreSQL refuses NUL ("\\u0000") in text and JSON, and either way the
request ended in a 500. A JSON body nested 100,000 deep made the parser itself give up (a 400 in
English). So, as a pure ASGI middleware (it sees the raw bytes, before any route or dependency):

- every request body except a multipart upload (evidence, imports: they have their own limits)
  is read into memory up to MAX_BODY_BYTES, and refused beyond it, unread when its declared
  length is already larger (a JSON body, and a playbook sent to /api/playbooks/validate too: the
  largest shipped playbook is 14 KB);
- a JSON body (application/json or application/*+json) must be strict JSON (no NaN or
  Infinity, no number beyond what a float or a 4,300-digit integer holds), nested at most
  MAX_JSON_DEPTH deep, with no lone surrogate and no NUL in any string or key, and no key twice
  in one object (json.loads lets the last one win, so {"approve": false, ..., "approve": true}
  approved what its sender may have read as a refusal);
- no query parameter, name or value, and no path may contain NUL.

A refusal is the API's usual 422 (api/errors.py `invalid_input`), naming the JSON path
(`params.location`, `steps[2].note`) or the query parameter, Chinese first. A body that passes is
handed on unchanged: the route parses it again (at most MAX_BODY_BYTES, so cheaply)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import invalid_input

MAX_BODY_BYTES = 1024 * 1024  # 1 MiB: the largest task completion or run start is a few KB
MAX_JSON_DEPTH = 32  # params and outputs are flat or nearly so; 32 leaves room for any form
MAX_INT_DIGITS = 4300  # Python's own limit for int(str); past it json.loads raises ValueError

_SHOWN_MAX = 80  # characters of a key or parameter name echoed back in a message
_SURROGATE = re.compile("[\ud800-\udfff]")


class Refused(ValueError):
    """What is wrong with a request, as the 422 will say it: where, and why (中文 / English)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def shown(text: str) -> str:
    """A key or name fit to echo: control characters and lone surrogates as \\uXXXX escapes (a
    lone surrogate cannot even be encoded into the response), cut to a readable length."""
    out = "".join(
        f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7F or 0xD800 <= ord(ch) <= 0xDFFF
        else ch for ch in text[:_SHOWN_MAX])
    return out + ("..." if len(text) > _SHOWN_MAX else "")


def _bad_char(text: str) -> str | None:
    """'\\u0000' or the first lone surrogate as an escape, or None when the text is storable.
    (json.loads pairs a valid surrogate pair into one character, so any surrogate left is
    alone.)"""
    if "\x00" in text:
        return "\\u0000"
    found = _SURROGATE.search(text)
    return f"\\u{ord(found.group()):04x}" if found else None


def _char_message(bad: str, *, key: bool) -> str:
    what_zh, what_en = ("字段名", "key") if key else ("文本", "text")
    if bad == "\\u0000":
        return (f"{what_zh}不能含有空字符 \\u0000 / {what_en} must not contain the NUL "
                "character \\u0000")
    return (f"{what_zh}含有不成对的代理字符 {bad}，不是有效的 Unicode / {what_en} contains a "
            f"lone surrogate {bad}, which is not valid Unicode")


def _path(parts: tuple[str | int, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{shown(p)}" if out else shown(p))
    return out or "body"


def _no_constant(name: str) -> Any:
    raise Refused("body", f"不是合法的 JSON：{name} 不是数字 / invalid JSON: {name} is not a "
                          "number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf, which no JSON column can hold
        raise Refused("body", f"数字超出范围：{text[:40]} / number out of range: {text[:40]}")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise Refused("body", f"整数超过 {MAX_INT_DIGITS} 位 / integer longer than "
                              f"{MAX_INT_DIGITS} digits")
    return int(text)


class _Duplicated(dict[str, Any]):
    """An object that named `key` more than once (kept, last value winning, as json.loads would
    have it), so that the walk below, which knows where the object sits, can refuse it by its
    path: the hook that builds it sees only the object's own pairs."""

    __slots__ = ("key",)

    def __init__(self, pairs: list[tuple[str, Any]], key: str) -> None:
        super().__init__(pairs)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads' object_pairs_hook: the dict it would build, marked when a key came twice.
    A C-level dict() and a length compare per object; the scan for which key repeats runs only
    for an object that has one."""
    built = dict(pairs)
    if len(built) < len(pairs):  # some key came twice: name the first one that did
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                return _Duplicated(pairs, key)
            seen.add(key)
    return built


def _walk(value: Any) -> Iterator[tuple[Any, tuple[str | int, ...], int]]:
    """Every value of a parsed document in document order with its path and the number of
    containers around it; iterative, so no depth of nesting can exhaust the stack."""
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(value, (), 0)]
    while stack:
        node, path, depth = stack.pop()
        yield node, path, depth
        if isinstance(node, dict):
            stack.extend((v, (*path, k), depth + 1) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((v, (*path, i), depth + 1) for i, v in reversed(list(enumerate(node))))


def check_json(body: bytes) -> None:
    """Raise Refused unless `body` is JSON every route and database can take (see the module)."""
    if not body:
        return  # no body: the route says whether it needs one
    try:
        value = json.loads(body, object_pairs_hook=_object, parse_constant=_no_constant,
                           parse_float=_finite, parse_int=_int)
    except Refused:
        raise
    except RecursionError:  # the C parser recurses once per level: far too deep
        raise Refused("body", f"嵌套超过 {MAX_JSON_DEPTH} 层 / nested deeper than "
                              f"{MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise Refused("body", f"不是合法的 JSON（第 {exc.lineno} 行第 {exc.colno} 列）/ invalid "
                              f"JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except ValueError:  # UnicodeDecodeError: bytes that are no UTF-8 (nor UTF-16/32) text
        raise Refused("body", "须为 UTF-8 编码的 JSON / body must be UTF-8 encoded JSON") from None
    for node, path, depth in _walk(value):
        if isinstance(node, dict | list) and depth >= MAX_JSON_DEPTH:
            raise Refused(_path(path), f"嵌套超过 {MAX_JSON_DEPTH} 层 / nested deeper than "
                                       f"{MAX_JSON_DEPTH} levels")
        if isinstance(node, _Duplicated):
            raise Refused(_path((*path, node.key)),
                          f"重复的键 {shown(node.key)} / duplicate key '{shown(node.key)}'")
        if isinstance(node, dict):
            for key in node:
                bad = _bad_char(key)
                if bad:
                    raise Refused(_path((*path, key)), _char_message(bad, key=True))
        elif isinstance(node, str):
            bad = _bad_char(node)
            if bad:
                raise Refused(_path(path), _char_message(bad, key=False))


def check_query(query_string: bytes) -> None:
    """Raise Refused naming the first query parameter whose name or value holds NUL."""
    # Decoded the way Starlette decodes it for the route (latin-1, then percent-decoding as
    # UTF-8), so what is checked is what the route would get.
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            raise Refused(shown(name) or "query",
                          "不能含有空字符 \\u0000 / must not contain the NUL character \\u0000")


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/")
                                          and kind.endswith("+json"))


def _is_upload(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "multipart/form-data"


def _too_large() -> Refused:
    mib = MAX_BODY_BYTES / 2**20
    return Refused("body", f"请求体超过 {mib:g} MB / request body larger than {mib:g} MiB")


class BodyGuard:
    """The ASGI middleware; `api/main.py` installs it around every route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            if "\x00" in scope.get("path", ""):
                raise Refused("path", "路径不能含有空字符 \\u0000 / the path must not contain "
                                      "the NUL character \\u0000")
            check_query(scope.get("query_string", b""))
        except Refused as exc:
            await _refuse(exc, scope, receive, send)
            return
        headers = Headers(scope=scope)
        content_type = headers.get("content-type", "")
        has_body = headers.get("content-length", "0") not in ("", "0") or (
            "transfer-encoding" in headers)
        if not has_body or _is_upload(content_type):
            await self.app(scope, receive, send)
            return
        try:
            declared = int(headers.get("content-length", "0"))
        except ValueError:
            declared = 0  # the server has already answered a malformed length itself
        if declared > MAX_BODY_BYTES:  # refused unread: a 60 MB body costs nothing
            await _refuse(_too_large(), scope, receive, send)
            return
        body = await _read(receive)
        if body is None:
            return  # the client went away mid-body: nobody to answer
        try:
            if len(body) > MAX_BODY_BYTES:
                raise _too_large()
            if _is_json(content_type):
                check_json(body)
        except Refused as exc:
            await _refuse(exc, scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


async def _read(receive: Receive) -> bytes | None:
    """The whole body, or as soon as it passes MAX_BODY_BYTES what came so far (enough to refuse
    it); None when the client disconnected."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES or not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the buffered body on once, then waits on the client as before (for
    the disconnect a streaming response listens for)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(exc: Refused, scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse(status_code=422, content=invalid_input(exc.field, exc.message))
    await response(scope, receive, send)
