"""Evidence files (photos, scans): checked by content, not by the name the phone gave them,
stored under the data dir by SHA-256 so a stored photo cannot be swapped unseen."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

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
        raise InvalidInput("file", "empty file")
    limit = rt.settings.max_evidence_bytes
    if len(data) > limit:
        raise InvalidInput("file", f"file is {len(data)} bytes; the limit is {limit}")
    kind = sniff(data)
    if kind is None:
        raise InvalidInput("file", "only photos (JPEG, PNG, GIF, WebP, HEIC), PDF and MP4 are "
                           "accepted")
    digest = hashlib.sha256(data).hexdigest()
    path = rt.settings.data_dir / "evidence" / digest[:2] / digest
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # atomic: a crash never leaves half a photo under its hash
    with session_scope(rt.db) as session:
        row = Evidence(
            id=uuid.uuid4().hex, sha256=digest, size=len(data), content_type=kind,
            filename=Path(filename or "upload").name[:255], stored_path=str(path),
            uploaded_by=uploaded_by, uploaded_at=rt.clock.now(),
        )
        session.add(row)
    return row


def read_evidence(row: Evidence) -> bytes:
    """The stored bytes, refusing a file whose hash no longer matches the record."""
    data = Path(row.stored_path).read_bytes()
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise InvalidInput("evidence", f"stored file for {row.id} does not match its hash")
    return data
