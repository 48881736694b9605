"""Evidence files (photos, scans): checked by content, not by the name the phone gave them,
stored by SHA-256 (under the data dir, or in the store CLOSELOOP_EVIDENCE_URL names; see
evidence_store.py) and hashed again on every read, so a stored photo cannot be swapped unseen.
The name a file came with is kept only as a label, cleaned first (safe_filename)."""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
import uuid

from flows.bmff_check import IMAGE_BRANDS, MOVIE_BRANDS
from flows.evidence_store import ObjectMissing, content_key, open_store, read_at
from flows.image_check import looks_whole
from flows.runtime import Runtime
from models.db import session_scope
from models.documents import Evidence
from models.errors import EvidenceDamaged, InvalidInput

log = logging.getLogger("closeloop.evidence")

MAX_FILENAME = 255  # Evidence.filename
NEUTRAL_NAME = "证据"  # the name of a file whose own name had nothing printable left
# What a file name may not carry: C0 and C1 control characters (a NUL is refused by
# PostgreSQL), DEL, the bidi marks, embeddings, overrides and isolates (a name that reads
# "gpj.exe" backwards), and lone surrogates (not text at all).
_NAME_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_MAX_EXT = 16  # ".jpg", ".jpeg", ".heic": a longer "extension" is part of the name
_EXT_OF_KIND = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif",
                "image/webp": ".webp", "image/heic": ".heic", "application/pdf": ".pdf",
                "video/mp4": ".mp4", "video/quicktime": ".mov"}


def decode_filename(raw: bytes) -> str:
    """A file name as a client sent it, in bytes: UTF-8 as browsers send it, else GB18030 (a
    Windows PC set to Chinese sends GBK), else Latin-1 (which reads any bytes). Not cleaned:
    pass the result to safe_filename."""
    for codec in ("utf-8", "gb18030"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def safe_filename(name: str) -> str:
    """`name` fit to keep and show as a label: control characters (C0, C1, DEL), bidi marks and
    overrides and lone surrogates dropped, only the last part of a path kept (a Windows client
    sends "C:\\Users\\...\\a.jpg"), NFC, at most MAX_FILENAME characters (the extension
    kept). A name with nothing left (only dots, spaces or control characters) becomes
    NEUTRAL_NAME plus the extension it had. Never raises: a name is never a reason to refuse
    a file."""
    text = unicodedata.normalize("NFC", _NAME_UNSAFE.sub("", name or ""))
    text = re.split(r"[/\\]", text)[-1].strip()
    dot = text.rfind(".")
    ext = text[dot:] if dot >= 0 and 1 < len(text) - dot <= _MAX_EXT else ""
    if " " in ext:  # "a. b": a sentence, not an extension
        ext = ""
    stem = text[:len(text) - len(ext)]
    if not stem.strip(" ."):
        return NEUTRAL_NAME + ext
    if len(text) > MAX_FILENAME:
        text = stem[:MAX_FILENAME - len(ext)].rstrip() + ext
    return text


# Magic numbers of what we accept: a renamed .exe is refused whatever its Content-Type says.
_SIGNATURES: list[tuple[bytes, int, str]] = [
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),
    (b"%PDF-", 0, "application/pdf"),
]


_KIND_ZH = {"image/jpeg": "JPEG 图片", "image/png": "PNG 图片", "image/gif": "GIF 图片",
            "image/webp": "WebP 图片", "image/heic": "HEIC 图片", "video/mp4": "MP4 视频",
            "video/quicktime": "MOV 视频",
            "application/pdf": "PDF 文件"}
# What to do about a damaged file: a photo is taken again; a video or a PDF was made once and
# is sent again (often it was cut short on the way).
_AGAIN_ZH = {"video/mp4": "请重新导出或录制后上传", "video/quicktime": "请重新导出或录制后上传",
             "application/pdf": "请重新导出或扫描后上传"}


def size_zh(size: int) -> str:
    """A file size as a person reads it on a phone: "20 MB", "4.5 KB", not 20971520 字节."""
    value, unit = (size / 2**20, "MB") if size >= 2**20 else (size / 1024, "KB")
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def sniff(data: bytes) -> str | None:
    for magic, offset, kind in _SIGNATURES:
        if data[offset:offset + len(magic)] == magic:
            return kind
    if data[4:8] == b"ftyp":  # ISO base media: what it holds is said by its major brand
        brand = data[8:12]
        if brand in IMAGE_BRANDS:
            return "image/heic"
        if brand == b"qt  ":  # an iPhone's video (.MOV): QuickTime, checked as a movie
            return "video/quicktime"
        if brand in MOVIE_BRANDS:
            return "video/mp4"
    return None


def store_evidence(rt: Runtime, *, data: bytes, filename: str, uploaded_by: str) -> Evidence:
    if not data:
        raise InvalidInput("file", "文件是空的 / empty file")
    limit = rt.settings.max_evidence_bytes
    if len(data) > limit:
        # Only the limit and a byte more are read (api/routes/evidence.py): the file's own
        # size is not known here, so the message says the limit, in the units a phone shows.
        raise InvalidInput("file", f"文件超过上限 {size_zh(limit)}，请压缩后重新上传 / file is "
                           f"larger than the limit of {limit} bytes")
    kind = sniff(data)
    if kind is None:
        raise InvalidInput("file", "只接受照片（JPEG、PNG、GIF、WebP、HEIC）、PDF 和视频（MP4、"
                           "MOV） / only photos (JPEG, PNG, GIF, WebP, HEIC), PDF and videos "
                           "(MP4, MOV) are accepted")
    if not looks_whole(data, kind):
        said = _KIND_ZH.get(kind, kind)
        again = _AGAIN_ZH.get(kind, "请重新拍照上传")
        raise InvalidInput("file", f"文件不是完整有效的{said}（可能已损坏或被改名），{again} / "
                           f"the file starts like {kind} but is not a whole, valid one "
                           "(damaged or renamed)")
    name = safe_filename(filename or "upload")
    if name == NEUTRAL_NAME:
        name += _EXT_OF_KIND.get(kind, "")
    digest = hashlib.sha256(data).hexdigest()
    store, key = open_store(rt.settings), content_key(digest)
    # The bytes first, the row after: a row never points at nothing. A store that fails raises
    # StoreUnavailable here, before any row is written.
    store.put(key, data)
    with session_scope(rt.db) as session:
        row = Evidence(
            id=uuid.uuid4().hex, sha256=digest, size=len(data), content_type=kind,
            filename=name, stored_path=store.location(key),
            uploaded_by=uploaded_by, uploaded_at=rt.clock.now(),
        )
        session.add(row)
    return row


def read_evidence(row: Evidence, rt: Runtime) -> bytes:
    """The stored bytes, read through the configured store (and its credentials) when the row
    is in it. A file whose hash no longer matches the record, or that is gone, raises
    EvidenceDamaged (409: the store's state, not the request, is wrong) and is logged."""
    try:
        data = read_at(row.stored_path, open_store(rt.settings))
    except ObjectMissing:
        log.warning("evidence %s: stored file %s is missing", row.id, row.stored_path)
        raise EvidenceDamaged(row.id, missing=True) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != row.sha256:
        log.warning("evidence %s: stored file %s does not match its hash (recorded %s, found "
                    "%s)", row.id, row.stored_path, row.sha256, actual)
        raise EvidenceDamaged(row.id)
    return data
