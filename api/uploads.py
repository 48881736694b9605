"""The name of an uploaded file (evidence, an imported register), as a person's PC sent it."""

from __future__ import annotations

from fastapi import UploadFile
from python_multipart.multipart import parse_options_header

from flows.evidence import decode_filename, safe_filename


def sent_name(file: UploadFile, default: str) -> str:
    """The file's name as the client sent it, cleaned (flows.evidence.safe_filename), else
    `default`. Starlette reads the name as UTF-8 or, failing that, as Latin-1: mojibake for the
    GBK name a Windows PC set to Chinese sends; the raw header (kept as Latin-1, byte for byte)
    is read again with decode_filename."""
    name = file.filename or ""
    header = file.headers.get("content-disposition")
    if header:
        _, options = parse_options_header(header)
        raw = options.get(b"filename")
        if raw:
            name = decode_filename(raw)
    return safe_filename(name) if name.strip() else default
