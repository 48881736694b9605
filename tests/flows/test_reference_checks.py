"""What an expression reads, held to the playbook and the org chart when it loads: a unit type
in `units(type=...)` the org chart does not have (a fan-out over it would hand out nothing,
silently: the evacuation step skipped) and an output a step does not declare
(`steps.assess.outputs.toxik`, which fails open at run time)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.loader import LoadContext, load_playbook_text
from models.errors import PlaybookInvalid

PLAYBOOK = """\
id: chem
version: 1
title: 危化品泄漏
steps:
  - id: assess
    title: 专家研判
    role: grid_worker
    outputs:
      toxic: {type: bool, title: 有毒}
  - id: note
    title: 记录
    role: grid_worker
  - id: evacuate
    title: 疏散
    role: grid_worker
    needs: [assess, note]
    when: "steps.assess.outputs.toxic and steps['note'].outputs.anything"
    for_each: "units(type='community', within=run.unit)"
"""


def errors(text: str) -> list[tuple[int, str, str]]:
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook_text(text, filename="chem.yaml", context=LoadContext(
            Path("."), known_roles=None,
            known_unit_types={"district", "street", "community", "enterprise"}))
    return [(e.line, e.path, e.message.split(" / ")[0]) for e in caught.value.errors]


def test_the_playbook_as_written_loads() -> None:
    playbook = load_playbook_text(PLAYBOOK, filename="chem.yaml", context=LoadContext(
        Path("."), known_roles=None, known_unit_types={"district", "street", "community"}))
    # A step without declared outputs takes free-form ones: nothing to hold `note` to.
    assert playbook.step("evacuate").for_each is not None


def test_a_misspelt_unit_type_is_named() -> None:
    bad = PLAYBOOK.replace("type='community'", "type='vilage'")
    assert errors(bad) == [(18, "steps[2].for_each",
                            "组织架构中没有单位类型 vilage（现有：community、district、enterprise、"
                            "street）")]


def test_a_misspelt_output_is_named() -> None:
    for read in ("steps.assess.outputs.toxik", "steps['assess']['outputs']['toxik']"):
        bad = PLAYBOOK.replace("steps.assess.outputs.toxic", read)
        assert errors(bad) == [(17, "steps[2].when",
                                "没有步骤 assess 的填报项 toxik（可选：toxic）")], read


def test_when_reads_only_what_is_upstream() -> None:
    """evacuate needs only `note`: its `when` reading the expert's answer would be decided as
    soon as `note` is done, before the expert answered."""
    bad = PLAYBOOK.replace("needs: [assess, note]", "needs: [note]")
    assert errors(bad) == [(17, "steps[2].when",
                            "when 读取了步骤 assess，但它不在本步骤的 needs 之中（直接或间接）："
                            "判断时它可能尚未完成；请把 assess 加入 needs")]
    # Further up is upstream too.
    chained = PLAYBOOK.replace("needs: [assess, note]", "needs: [note]").replace(
        "  - id: note\n    title: 记录\n    role: grid_worker\n",
        "  - id: note\n    title: 记录\n    role: grid_worker\n    needs: [assess]\n")
    load_playbook_text(chained, filename="chem.yaml", context=LoadContext(
        Path("."), known_roles=None, known_unit_types={"community"}))


def test_when_reading_the_top_of_a_long_chain_loads() -> None:
    """The last of 1,500 chained steps reads the first: upstream, and found by a walk up the
    chain (the recursive one raised RecursionError, a traceback from `closeloop validate`).
    A step off the chain read the same way is still named."""
    steps = [f"  - id: s{i}\n    title: 第{i}步\n    role: grid_worker"
             + (f"\n    needs: [s{i - 1}]" if i else "") for i in range(1500)]
    steps[-1] += "\n    when: \"steps.s0.outputs.ok and steps.side.outputs.ok\""
    steps.append("  - id: side\n    title: 旁支\n    role: grid_worker")
    text = "id: long\nversion: 1\ntitle: 长链\nsteps:\n" + "\n".join(steps) + "\n"
    [(_, path, message)] = errors(text)
    assert (path, message) == ("steps[1499].when", "when 读取了步骤 side，但它不在本步骤的 "
                               "needs 之中（直接或间接）：判断时它可能尚未完成；"
                               "请把 side 加入 needs")
    loaded = load_playbook_text(text.replace(" and steps.side.outputs.ok", ""),
                                filename="long.yaml",
                                context=LoadContext(Path("."), known_roles=None))
    assert loaded.step("s1499").when is not None


@pytest.mark.parametrize(("due", "path", "message"), [
    ("0m", "steps[1].due", "时限须大于 0：due: 0m 的任务一下达即已逾期并立即升级"),
    ("{after: 2h, from: stage}", "steps[1].due.from",
     "流程未分阶段，时限不能从阶段起算（from: stage）；请用 from: ready 或 from: run"),
])
def test_a_deadline_that_cannot_mean_what_it_says_is_named(due: str, path: str,
                                                           message: str) -> None:
    bad = PLAYBOOK.replace("    title: 记录\n    role: grid_worker\n",
                           f"    title: 记录\n    role: grid_worker\n    due: {due}\n")
    [(_, got_path, got)] = errors(bad)
    assert (got_path, got) == (path, message)
