"""Whether an upload that starts like a PDF is one: its header and the trailer a reader opens
it by (ISO 32000-1 §7.5.5). `%PDF-1.4` followed by garbage was accepted as a scanned
rectification report, and a PDF has no preview, so the re-inspector could not have told.

A reader starts at the end: the last `%%EOF` (Acrobat looks within the last 1,024 bytes),
the `startxref` just before it, and the byte offset that follows, where the cross-reference
table (`xref`) or, since PDF 1.5, a cross-reference stream (`12 0 obj`) must begin. A file
updated incrementally (a signature, a form filled in) appends a new body, xref and trailer
each time, so the last ones are the ones that count. A file cut short has no `%%EOF`; one
whose offsets point elsewhere (damaged, or rewritten by a text-mode transfer) is one
readers can only guess their way through. Not a parser: the objects themselves are not
read. Cheap: a few searches in the last kilobyte of bytes already in memory, nothing copied.
"""

from __future__ import annotations

import re

TAIL = 1024  # how far from the end %%EOF may be: what readers search
# PDF 1.0-1.7 and 2.0.
_HEADER = re.compile(rb"%PDF-[12]\.\d")
# startxref, the offset of the last cross-reference section, then %%EOF (white space
# between: CR, LF or both, and the odd space or tab).
_TRAILER = re.compile(rb"startxref[\x00\t\n\f\r ]+(\d{1,12})[\x00\t\n\f\r ]+%%EOF")
# What the offset must point at: a cross-reference table or stream.
_XREF = re.compile(rb"[\x00\t\n\f\r ]*(?:xref|\d{1,10}[\x00\t\n\f\r ]+\d{1,5}[\x00\t\n\f\r ]+obj)")


def pdf(data: bytes) -> bool:
    """The header, the last %%EOF within TAIL bytes of the end, startxref before it, and an
    xref table or stream at the offset it gives."""
    if not _HEADER.match(data):
        return False
    eof = data.rfind(b"%%EOF", max(0, len(data) - TAIL))
    if eof < 0:
        return False
    start = data.rfind(b"startxref", max(0, eof - TAIL), eof)
    trailer = _TRAILER.match(data, start, eof + 5) if start >= 0 else None
    if trailer is None:
        return False
    offset = int(trailer[1])
    # The section lies in the body, before the startxref that points at it.
    return 0 < offset < start and _XREF.match(data, offset, start) is not None
