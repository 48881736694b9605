"""A small JPEG preview of a photo handed in. A verifier on a phone judges 整改前 and 整改后
from the previews (measured by the phone pass: two 4.6 MB originals took 47 s at 200 KB/s)
and opens an original with one tap. Made on request from the stored, hash-checked original
(flows.evidence.read_evidence), never from anything the uploader sent beside it, so a
preview cannot show other than the file it stands for; nothing is kept, and the answer is
cached by the phone (it never changes: the original is addressed by its hash)."""

from __future__ import annotations

import io

from PIL import Image, ImageOps, UnidentifiedImageError

from flows.evidence import read_evidence
from flows.runtime import Runtime
from models.documents import Evidence
from models.errors import NoPreview

PREVIEW_EDGE = 800  # px of the longer side: sharp on a phone, ~60-120 KB
QUALITY = 75
# Photos a browser draws and Pillow reads; a HEIC, a PDF or a video has no preview.
PREVIEWABLE = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# A phone's largest photos are ~50 MP; a file claiming more is a decompression bomb (a few
# KB that would expand to gigabytes), refused before it is decoded.
MAX_PIXELS = 64_000_000


def preview(row: Evidence, rt: Runtime) -> bytes:
    """The photo's preview as JPEG bytes; NoPreview for a file that has none."""
    if row.content_type not in PREVIEWABLE:
        raise NoPreview(row.id, row.content_type)
    data = read_evidence(row, rt)  # EvidenceDamaged (409) when the stored bytes were swapped
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise NoPreview(row.id, row.content_type)
            # JPEG decodes at 1/2, 1/4 or 1/8 scale directly: a 12 MP photo in ~30 ms.
            img.draft("RGB", (PREVIEW_EDGE, PREVIEW_EDGE))
            # Phones store a photo as the sensor saw it and say how to turn it (EXIF).
            shown = ImageOps.exif_transpose(img)
            shown.thumbnail((PREVIEW_EDGE, PREVIEW_EDGE))
            out = io.BytesIO()
            _on_white(shown).save(out, "JPEG", quality=QUALITY, optimize=True)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        # Stored whole (flows.evidence.looks_whole) yet not decodable here: the original
        # is still there to open.
        raise NoPreview(row.id, row.content_type) from None
    return out.getvalue()


def _on_white(img: Image.Image) -> Image.Image:
    """JPEG has no transparency: a PNG's clear parts on white, as a page shows them."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        page = Image.new("RGB", rgba.size, "white")
        page.paste(rgba, mask=rgba.getchannel("A"))
        return page
    return img if img.mode == "RGB" else img.convert("RGB")
