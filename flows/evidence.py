"""Evidence files (photos, scans): checked by content, not by the name the phone gave them,
stored by SHA-256 (under the data dir, or in the store CLOSELOOP_EVIDENCE_URL names; see
evidence_store.py) and hashed again on every read, so a stored photo cannot be swapped unseen."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

from flows.evidence_store import ObjectMissing, content_key, open_store, read_at
from flows.runtime import Runtime
from models.db import session_scope
from models.documents import Evidence
from models.errors import InvalidInput

# Magic numbers of what we accept: a renamed .exe is refused whatever its Content-Type says.
_SIGNATURES: list[tuple[bytes, int, str]] = [
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),
    (b"%PDF-", 0, "application/pdf"),
    (b"ftypheic", 4, "image/heic"),
    (b"ftypmif1", 4, "image/heic"),
    (b"ftypisom", 4, "video/mp4"),
    (b"ftypmp42", 4, "video/mp4"),
]


def sniff(data: bytes) -> str | None:
    for magic, offset, kind in _SIGNATURES:
        if data[offset:offset + len(magic)] == magic:
            return kind
    return None


def store_evidence(rt: Runtime, *, data: bytes, filename: str, uploaded_by: str) -> Evidence:
    if not data:
        raise InvalidInput("file", "文件是空的 / empty file")
    limit = rt.settings.max_evidence_bytes
    if len(data) > limit:
        raise InvalidInput("file", f"文件超过上限 {limit} 字节 / file is {len(data)} bytes; the "
                           f"limit is {limit}")
    kind = sniff(data)
    if kind is None:
        raise InvalidInput("file", "只接受照片（JPEG、PNG、GIF、WebP、HEIC）、PDF 和 MP4 / only "
                           "photos (JPEG, PNG, GIF, WebP, HEIC), PDF and MP4 are accepted")
    digest = hashlib.sha256(data).hexdigest()
    store, key = open_store(rt.settings), content_key(digest)
    # The bytes first, the row after: a row never points at nothing. A store that fails raises
    # StoreUnavailable here, before any row is written.
    store.put(key, data)
    with session_scope(rt.db) as session:
        row = Evidence(
            id=uuid.uuid4().hex, sha256=digest, size=len(data), content_type=kind,
            filename=Path(filename or "upload").name[:255], stored_path=store.location(key),
            uploaded_by=uploaded_by, uploaded_at=rt.clock.now(),
        )
        session.add(row)
    return row


def read_evidence(row: Evidence, rt: Runtime) -> bytes:
    """The stored bytes, refusing a file whose hash no longer matches the record; read
    through the configured store (and its credentials) when the row is in it."""
    try:
        data = read_at(row.stored_path, open_store(rt.settings))
    except ObjectMissing:
        raise InvalidInput("evidence", f"证据文件已不在存储中 / stored file for {row.id} is "
                           "missing") from None
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise InvalidInput("evidence", f"证据文件与登记的哈希不符 / stored file for {row.id} "
                           "does not match its hash")
    return data
