"""HEIC photos, MP4 videos and PDFs handed in as evidence are checked by their structure
(flows/bmff_check.py, flows/pdf_check.py), as photos already were: a probe found
`ftypheic` followed by random bytes, `%PDF-1.4` followed by garbage and a lone 8-byte
`ftypmp42` box stored as evidence, enough to complete a rectification, and these types have
no preview for the re-inspector to notice. Files made by real tools (heif-enc, ffmpeg,
Ghostscript, qpdf, Pillow; tests/fixtures/evidence/README.md) pass; the same files cut
short, padded or with a box renamed are refused."""

from __future__ import annotations

import random
import struct

import pytest
from factories import evidence_file, pdf_bytes
from sqlmodel import select

from flows.bmff_check import boxes, heif_image, movie
from flows.evidence import store_evidence
from flows.runtime import Runtime
from models.db import read_session
from models.documents import Evidence
from models.errors import InvalidInput

HEIC = evidence_file("photo.heic")
MP4 = evidence_file("clip.mp4")  # ftyp, free, mdat, moov
FAST = evidence_file("clip-mp42.mp4")  # ftyp, moov, free, mdat (last)
FRAGMENTED = evidence_file("clip-frag.mp4")  # ftyp, moov, moof, mdat, mfra
PDF = evidence_file("gs.pdf")
PROGRAM = b"\x7fELF\x02\x01\x01" + b"\x00" * 32


def box_at(data: bytes, kind: bytes) -> int:
    """Offset of the first top-level box of `kind` in a whole file."""
    found = boxes(data, 0, len(data), top=True)
    assert found is not None
    return next(box.body - 8 for box in found if box.kind == kind)


def renamed(data: bytes, kind: bytes, to: bytes) -> bytes:
    at = box_at(data, kind) + 4
    return data[:at] + to + data[at + 4:]


def heic_meta_child(data: bytes, kind: bytes) -> int:
    """Offset of a box inside the HEIC's meta (after meta's header, version and flags)."""
    meta = box_at(data, b"meta")
    inside = boxes(data, meta + 12, meta + struct.unpack_from(">I", data, meta)[0])
    assert inside is not None
    return next(box.body - 8 for box in inside if box.kind == kind)


def random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def stored(rt: Runtime, data: bytes, name: str) -> Evidence:
    return store_evidence(rt, data=data, filename=name, uploaded_by="c1-grid")


REAL = [
    ("photo.heic", HEIC, "image/heic"),
    ("clip.mp4", MP4, "video/mp4"),
    ("clip-mp42.mp4", FAST, "video/mp4"),
    ("clip-frag.mp4", FRAGMENTED, "video/mp4"),
    ("IMG_0043.MOV", evidence_file("clip.mov"), "video/quicktime"),  # as an iPhone records
    ("gs.pdf", PDF, "application/pdf"),
    ("linearized.pdf", evidence_file("linearized.pdf"), "application/pdf"),
    ("objstm.pdf", evidence_file("objstm.pdf"), "application/pdf"),
    ("v20.pdf", evidence_file("v20.pdf"), "application/pdf"),
    ("pillow.pdf", pdf_bytes(), "application/pdf"),
    ("signed-twice.pdf", pdf_bytes(pages=3), "application/pdf"),  # incremental updates
    ("eol.pdf", PDF + b"\r\n\x00\x00", "application/pdf"),  # after %%EOF, within 1 KB
]


@pytest.mark.parametrize(("name", "data", "kind"), REAL, ids=[name for name, _, _ in REAL])
def test_a_file_made_by_a_real_tool_is_stored(rt: Runtime, name: str, data: bytes,
                                              kind: str) -> None:
    row = stored(rt, data, name)
    assert row.content_type == kind and row.size == len(data)


def test_an_iphone_quicktime_movie_is_kept_as_a_mov(rt: Runtime) -> None:
    # An iPhone records QuickTime (.MOV, brand "qt  "): walked as a movie, kept as what it is,
    # and named .mov when the name it came with had nothing left; cut short, refused as a MOV.
    mov = evidence_file("clip.mov")
    assert movie(mov)
    row = stored(rt, mov, "...")  # a name with nothing left in it
    assert row.content_type == "video/quicktime" and row.filename.endswith(".mov")
    with pytest.raises(InvalidInput, match="文件不是完整有效的MOV 视频"):
        stored(rt, mov[:-100], "IMG_0044.MOV")


def test_the_brands_must_fit_what_the_file_is_taken_for() -> None:
    # The upload is sniffed by the major brand; the walk asks the brands as well, so a video
    # is never taken for a photo's container, nor the other way round.
    assert heif_image(HEIC) and not movie(HEIC)
    assert movie(MP4) and not heif_image(MP4)
    major_only = HEIC[:16] + b"mif1mif1mif1" + HEIC[28:]  # heic's compatible brands changed
    assert heif_image(major_only)
    movie_brands = HEIC[:8] + b"isom" + HEIC[12:16] + b"isomiso2mp41" + HEIC[28:]
    assert not heif_image(movie_brands)


def test_box_sizes_of_zero_and_64_bits_are_read_as_the_format_says() -> None:
    """Size 0: the last box runs to the end of the file. Size 1: a 64-bit size follows the
    type (a video over 4 GB; rewritten here on a small one, the walk reads only sizes)."""
    mdat = box_at(FAST, b"mdat")
    assert mdat + struct.unpack_from(">I", FAST, mdat)[0] == len(FAST)  # the last box
    to_end = FAST[:mdat] + struct.pack(">I", 0) + FAST[mdat + 4:]
    assert movie(to_end)
    size = len(FAST) - mdat
    large = FAST[:mdat] + struct.pack(">I4sQ", 1, b"mdat", size + 8) + FAST[mdat + 8:]
    assert movie(large)
    past_end = FAST[:mdat] + struct.pack(">I4sQ", 1, b"mdat", size + 9) + FAST[mdat + 8:]
    assert not movie(past_end)
    # Size 0 is for the last box of the file only.
    moov = box_at(MP4, b"moov")
    assert not movie(MP4[:moov] + struct.pack(">I", 0) + MP4[moov + 4:] + b"\x00" * 8)


def damaged_heic() -> list[tuple[str, bytes]]:
    hdlr = heic_meta_child(HEIC, b"hdlr")
    iloc = heic_meta_child(HEIC, b"iloc")
    return [
        ("the probe's: ftyp then 40 random bytes",
         b"\x00\x00\x00\x18ftypheic" + random_bytes(40, 1)),
        ("the ftyp box alone", HEIC[:box_at(HEIC, b"meta")]),
        ("cut by one byte", HEIC[:-1]),
        ("cut in the middle", HEIC[:len(HEIC) // 2]),
        ("a program after it", HEIC + PROGRAM),
        ("no meta", renamed(HEIC, b"meta", b"free")),
        ("a meta that is not a picture's",
         HEIC[:hdlr + 16] + b"vide" + HEIC[hdlr + 20:]),
        ("a meta without its item locations",
         HEIC[:iloc + 4] + b"free" + HEIC[iloc + 8:]),
        ("a meta box one byte longer than its boxes",
         HEIC[:box_at(HEIC, b"meta")] + struct.pack(">I", struct.unpack_from(
             ">I", HEIC, box_at(HEIC, b"meta"))[0] + 1) + HEIC[box_at(HEIC, b"meta") + 4:]),
    ]


def damaged_mp4() -> list[tuple[str, bytes]]:
    moov = box_at(MP4, b"moov")
    mvhd = moov + 8
    return [
        ("the probe's: a lone 8-byte ftyp box", b"\x00\x00\x00\x08ftypmp42"),
        ("ftyp then random bytes", MP4[:32] + random_bytes(4000, 2)),
        ("cut by one byte", MP4[:-1]),
        ("cut before its moov", MP4[:moov]),
        ("a program after it", MP4 + PROGRAM),
        ("zeros after it", FAST + b"\x00" * 16),
        ("no moov", renamed(MP4, b"moov", b"free")),
        ("no mdat", renamed(MP4, b"mdat", b"free")),
        ("two moov", MP4 + MP4[moov:]),
        ("a moov without its movie header", MP4[:mvhd + 4] + b"free" + MP4[mvhd + 8:]),
        ("a fragment cut short", FRAGMENTED[:box_at(FRAGMENTED, b"mfra") + 20]),
    ]


def damaged_pdf() -> list[tuple[str, bytes]]:
    xref_at = PDF.rindex(b"startxref")
    return [
        ("the probe's: a header then garbage", b"%PDF-1.4\n\x00\x01garbage"),
        ("cut before %%EOF", PDF[:-8]),
        ("cut in the middle", PDF[:len(PDF) // 2]),
        ("no startxref", PDF[:xref_at] + PDF[xref_at + 9:]),
        ("startxref pointing elsewhere", PDF[:xref_at] + b"startxref\n10\n%%EOF\n"),
        ("startxref past its own place", PDF[:xref_at] + b"startxref\n999999\n%%EOF\n"),
        ("%%EOF more than 1 KB before the end", PDF + b"\n" + random_bytes(1100, 3)),
        ("a header of no PDF version", b"%PDF-x" + PDF[8:]),
        ("garbage with a trailer", b"%PDF-1.4\n" + random_bytes(3000, 4)
         + b"\nstartxref\n9\n%%EOF\n"),
    ]


@pytest.mark.parametrize(("kind", "what", "data"), [
    pytest.param(kind, what, data, id=f"{kind.split('/')[1]}: {what}")
    for kind, damaged in (("image/heic", damaged_heic()), ("video/mp4", damaged_mp4()),
                          ("application/pdf", damaged_pdf()))
    for what, data in damaged
])
def test_a_damaged_file_is_refused_naming_its_type(rt: Runtime, kind: str, what: str,
                                                   data: bytes) -> None:
    with pytest.raises(InvalidInput) as caught:
        stored(rt, data, "整改后")
    assert caught.value.field == "file"
    # Named as the photos' refusals are; a photo is taken again, a video or a PDF exported
    # (or scanned) again.
    said, again = {"image/heic": ("HEIC 图片", "请重新拍照上传"),
                   "video/mp4": ("MP4 视频", "请重新导出或录制后上传"),
                   "application/pdf": ("PDF 文件", "请重新导出或扫描后上传")}[kind]
    assert caught.value.message.startswith(f"文件不是完整有效的{said}（可能已损坏或被改名），"
                                           f"{again} / ")
    assert f"the file starts like {kind} but is not a whole, valid one" in caught.value.message
    with read_session(rt.db) as session:
        assert session.exec(select(Evidence)).all() == []

