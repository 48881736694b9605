"""Handing in a rectification from a phone on a poor network, as a community's safety officer
does on site: photos refused at upload are each named (too large: before sending it), a photo
just chosen is not fetched back to draw its thumbnail, a field refused is named by its label,
an answer lost on the way is sent again and taken once, and a sign-in that lapses mid-form
loses neither the text typed nor the photos chosen."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from factories import evidence_file
from PIL import Image
from playwright.sync_api import Page, Route, expect
from test_inspector_pages import (
    RECTIFIER,
    VERIFIER,
    SignedIn,
    call,
    open_task,
    photos,
    png,
    register_hazard,
)


def uploads_done(page: Page, count: int) -> None:
    expect(page.locator("#work .thumbs img")).to_have_count(count)
    expect(page.locator("#upload-status")).to_have_text("")


def choose_before_after(page: Page, tmp_path: Path, before: tuple[int, int, int],
                        after: tuple[int, int, int]) -> None:
    """The rectification's photos, each chosen in its own picker (整改前, then 整改后), from
    folders of their own (a file rewritten under a page that chose it no longer reads)."""
    for i, colour in enumerate((before, after)):
        folder = tmp_path / f"shot-{i}"
        folder.mkdir(exist_ok=True)
        page.set_input_files(f"#evidence-{i}", photos(folder, colour))
        uploads_done(page, i + 1)


def handed_in_api(server: Any, task: int, files: list[tuple[str, bytes]]) -> list[str]:
    """Upload the files and hand them in through the API, the first marked 整改前."""
    ids = []
    for name, data in files:
        up = call(server, RECTIFIER, "POST", "/api/evidence", files={"file": (name, data)})
        assert up.status_code == 201 and up.json()["content_type"].startswith("image/"), up.text
        ids.append(up.json()["id"])
    done = call(server, RECTIFIER, "POST", f"/api/tasks/{task}/complete", json={
        "note": "整改前后照片", "outputs": {"done_measures": "已清理"}, "evidence": ids,
        "evidence_labels": {ev: "整改前" if i == 0 else "整改后" for i, ev in enumerate(ids)}})
    assert done.status_code == 200, done.text
    return ids


def test_refused_photos_are_each_named_and_one_too_large_is_not_sent(
        signed_in: SignedIn, server: Any, tmp_path: Path) -> None:
    task = register_hazard(server)
    page = signed_in(RECTIFIER, phone=True)
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url)
            if r.method == "POST" and r.url.endswith("/api/evidence") else None)
    open_task(page, server, task)
    big = tmp_path / "IMG_20261202_101500.jpg"  # over the 20 MB a phone's camera can reach
    big.write_bytes(b"\xff\xd8\xff\xe1" + b"\x00" * (21 * 1024 * 1024))
    renamed = tmp_path / "现场照片.jpg"  # not a photo at all
    renamed.write_bytes(b"MZ\x90\x00 not a photo")
    good = photos(tmp_path, (90, 160, 30))
    page.set_input_files("#evidence-0", [str(big), str(renamed), *good])
    uploads_done(page, 1)
    flash = page.locator("#flash")
    expect(flash).to_contain_text(
        "「IMG_20261202_101500.jpg」超过上限 20 MB（本文件 21 MB），未上传")
    expect(flash).to_contain_text("「现场照片.jpg」未上传：只接受照片")
    assert len(sent) == 2  # the renamed file and the photo; the large one never left the phone
    # A good photo chosen next: the refusals above no longer stand, so they leave the screen.
    later = tmp_path / "later"  # its own folder: the files chosen above are not rewritten
    later.mkdir()
    page.set_input_files("#evidence-1", photos(later, (30, 90, 160)))
    uploads_done(page, 2)
    expect(flash).to_be_hidden()


def test_a_photo_just_chosen_is_shown_from_the_phone_not_fetched_back(
        signed_in: SignedIn, server: Any, tmp_path: Path) -> None:
    task = register_hazard(server)
    page = signed_in(RECTIFIER, phone=True)
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url)
            if r.method == "GET" and "/api/evidence/" in r.url else None)
    open_task(page, server, task)
    choose_before_after(page, tmp_path, (200, 30, 30), (30, 200, 30))
    assert page.locator("#work .thumbs img").evaluate_all(
        "imgs => imgs.every(i => i.complete && i.naturalWidth === 4)")
    assert fetched == []


def test_a_field_refused_is_named_by_its_label(signed_in: SignedIn, server: Any,
                                               tmp_path: Path) -> None:
    task = register_hazard(server)
    page = signed_in(RECTIFIER, phone=True)
    open_task(page, server, task)
    choose_before_after(page, tmp_path, (9, 9, 9), (250, 250, 250))
    page.fill("#note", "整改前后照片各一张")
    page.fill("[name=cost]", "-1")
    page.click("#submit")
    expect(page.locator("#flash")).to_contain_text("整改完成情况：缺少必填填报项")
    expect(page.locator("#flash")).to_contain_text("实际投入资金（万元）：不能小于 0")
    expect(page.locator("#flash")).not_to_contain_text("outputs.")
    expect(page.locator("[name=done_measures]")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("[name=cost]")).to_have_attribute("aria-invalid", "true")


def test_a_hand_in_whose_answer_was_lost_is_sent_again_and_taken_once(
        signed_in: SignedIn, server: Any, tmp_path: Path) -> None:
    task = register_hazard(server)
    page = signed_in(RECTIFIER, phone=True)
    open_task(page, server, task)
    choose_before_after(page, tmp_path, (10, 20, 30), (30, 20, 10))
    page.fill("[name=done_measures]", "已拆除安全出口门锁，恢复畅通")
    page.fill("#note", "整改前后照片各一张")
    answers: list[int] = []

    def lose_the_first_answer(route: Route) -> None:
        if answers:
            route.continue_()
            return
        answers.append(route.fetch().status)  # the server took it; the phone never hears
        route.abort("connectionreset")

    page.route("**/api/tasks/*/complete", lose_the_first_answer)
    page.click("#submit")
    # Told that it may or may not be in and that tapping again is safe, not only that the
    # server could not be reached.
    expect(page.locator("#flash")).to_contain_text("网络中断，未能确认是否已提交")
    expect(page.locator("#flash")).to_contain_text("服务器已收到的不会重复提交")
    assert answers == [200]
    page.click("#submit")  # the person tries again
    expect(page.locator("#flash")).to_have_text("已提交，等待核验")
    expect(page.locator("#summary .badge.status-submitted")).to_have_text("待核验")
    run = call(server, RECTIFIER, "GET", f"/api/tasks/{task}").json()["run_id"]
    timeline = call(server, "pingshan-street-inspector-2", "GET", f"/api/runs/{run}").json()
    assert [e["action"] for e in timeline["timeline"]].count("submitted") == 1


def test_a_sign_in_lost_mid_form_keeps_the_text_and_the_photos(
        signed_in: SignedIn, server: Any, tmp_path: Path) -> None:
    task = register_hazard(server)
    page = signed_in(None, phone=True)  # signed in on the page, so the token can lapse
    page.goto(server.url("/"))
    page.fill("#token", server.token(RECTIFIER))
    page.click("#signin-form button[type=submit]")
    expect(page.locator("#welcome")).to_be_visible()
    open_task(page, server, task)
    choose_before_after(page, tmp_path, (1, 99, 1), (99, 1, 1))
    long_text = ("已清理消防通道内堆放的杂物三车，拆除违规铁皮棚一处，"
                 "安全出口改装推闩式逃生门锁。") * 6
    page.fill("[name=done_measures]", long_text)
    page.fill("[name=cost]", "0.8")
    page.fill("#note", "整改前后照片各一张")
    # The token is no longer taken (the installation's secret was changed, the link revoked).
    page.evaluate("window.localStorage.setItem('closeloop.token', 'cl1.bad.sig')")
    page.click("#submit")
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#flash")).to_contain_text("已填写的内容和已上传的照片保存在本机")
    page.fill("#token", server.token(RECTIFIER))
    page.click("#signin-form button[type=submit]")
    expect(page).to_have_url(server.url(f"/tasks/{task}"))
    expect(page.locator("[name=done_measures]")).to_have_value(long_text)
    expect(page.locator("[name=cost]")).to_have_value("0.8")
    expect(page.locator("#note")).to_have_value("整改前后照片各一张")
    # Each photo back under what it shows.
    expect(page.locator(".evidence-box[data-label='整改前'] img")).to_have_count(1)
    expect(page.locator(".evidence-box[data-label='整改后'] img")).to_have_count(1)
    page.click("#submit")
    expect(page.locator("#flash")).to_have_text("已提交，等待核验")
    # Handed in: the copy on the phone is gone, and another person on it sees none of it.
    assert page.evaluate("Object.keys(window.localStorage).filter(k => k.includes('draft'))") == []
    assert call(server, RECTIFIER, "GET", f"/api/tasks/{task}").json()["outputs"][
        "done_measures"] == long_text



def test_a_heic_photo_the_browser_cannot_draw_is_offered_to_open_not_shown_broken(
        signed_in: SignedIn, server: Any, tmp_path: Path) -> None:
    task = register_hazard(server)
    # A real HEIC photo (heif-enc, tests/fixtures/evidence): Chromium, like Android's browser,
    # cannot draw it.
    handed_in_api(server, task, [("IMG_0042.HEIC", evidence_file("photo.heic")),
                                 ("after.png", png((5, 90, 5)))])
    page = signed_in(VERIFIER, phone=True)
    open_task(page, server, task)
    shown = page.locator("#submitted-evidence")
    expect(shown.locator("img")).to_have_count(1)  # the PNG
    expect(shown.locator("button.file")).to_have_text("无法预览，点此下载")
    with page.expect_download() as got:
        shown.locator("button.file").click()
    assert got.value.suggested_filename == "IMG_0042.HEIC"


def test_the_photo_picker_offers_the_gallery_for_the_photo_taken_before(
        signed_in: SignedIn, server: Any) -> None:
    """The 整改前 photo was taken before the work, days ago: a picker with `capture` opens a
    phone's camera only (Android's Chrome, iOS Safari), so it could never be chosen."""
    page = signed_in(RECTIFIER, phone=True)
    open_task(page, server, register_hazard(server))
    for picker in (page.locator("#evidence-0"), page.locator("#evidence-1")):
        assert picker.evaluate("el => el.multiple && el.accept.includes('image/*')")
        assert picker.evaluate("el => el.hasAttribute('capture')") is False


def camera_jpeg(rgb: tuple[int, int, int]) -> bytes:
    """A 12 MP phone photo (4000×3000) with a little noise, so it weighs what one does."""
    img = Image.effect_noise((4000, 3000), 40).convert("RGB")
    img.paste(rgb, (0, 0, 2000, 3000))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=92)
    return out.getvalue()


def test_the_verifier_sees_small_previews_and_opens_an_original_with_one_tap(
        signed_in: SignedIn, server: Any) -> None:
    """On a phone at 200 KB/s two 4.6 MB originals took 47 s to draw (the phone pass): the
    thumbnails are previews of at most 800 px now, and 原图 fetches the original itself."""
    task = register_hazard(server)
    before, after = camera_jpeg((120, 60, 20)), camera_jpeg((20, 120, 60))
    ids = handed_in_api(server, task, [("整改前.jpg", before), ("整改后.jpg", after)])
    page = signed_in(VERIFIER, phone=True)
    fetched: dict[str, int] = {}
    page.on("requestfinished", lambda r: fetched.__setitem__(
        r.url.split("/api/evidence/", 1)[1], r.sizes()["responseBodySize"])
        if "/api/evidence/" in r.url else None)
    open_task(page, server, task)
    shown = page.locator("#submitted-evidence img")
    expect(shown).to_have_count(2)
    page.wait_for_function("() => [...document.querySelectorAll('#submitted-evidence img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    assert shown.evaluate_all("imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])") == [
        [800, 600], [800, 600]]
    assert sorted(fetched) == sorted(f"{i}/preview" for i in ids)  # no original was fetched
    assert sum(fetched.values()) * 10 < len(before) + len(after)
    with page.expect_download() as got:
        page.locator("#submitted-evidence button.original").first.click()
    assert got.value.suggested_filename == "整改前.jpg"
    assert Path(got.value.path()).read_bytes() == before


def test_a_hand_in_on_its_way_says_so_and_takes_no_second_tap(
        signed_in: SignedIn, server: Any, tmp_path: Path) -> None:
    """On a slow network the 提交 button was only greyed out while the hand-in was on its way:
    read as broken, it invited a reload. It says 正在提交… (and is busy to a screen reader),
    a second tap sends nothing, and a refusal gives 提交 back to tap again."""
    task = register_hazard(server)
    page = signed_in(RECTIFIER, phone=True)
    open_task(page, server, task)
    choose_before_after(page, tmp_path, (10, 20, 30), (30, 20, 10))
    page.fill("[name=done_measures]", "已拆除安全出口门锁，恢复畅通")
    held: list[Route] = []
    page.route("**/api/tasks/*/complete", lambda route: held.append(route))
    page.click("#submit")
    submit = page.locator("#submit")
    expect(submit).to_have_text("正在提交…")
    expect(submit).to_have_attribute("aria-busy", "true")
    expect(submit).to_be_disabled()
    submit.dispatch_event("click")  # a second tap on the busy button
    page.wait_for_timeout(200)
    assert len(held) == 1
    held[0].continue_()  # the real answer arrives: the note this step asks for is missing
    expect(page.locator("#flash")).to_contain_text("需要填写说明")
    expect(page.locator("#flash")).not_to_contain_text("422")  # its words, not its code
    expect(submit).to_have_text("提交")  # as it was, to tap again once the note is written
    expect(submit).to_be_enabled()
    expect(submit).not_to_have_attribute("aria-busy", "true")
    page.unroute("**/api/tasks/*/complete")
    page.fill("#note", "整改前后照片各一张")
    submit.click()
    expect(page.locator("#flash")).to_have_text("已提交，等待核验")
    run = call(server, RECTIFIER, "GET", f"/api/tasks/{task}").json()["run_id"]
    timeline = call(server, "pingshan-street-inspector-2", "GET", f"/api/runs/{run}").json()
    assert [e["action"] for e in timeline["timeline"]].count("submitted") == 1
