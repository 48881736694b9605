"""The bureau's document-number register (文号): consecutive per prefix and year across runs,
restarting each year on the bureau's clock, kept by a document rendered again, given back by a
rolled-back filing, and never shared by two writers at once (SQLite and PostgreSQL)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import ENGINE_PLAYBOOKS, SHIPPED_PLAYBOOKS, refused, run_steps
from sqlmodel import select

from flows import lifecycle, tasks
from flows.numbering import issue_number, run_numbers
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session, session_scope
from models.documents import Document
from models.numbering import DocNumber
from models.outbox import Notification


def issue(rt: Runtime, prefix: str, run_id: int, subject: str = "run") -> str:
    with session_scope(rt.db) as session:
        return issue_number(session, rt, prefix=prefix, run_id=run_id, step_key="notice",
                            subject=subject, now=rt.clock.now()).text


def test_numbers_run_on_per_prefix_and_year(rt: Runtime, clock: ManualClock) -> None:
    assert [issue(rt, "坪应急督", run) for run in (1, 2, 3)] == [
        "坪应急督〔2026〕1号", "坪应急督〔2026〕2号", "坪应急督〔2026〕3号"]
    assert issue(rt, "坪应急督函", 1, "escalate|9|1|x") == "坪应急督函〔2026〕1号"
    assert issue(rt, "坪应急督", 2) == "坪应急督〔2026〕2号"  # run 2's notice keeps its number
    # 2026-12-31 23:30 in Shanghai is still 2026; half an hour later numbering starts again.
    clock.set(datetime(2026, 12, 31, 15, 30, tzinfo=UTC))
    assert issue(rt, "坪应急督", 4) == "坪应急督〔2026〕4号"
    clock.advance(timedelta(minutes=30))
    assert issue(rt, "坪应急督", 5) == "坪应急督〔2027〕1号"
    with read_session(rt.db) as session:
        assert run_numbers(session, 2) == {"notice": "坪应急督〔2026〕2号"}


def test_a_rolled_back_filing_gives_its_number_back(rt: Runtime) -> None:
    with pytest.raises(RuntimeError), session_scope(rt.db) as session:
        issue_number(session, rt, prefix="坪应急约", run_id=1, step_key="x", now=rt.clock.now())
        raise RuntimeError("the filing failed after the number was taken")
    assert issue(rt, "坪应急约", 2) == "坪应急约〔2026〕1号"


def writers_race(rt: Runtime, n: int) -> list[str]:
    got: list[str] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(n)

    def one(run_id: int) -> None:
        try:
            gate.wait()
            got.append(issue(rt, "坪应急督", run_id))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i + 1,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return got


def test_writers_at_once_never_share_a_number_on_sqlite(rt: Runtime) -> None:
    got = writers_race(rt, 8)
    assert sorted(got) == sorted(f"坪应急督〔2026〕{i}号" for i in range(1, 9))


def test_writers_at_once_never_share_a_number_on_postgresql(
    make_rt: Callable[..., Runtime], pg_url: str
) -> None:
    rt = make_rt(db_url=pg_url)
    got = writers_race(rt, 8)
    assert sorted(got) == sorted(f"坪应急督〔2026〕{i}号" for i in range(1, 9))
    with read_session(rt.db) as session:
        assert len(session.exec(select(DocNumber)).all()) == 8


@pytest.mark.parametrize(("line", "message"), [
    ("    number: 坪应急 督\n", "steps[0] (notice).number: 文号前缀是发文机关代字（如 坪应急督），"
     "不含空格或括号：年份和序号由系统添加 / a 文号 prefix is the issuer's short name"),
    ("    number: 坪应急督〔2026〕\n", "steps[0] (notice).number: 文号前缀是发文机关代字（如 坪应"
                                 "急督），"
     "不含空格或括号：年份和序号由系统添加 / a 文号 prefix is the issuer's short name"),
    ("    number: ''\n", "steps[0] (notice).number: 文号前缀须为 1 至 20 个字；收到 0 个 / a 文号 "
                         "prefix "
     "has 1 to 20 characters; got 0"),
    ("    number: 一二三四五六七八九十一二三四五六七八九十一\n",
     "steps[0] (notice).number: 文号前缀须为 1 至 20 个字；收到 21 个 / a 文号 prefix has 1 to 20 "
     "characters; got 21"),
])
def test_a_bad_prefix_is_refused_at_its_line(rt: Runtime, line: str, message: str) -> None:
    text = ("id: bad\nversion: 1\ntitle: 坏\nsteps:\n  - id: notice\n    title: 通知书\n"
            "    action: document\n    template: short-report.md.j2\n" + line)
    assert message in refused(rt, text)


def test_a_number_on_a_task_is_refused(rt: Runtime) -> None:
    text = ("id: bad\nversion: 1\ntitle: 坏\nsteps:\n  - id: fix\n    title: 整改\n"
            "    role: grid_worker\n    number: 坪应急督\n")
    shown = refused(rt, text)
    assert "bad.yaml:8:" in shown and "'number' (文号) is only used with action: document" in shown


def test_a_notice_filed_just_after_new_year_keeps_the_year_it_was_listed_in(
    demo: Runtime, clock: ManualClock
) -> None:
    """Listed at 23:59:58 on 31 December (Shanghai), filed by the segment a few seconds into
    the new year: the number is of the year the date on it is."""
    clock.set(datetime(2026, 12, 31, 15, 59, 58, tzinfo=UTC))
    run = lifecycle.start_run(demo, playbook_id="hazard-3030", unit_id="liuhe",
                              params={"location": "六和社区", "grade": "重大"},
                              actor="pingshan-street-commander")
    drain_wakes(demo)
    listing = next(s for s in run_steps(demo, run.id or 0) if s.step_key == "list")
    tasks.complete(demo, step_id=listing.id or 0, actor="pingshan-street-chief",
                   outputs={"responsible_person": "李富达"})
    clock.advance(timedelta(seconds=5))  # 2027-01-01 00:00:03 local
    drain_wakes(demo)
    with read_session(demo.db) as session:
        notice = session.exec(select(Document).where(Document.run_id == run.id)).one()
    assert notice.number == "坪应急督〔2026〕1号"
    assert "签发日期：2026年12月31日" in notice.body


def test_a_numbered_level_without_a_template_prints_its_number(
    make_rt: Callable[..., Runtime], tmp_path: Path, clock: ManualClock
) -> None:
    """The default alert message shows the 文号 it was given: no number is issued unseen."""
    books = tmp_path / "books"
    shutil.copytree(ENGINE_PLAYBOOKS, books)
    shutil.copy(SHIPPED_PLAYBOOKS / "templates" / "alert-message.md.j2", books / "templates")
    (books / "numbered.yaml").write_text(
        "id: numbered\nversion: 1\ntitle: 编号催办\nsteps:\n  - id: fix\n    title: 整改\n"
        "    role: grid_worker\n    due: 1h\n    escalate:\n"
        "      - {after: 0m, notify: [street_head], title: 督办函, number: 测督函}\n",
        encoding="utf-8")
    rt = make_rt(playbooks=books)
    run = lifecycle.start_run(rt, playbook_id="numbered", unit_id="c1", params={},
                              actor="s1-commander")
    clock.advance(timedelta(hours=1))
    sweep_once(rt)
    with read_session(rt.db) as session:
        [letter] = session.exec(select(Notification).where(
            Notification.run_id == run.id, Notification.kind == "escalate")).all()
    assert "文号：测督函〔2026〕1号" in letter.body


def test_two_documents_under_one_prefix_are_refused(rt: Runtime) -> None:
    """They would print one number; a document and the notify serving it may share."""
    text = ("id: bad\nversion: 1\ntitle: 坏\nsteps:\n"
            "  - {id: notice, title: 通知书, action: document, template: short-report.md.j2,"
            " number: 坪应急督}\n"
            "  - {id: serve, title: 送达, action: notify, template: short-report.md.j2,"
            " to: [duty], number: 坪应急督, needs: [notice]}\n"
            "  - {id: second, title: 第二份, action: document, template: short-report.md.j2,"
            " number: 坪应急督, needs: [serve]}\n")
    shown = refused(rt, text)
    assert "bad.yaml:7:" in shown and (
        "steps[2] (second).number: 步骤 notice（第 5 行）已用文号前缀 坪应急督") in shown, shown
    assert " / step 'notice' (line 5) already numbers with '坪应急督'" in shown, shown
    assert "steps[1]" not in shown


def test_two_different_messages_under_one_prefix_are_refused(
    make_rt: Callable[..., Runtime], tmp_path: Path
) -> None:
    """Two notify steps with different templates would print one 文号 on two documents."""
    books = tmp_path / "books"
    shutil.copytree(ENGINE_PLAYBOOKS, books)
    (books / "templates" / "other.md.j2").write_text("另一份", encoding="utf-8")
    rt = make_rt(playbooks=books)
    text = ("id: bad\nversion: 1\ntitle: 坏\nsteps:\n"
            "  - {id: letter, title: 督办函, action: notify, template: short-report.md.j2,"
            " to: [duty], number: 坪应急通}\n"
            "  - {id: summons, title: 约谈, action: notify, template: other.md.j2,"
            " to: [duty], number: 坪应急通, needs: [letter]}\n")
    shown = refused(rt, text)
    assert "bad.yaml:6:" in shown, shown
    assert "steps[1] (summons).number: 步骤 letter（第 5 行）" in shown, shown
    assert " / step 'letter' (line 5) already numbers" in shown, shown


@pytest.mark.parametrize("prefix", ["坪应急督第", "坪应急督号"])
def test_a_prefix_with_its_own_di_or_hao_is_refused(rt: Runtime, prefix: str) -> None:
    text = ("id: bad\nversion: 1\ntitle: 坏\nsteps:\n  - id: notice\n    title: 通知书\n"
            f"    action: document\n    template: short-report.md.j2\n    number: {prefix}\n")
    assert "no 第 or 号" in refused(rt, text)


def test_verify_on_an_automatic_step_is_refused(rt: Runtime) -> None:
    text = ("id: bad\nversion: 1\ntitle: 坏\nsteps:\n  - id: notice\n    title: 通知书\n"
            "    action: document\n    template: short-report.md.j2\n"
            "    verify: {role: inspector}\n")
    shown = refused(rt, text)
    assert "bad.yaml:9:" in shown and "'verify' is only used with action: task" in shown, shown
