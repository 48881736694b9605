"""A step's template is read when its playbook loads: a syntax error, an unknown filter, a
misspelt name or an include that is not there is reported at the step's `template:` line
(with the template's own line), not found when the document step runs in an incident."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.loader import LoadContext, load_playbook_text
from models.errors import PlaybookInvalid

TEMPLATES = {
    "brace.md.j2": "# 报告\n地点：{{ params.chemical }\n",
    "filter.md.j2": "{{ params.chemical | upperr }}\n",
    "name.md.j2": "{% set own = run.title %}\n{{ own }} {{ parms.chemical }}\n",
    "include.md.j2": '{% include "_missing.j2" %}\n',
    "fine.md.j2": ("{% import '_lib.j2' as lib %}{% for s in steps.values() %}"
                   "{{ lib.line(s) }}{% endfor %}{{ now_local }} {{ doc_no }}\n"),
    "_lib.j2": "{% macro line(s) %}{{ s.title }}{% endmacro %}\n",
}
PLAYBOOK = """\
id: written
version: 1
title: 文书
steps:
  - {id: a, title: A, action: document, template: brace.md.j2}
  - {id: b, title: B, action: document, template: filter.md.j2}
  - {id: c, title: C, action: document, template: name.md.j2}
  - {id: d, title: D, action: document, template: include.md.j2}
  - {id: e, title: E, action: document, template: fine.md.j2}
"""


def test_template_mistakes_are_named_at_the_steps_template_line(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    for name, text in TEMPLATES.items():
        (tmp_path / "templates" / name).write_text(text, encoding="utf-8")
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook_text(PLAYBOOK, filename="written.yaml",
                           context=LoadContext(tmp_path, known_roles=None))
    got = [(e.line, e.path, e.message.split(" / ")[0]) for e in caught.value.errors]
    assert got[:2] == [
        (5, "steps[0].template", "模板 brace.md.j2 第 2 行：unexpected '}'"),
        (6, "steps[1].template", "模板 filter.md.j2 第 1 行：No filter named 'upperr'."),
    ]
    assert got[2][:2] == (7, "steps[2].template")
    assert got[2][2].startswith("模板 name.md.j2 使用了未知的名称 parms（可用：")
    assert got[3] == (8, "steps[3].template", "模板 include.md.j2 引用的模板 _missing.j2 不存在")
    assert len(got) == 4  # fine.md.j2, with an import, a macro and a loop, is fine


KEY_TEMPLATES = {
    # An operator's own alert: a misspelt param, step and output, read without a guard.
    "alert.md.j2": ("泄漏物质：{{ params.chemcal }}\n"
                    "监测：{{ steps['monitr'].outputs.conclusion }}\n"
                    "结论：{{ steps.monitor.outputs.conclusoin }}\n"),
    # Shared templates read optional values behind a guard: none of these is a mistake.
    "guarded.md.j2": ("{{ params.enterprise | default('待核实') }}"
                      "{% if params.brief is defined %}{{ params.brief }}{% endif %}"
                      "{{ params.name if 'name' in params else run.title }}"
                      "{% if steps.lookback is defined %}{{ steps.lookback.outputs.x }}{% endif %}"
                      "{{ steps.monitor.outputs.level | default('') }}"
                      "{% for s in steps.values() %}{{ s.title }}{% endfor %}"
                      "{{ params.get('other', '') }}{{ params.chemical }}"
                      "{{ steps.monitor.outputs.conclusion }}\n"),
}
KEY_PLAYBOOK = """\
id: keyed
version: 1
title: 危化品泄漏
params:
  chemical: {type: string}
steps:
  - id: monitor
    title: 环境监测
    role: env_monitor
    outputs:
      conclusion: {type: string}
  - {id: alert, title: 预警, action: document, template: alert.md.j2, needs: [monitor]}
  - {id: record, title: 记录, action: document, template: guarded.md.j2, needs: [monitor]}
"""


def test_a_template_reading_a_param_step_or_output_the_playbook_lacks_is_refused(
        tmp_path: Path) -> None:
    """Read unguarded, each would fail the document in every run (a stub filed instead)."""
    (tmp_path / "templates").mkdir()
    for name, text in KEY_TEMPLATES.items():
        (tmp_path / "templates" / name).write_text(text, encoding="utf-8")
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook_text(KEY_PLAYBOOK, filename="keyed.yaml",
                           context=LoadContext(tmp_path, known_roles=None))
    got = [(e.line, e.path, e.message) for e in caught.value.errors]
    assert got == [
        (12, "steps[1].template", "模板 alert.md.j2 中没有参数 chemcal（可选：chemical） / "
         "template alert.md.j2: unknown parameter 'chemcal' (known: chemical)"),
        (12, "steps[1].template", "模板 alert.md.j2 中没有步骤 monitr（可选：monitor、alert、"
         "record） / template alert.md.j2: unknown step 'monitr' (known: monitor, alert, "
         "record)"),
        (12, "steps[1].template", "模板 alert.md.j2 中没有步骤 monitor 的填报项 conclusoin"
         "（可选：conclusion） / template alert.md.j2: unknown output of step 'monitor' "
         "'conclusoin' (known: conclusion)"),
    ]  # guarded.md.j2, whose every optional read is guarded, loads
