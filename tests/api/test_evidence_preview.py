"""GET /api/evidence/{id}/preview: a photo as a JPEG of at most 800 px, made from the stored,
hash-checked original (turned upright as the phone said, transparency on white); a file that
has none (HEIC, PDF, a photo claiming more pixels than any camera) is a 404 naming its type,
and the original's rights and hash check hold for the preview too."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from factories import evidence_file, pdf_bytes, png_bytes
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import select

from flows.runtime import Runtime
from models.db import read_session
from models.documents import Evidence

Auth = Callable[[str], dict[str, str]]  # the `auth` fixture (tests/api/conftest.py)

ROTATED_CW = 6  # EXIF Orientation: the sensor's image is to be turned 90° clockwise


def jpeg(width: int, height: int, *, orientation: int | None = None) -> bytes:
    """A camera-sized JPEG: left half red, right half blue, as the sensor saw it."""
    img = Image.new("RGB", (width, height), (200, 20, 20))
    img.paste((20, 20, 200), (width // 2, 0, width, height))
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def upload(client: TestClient, auth: Auth, name: str, data: bytes,
           who: str = "c1-grid") -> str:
    r = client.post("/api/evidence", files={"file": (name, data)}, headers=auth(who))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def preview_of(client: TestClient, auth: Auth, evidence_id: str,
               who: str = "c1-grid") -> Image.Image:
    r = client.get(f"/api/evidence/{evidence_id}/preview", headers=auth(who))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    assert "immutable" in r.headers["cache-control"]
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "JPEG"
    return img


def test_a_phone_photo_is_previewed_small_and_upright(client: TestClient, auth: Auth) -> None:
    original = jpeg(4000, 3000, orientation=ROTATED_CW)  # a 12 MP photo taken upright
    shown = preview_of(client, auth, upload(client, auth, "整改后.jpg", original))
    assert shown.size == (600, 800)  # turned as the phone said, 800 px on the longer side
    # Turned clockwise, the sensor's left (red) half is now the top one.
    top, bottom = shown.getpixel((300, 100)), shown.getpixel((300, 700))
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]
    got = client.get(f"/api/evidence/{upload(client, auth, 'x.jpg', original)}",
                     headers=auth("c1-grid"))
    assert got.content == original  # the original is untouched, one tap away


def test_a_small_photo_is_not_enlarged_and_transparency_is_white(
        client: TestClient, auth: Auth) -> None:
    img = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    img.paste((10, 120, 10, 255), (0, 0, 20, 20))
    out = io.BytesIO()
    img.save(out, "PNG")
    shown = preview_of(client, auth, upload(client, auth, "标志.png", out.getvalue()))
    assert shown.size == (40, 20)
    assert min(shown.getpixel((30, 10))) > 240  # clear is shown on white, not black
    assert shown.getpixel((5, 10))[1] > 100


def bomb() -> bytes:
    """A PNG of 81 million pixels in a few KB: more than any phone's camera takes."""
    out = io.BytesIO()
    Image.new("1", (9000, 9000)).save(out, "PNG", optimize=True)
    return out.getvalue()


@pytest.mark.parametrize(("name", "data", "kind"), [
    ("IMG_0042.HEIC", evidence_file("photo.heic"), "image/heic"),
    ("整改报告.pdf", pdf_bytes(), "application/pdf"),
    ("现场.mp4", evidence_file("clip.mp4"), "video/mp4"),
    ("bomb.png", bomb(), "image/png"),
], ids=["heic", "pdf", "mp4", "bomb"])
def test_a_file_without_a_preview_is_a_404_naming_its_type(
        client: TestClient, auth: Auth, name: str, data: bytes, kind: str) -> None:
    evidence = upload(client, auth, name, data)
    r = client.get(f"/api/evidence/{evidence}/preview", headers=auth("c1-grid"))
    assert r.status_code == 404, r.text
    body = r.json()
    assert body["error"] == "no_preview" and body["content_type"] == kind
    assert "无法生成预览" in body["detail"] and body["evidence"] == evidence
    assert client.get(f"/api/evidence/{evidence}", headers=auth("c1-grid")).content == data


def test_the_preview_keeps_the_originals_rights_and_hash_check(
        client: TestClient, auth: Auth, rt: Runtime) -> None:
    evidence = upload(client, auth, "site.png", png_bytes(), who="s1-duty")
    r = client.get(f"/api/evidence/{evidence}/preview", headers=auth("c1-grid"))
    assert r.status_code == 403, r.text  # not theirs, on no task they may read
    missing = client.get("/api/evidence/nothing-here/preview", headers=auth("s1-duty"))
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    with read_session(rt.db) as session:
        row = session.exec(select(Evidence).where(Evidence.id == evidence)).one()
    Path(row.stored_path).write_bytes(png_bytes(7, 7))  # swapped behind the record's back
    r = client.get(f"/api/evidence/{evidence}/preview", headers=auth("s1-duty"))
    assert r.status_code == 409 and r.json()["error"] == "evidence_damaged", r.text
