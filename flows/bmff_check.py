"""Whether an upload that starts like a HEIC photo or an MP4 video is one: its ISO base media
file format boxes (ISO/IEC 14496-12) walked at the top level, far enough to see the file is
whole and what it must hold. The first box alone let `ftypheic` followed by forty random
bytes through as a photo of the rectification, and these types have no preview, so the
re-inspector could not have told. Not a decoder: read where the boxes are, not what the
pictures are.

Cheap on a 20 MB video: the top-level boxes are a handful (a fragmented one a few per
second), each read from its 8- or 16-byte header in the bytes already in memory, nothing
copied; inside, only `meta` (HEIF) or `moov` (a movie) is looked into, one level deep.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

# Top-level boxes a file may have. A real one has under ten, a fragmented video a few per
# second of it; a 20 MB file of empty 8-byte boxes would be 2.6 million loop turns.
MAX_BOXES = 10_000

# Brands (ftyp) of a HEIF still image: HEVC-coded (heic, heix and their multi-layer forms)
# or any item-based image (mif1, mif2). Sequences (msf1, hevc) keep their pictures in a
# movie's tracks instead, which is not what an upload of a photo is.
IMAGE_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"mif2"})
# Brands of a movie: ISO base media (isom, iso2..iso9), MP4 v1/v2, AVC, Apple's M4V and
# QuickTime (a .MOV from an iPhone), 3GPP, DASH.
MOVIE_BRANDS = frozenset({b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso7",
                          b"iso8", b"iso9", b"mp41", b"mp42", b"avc1", b"M4V ", b"qt  ",
                          b"3gp4", b"3gp5", b"3gp6", b"3g2a", b"dash", b"mmp4"})
# What a HEIF image's `meta` must hold (ISO/IEC 23008-12): the handler, the primary item,
# where items are (iloc), what they are (iinf) and their properties (iprp: every image item
# has at least its size, ispe).
META_NEEDS = frozenset({b"hdlr", b"pitm", b"iloc", b"iinf", b"iprp"})


class Box(NamedTuple):
    kind: bytes
    body: int  # offset of its content, after the header
    end: int  # offset just past it


def boxes(data: bytes, start: int, end: int, *, top: bool = False) -> list[Box] | None:
    """The boxes laid end to end in data[start:end], or None when their sizes do not add up
    to exactly `end` (cut short, padded with something else, or not boxes at all). Size 1
    means a 64-bit size follows the type; size 0 means "to the end of the file" and is
    allowed only for the last box at the top level."""
    out: list[Box] = []
    at = start
    while at < end:
        if end - at < 8 or len(out) >= MAX_BOXES:
            return None
        size, kind = struct.unpack_from(">I4s", data, at)
        head = 8
        if size == 1:
            if end - at < 16:
                return None
            (size,) = struct.unpack_from(">Q", data, at + 8)
            head = 16
        elif size == 0 and top:
            size = end - at
        if size < head or size > end - at or not _printable(kind):
            return None
        out.append(Box(kind, at + head, at + size))
        at += size
    return out


def _printable(kind: bytes) -> bool:
    # Box types are four characters (`ftyp`, `moov`, `M4V `); random bytes rarely are.
    return all(0x20 <= c <= 0x7E for c in kind)


def brands(data: bytes, ftyp: Box) -> set[bytes] | None:
    """The major brand and the compatible ones of an ftyp box, None when it is malformed."""
    length = ftyp.end - ftyp.body
    if length < 8 or length % 4:
        return None
    found = {data[ftyp.body:ftyp.body + 4]}
    found.update(data[at:at + 4] for at in range(ftyp.body + 8, ftyp.end, 4))
    return found


def _top(data: bytes, wanted: frozenset[bytes]) -> list[Box] | None:
    """The top-level boxes, when they chain to the end and the first is an ftyp naming one
    of the `wanted` brands."""
    top = boxes(data, 0, len(data), top=True)
    if not top or top[0].kind != b"ftyp":
        return None
    named = brands(data, top[0])
    return top if named and named & wanted else None


def _only(top: list[Box], kind: bytes) -> Box | None:
    found = [box for box in top if box.kind == kind]
    return found[0] if len(found) == 1 else None


def heif_image(data: bytes) -> bool:
    """A HEIC/HEIF photo: ftyp of an image brand, one `meta` holding what an image file's
    must, and the coded picture somewhere: in `mdat`, or (small images) in the meta's
    `idat`."""
    top = _top(data, IMAGE_BRANDS)
    meta = _only(top, b"meta") if top else None
    if top is None or meta is None or meta.end - meta.body < 4:
        return False
    inside = boxes(data, meta.body + 4, meta.end)  # after the full box's version and flags
    if inside is None:
        return False
    kinds = {box.kind for box in inside}
    hdlr = next((box for box in inside if box.kind == b"hdlr"), None)
    # hdlr: version and flags, pre_defined, then the handler type: `pict` for images.
    if not META_NEEDS <= kinds or hdlr is None or hdlr.end - hdlr.body < 12:
        return False
    picture = b"idat" in kinds or any(box.kind == b"mdat" for box in top)
    return data[hdlr.body + 8:hdlr.body + 12] == b"pict" and picture


def movie(data: bytes) -> bool:
    """An MP4 or MOV video: ftyp of a movie brand, one `moov` whose boxes chain and hold the
    movie header and a track, and media data (`mdat`; a fragmented file has one per
    fragment)."""
    top = _top(data, MOVIE_BRANDS)
    moov = _only(top, b"moov") if top else None
    if top is None or moov is None or not any(box.kind == b"mdat" for box in top):
        return False
    inside = boxes(data, moov.body, moov.end)
    return inside is not None and {b"mvhd", b"trak"} <= {box.kind for box in inside}
