"""Whether an upload that starts like a photo is one: its structure read far enough to find
its size. The magic number alone let "GIF89a" followed by a program count as a photo of the
rectification (四眼 rests on those photos). Not a decoder: a file that walks like the format
and states a picture size passes; a phone's real photo always does. HEIC and MP4 are walked
box by box in bmff_check.py, PDF's trailer read in pdf_check.py.
"""

from __future__ import annotations

import struct
import zlib

from flows.bmff_check import heif_image, movie
from flows.pdf_check import pdf

MAX_SIDE = 100_000  # pixels; a real photo is a few thousand


def looks_whole(data: bytes, kind: str) -> bool:
    """False when `data`, sniffed as `kind`, is not a well-formed file of that kind."""
    check = _CHECKS.get(kind)
    try:
        return check(data) if check else True
    except (IndexError, struct.error):
        return False  # ran off the end: cut short


def _size_ok(width: int, height: int) -> bool:
    return 0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE


def _png(data: bytes) -> bool:
    # The header chunk first, its checksum right, and the end chunk last.
    length, kind = struct.unpack(">I4s", data[8:16])
    if kind != b"IHDR" or length != 13:
        return False
    body = data[12:29]
    (crc,) = struct.unpack(">I", data[29:33])
    if zlib.crc32(body) != crc:
        return False
    width, height = struct.unpack(">II", data[16:24])
    return _size_ok(width, height) and data.endswith(b"IEND\xaeB`\x82")


# Start-of-frame markers that carry the picture's size (not DHT C4, JPG C8, DAC CC).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(data: bytes) -> bool:
    # Segment by segment from the start-of-image to a frame header. Phones may append their
    # own data after the end, so the end marker is not required to be last.
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return False
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # no length
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2:at + 4])
        if length < 2:
            return False
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            if not _size_ok(width, height):
                return False
            # The picture itself: a scan after the frame, and the end-of-image after it (a
            # file cut short has none). What a phone appends after the end is allowed, a
            # program or an archive is not.
            scan = data.find(b"\xff\xda", at)
            end = data.find(b"\xff\xd9", scan) if scan >= 0 else -1
            return end >= 0 and not _carries_program(data[end + 2:])
        if marker in (0xD9, 0xDA):  # end, or scan data before any frame header
            return False
        at += 2 + length
    return False


# What a file appended to a photo starts with when it is something to run or unpack.
_PROGRAMS = (b"MZ", b"\x7fELF", b"PK\x03\x04", b"#!", b"Rar!", b"7z\xbc\xaf", b"\xca\xfe\xba\xbe",
             b"\xcf\xfa\xed\xfe", b"<script", b"<?php", b"%PDF")


def _carries_program(tail: bytes) -> bool:
    return tail.lstrip(b"\x00\r\n ").startswith(_PROGRAMS)


def _gif(data: bytes) -> bool:
    width, height, flags = struct.unpack("<HHB", data[6:11])
    if not _size_ok(width, height):
        return False
    at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    images = 0
    while True:
        block = data[at]
        if block == 0x3B:  # trailer: the last byte (padding aside), nothing hidden after it
            return images > 0 and not data[at + 1:].strip(b"\x00")
        if block == 0x21:  # extension: label, then sub-blocks
            at = _sub_blocks(data, at + 2)
        elif block == 0x2C:  # image descriptor, optional colour table, LZW size, sub-blocks
            local = data[at + 9]
            at += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
            at = _sub_blocks(data, at + 1)
            images += 1
        else:
            return False


def _sub_blocks(data: bytes, at: int) -> int:
    while data[at]:
        at += 1 + data[at]
    return at + 1


def _webp(data: bytes) -> bool:
    # RIFF's own length is the file's, and a known first chunk.
    (size,) = struct.unpack("<I", data[4:8])
    return (data[:4] == b"RIFF" and size + 8 == len(data)
            and data[12:16] in (b"VP8 ", b"VP8L", b"VP8X"))


_CHECKS = {"image/png": _png, "image/jpeg": _jpeg, "image/gif": _gif, "image/webp": _webp,
           "image/heic": heif_image, "video/mp4": movie, "video/quicktime": movie,
           "application/pdf": pdf}
