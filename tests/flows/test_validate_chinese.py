"""Playbook validation speaks Chinese first: every line `closeloop validate` prints is
`file:line:col: path: 中文 / English` (SPEC §5 keeps the location prefix and the key path; the
product speaks Chinese first, with the English a bureau may need after " / ").

One directory of bad playbooks and modules, one mistake of each kind the loader knows (YAML,
pydantic's own errors, the validators of flows/spec.py, the step rules, references to roles,
steps, stages, templates, modules, expressions), run through the real CLI.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from factories import REPO

HEAD = "id: {id}\nversion: 1\ntitle: 演示\n"

PLAYBOOKS: dict[str, str | bytes] = {
    "yaml-syntax.yaml": "id: [a\n",
    "top-duplicate-key.yaml": "id: a\nversion: 1\nid: b\n",
    "step-duplicate-key.yaml": HEAD.format(id="dk")
    + "steps:\n  - id: a\n    due: 1h\n    due: 2h\n",
    "control-char.yaml": b"id: x\x00\n",
    "undefined-alias.yaml": "id: *nope\n",
    "merge-key.yaml": "base: &b {x: 1}\nid:\n  <<: *b\n",
    "two-documents.yaml": "id: a\n---\nid: b\n",
    "impossible-date.yaml": HEAD.format(id="dt") + "description: 2025-02-30\n",
    "not-a-mapping.yaml": "- just\n- a list\n",
    "not-utf8.yaml": b"id: x\ntitle: \xff\xfe\n",
    "header.yaml": (
        "id: Bad Id\nversion: 0\ntitle: 3\ncolour: red\nstages: [a, a]\n"
        "params:\n"
        "  x: {type: strin}\n"
        "  k: {type: enum}\n"
        "  Big: {type: string}\n"
        "  d: {type: int, default: many}\n"
        "  s: {type: string, min: 1}\n"
        "  v: {type: string, values: [a]}\n"
        "  r: {type: int, min: 9, max: 5}\n"
        "  n: {type: int, min: '1'}\n"
        "  f: {type: int, min: 1.5}\n"
        "  e: {type: enum, values: [a, a]}\n"
        "steps:\n  - {id: a, title: 甲, role: director}\n"
    ),
    "no-version.yaml": "id: nv\ntitle: 缺\nsteps:\n  - {id: a, title: 甲, role: director}\n",
    "params-not-mapping.yaml": HEAD.format(id="pm") + "params: [1]\n"
    "steps:\n  - {id: a, title: 甲, role: director}\n",
    "steps-not-list.yaml": HEAD.format(id="sl") + "steps: {a: 1}\n",
    "no-steps.yaml": HEAD.format(id="ns"),
    "steps.yaml": HEAD.format(id="steps") + "params:\n  grade: {type: string}\nsteps:\n"
    "  - {id: role, title: 角色, role: nobody}\n"
    "  - {id: due, title: 时限, role: director, due: 5x}\n"
    "  - {id: due-int, title: 时限, role: director, due: 10}\n"
    "  - {id: needs, title: 依赖, role: director, needs: [zz]}\n"
    "  - {id: self, title: 自身, role: director, needs: [self]}\n"
    "  - {id: c1, title: 环, role: director, needs: [c2]}\n"
    "  - {id: c2, title: 环, role: director, needs: [c1]}\n"
    "  - {id: role, title: 重复, role: director}\n"
    "  - {id: stage, title: 阶段, role: director, stage: warning}\n"
    "  - {id: tpl, title: 模板, action: document, template: nope.md.j2}\n"
    "  - {id: tpl-out, title: 模板, action: document, template: ../x.j2}\n"
    "  - {id: child, title: 子流程, action: playbook, playbook: nowhere}\n"
    "  - {id: syntax, title: 表达式, role: director, when: 'a +'}\n"
    "  - {id: empty, title: 表达式, role: director, when: ''}\n"
    "  - {id: name, title: 表达式, role: director, when: 'prams.grade'}\n"
    "  - {id: param, title: 表达式, role: director, when: 'params.level'}\n"
    "  - {id: step-ref, title: 表达式, role: director, when: 'steps.nope.outputs'}\n"
    "  - {id: filter, title: 表达式, role: director, for_each: 'params.grade | nosuch'}\n"
    "  - {id: test, title: 表达式, role: director, when: 'params.grade is nosuch'}\n"
    "  - {id: notify, title: 通知, action: notify}\n"
    "  - {id: wait, title: 等待, action: wait}\n"
    "  - {id: task, title: 任务}\n"
    "  - {id: only, title: 多余, role: director, playbook: child, with: {a: 1}, number: 坪应急甲}\n"
    "  - {id: verify-only, title: 核验, action: document, template: t.md.j2,\n"
    "     verify: {role: director}}\n"
    "  - {id: ladder, title: 升级, role: director, remind: [{before: 1h}],\n"
    "     escalate: [{after: 2h, notify: [director]}, {after: 1h, notify: [nobody]}]}\n"
    "  - {id: verify-due, title: 核验, role: director,\n"
    "     verify: {role: director, escalate: [{after: 1h, notify: [director]}]}}\n"
    "  - {id: twice, title: 两次, role: director, needs: [role, role]}\n"
    "  - {id: empty-notify, title: 升级, role: director, due: 1h,\n"
    "     escalate: [{after: 0m, notify: []}]}\n"
    "  - {id: evidence, title: 证据, role: director, evidence: {photos: -1}}\n"
    "  - {id: note, title: 证据, role: director, evidence: {note: maybe}}\n"
    "  - {id: remind, title: 提醒, role: director, due: 1h, remind: soon}\n"
    "  - just text\n"
    "  - {id: blank, title: '', role: director}\n"
    "  - {id: untitled, role: director}\n"
    "  - {id: act, title: 动作, action: notfy}\n"
    "  - {id: key, title: 字段, role: director, colour: red}\n"
    "  - {id: prefix1, title: 文号, action: document, template: t.md.j2, number: 坪应急督第}\n"
    "  - {id: prefix2, title: 文号, action: document, template: t.md.j2, number: 坪 应急}\n"
    "  - {id: prefix3, title: 文号, action: document, template: t.md.j2,\n"
    "     number: 一二三四五六七八九十一二三四五六七八九十一}\n"
    "  - {id: repeat, title: 重复, role: director, due: 1h,\n"
    "     escalate: [{after: 0m, notify: [director], repeat: 0m}]}\n"
    "  - {id: doc-a, title: 文书, action: document, template: t.md.j2, number: 坪应急}\n"
    "  - {id: doc-b, title: 文书, action: document, template: u.md.j2, number: 坪应急}\n"
    "  - {id: phase, title: 核验, role: director, verify: {role: director,\n"
    f"     phase: {'一二三四五六七八九十' * 4}一}}}}\n"
    "  - {id: at, title: 单位, role: director, at: villag}\n",
    "modules.yaml": HEAD.format(id="mods") + "started_by: [nobody]\n"
    "register: {closed_by: nope}\n"
    "modules:\n"
    "  - {use: nomod}\n"
    "  - {use: good, as: rep, with: {label: a, extra: 1}, at: villag}\n"
    "  - {use: good, as: rep, with: {label: b}}\n"
    "  - {use: good, as: g2}\n"
    "  - {use: good, as: g3, with: {label: [1, 2]}}\n"
    "  - {use: placeholders, with: {items: [a, b]}}\n"
    "steps:\n  - {id: a, title: 甲, role: director}\n"
    "  - {id: b, title: 乙, role: director, when: 'steps.rep.outputs'}\n",
    "same-1.yaml": HEAD.format(id="same") + "steps:\n  - {id: a, title: 甲, role: director}\n",
    "same-2.yaml": HEAD.format(id="same") + "steps:\n  - {id: a, title: 甲, role: director}\n",
}

MODULES = {
    "good.yaml": "id: good\ntitle: 好\nparams:\n  label: {type: string, required: true}\n"
    "steps:\n  - {id: s, title: '处理 ${label}', role: director}\n",
    "placeholders.yaml": "id: placeholders\ntitle: 占位\nparams:\n  items: {type: list}\n"
    "steps:\n  - {id: s, title: '处理 ${items}', role: director, due: '${nothere}'}\n",
    "wrong-id.yaml": "id: other\ntitle: 错\nsteps: []\n",
    "list.yaml": "- a\n",
    "extra.yaml": "id: extra\ntitle: 多\nbogus: 1\n"
    "steps:\n  - {id: s, title: 甲, role: director}\n",
}

# (file, key path, how the message begins): one line each, at least, must be printed.
EXPECTED = [
    ("yaml-syntax.yaml", "", "格式有误，不是有效的 YAML / invalid YAML: "),
    ("top-duplicate-key.yaml", "", "顶层重复的键 id / top level: duplicate key 'id'"),
    ("step-duplicate-key.yaml", "steps[0] (a)", "重复的键 due / duplicate key 'due'"),
    ("control-char.yaml", "", "含有不允许的字符 / invalid YAML: "),
    ("undefined-alias.yaml", "", "别名 *nope 没有对应的锚点"),
    ("merge-key.yaml", "", "不支持 YAML 合并键"),
    ("two-documents.yaml", "", "一个文件只能有一个 YAML 文档"),
    ("impossible-date.yaml", "description", "不是有效的值 '2025-02-30'"),
    ("not-a-mapping.yaml", "", "流程文件应为映射"),
    ("not-utf8.yaml", "", "无法读取：不是 UTF-8 文本 / cannot read: not UTF-8 text"),
    ("header.yaml", "id", "标识 'Bad Id' 无效"),
    ("header.yaml", "version", "不能小于 1；收到 0 / must be at least 1; got 0"),
    ("header.yaml", "title", "应为文本；收到 3"),
    ("header.yaml", "colour", "没有字段 colour（可选：id、version、"),
    ("header.yaml", "stages", "阶段 a 写了两次"),
    ("header.yaml", "params.x.type", "无效的取值 'strin'（可选：'string'、'int'、"),
    ("header.yaml", "params.k", "枚举类型须有 values 列表"),
    ("header.yaml", "params.Big", "名称 'Big' 无效"),
    ("header.yaml", "params.d.default", "默认值不符合 int 类型：应为整数"),
    ("header.yaml", "params.s.min", "只有 int 和 number 类型才能写 min"),
    ("header.yaml", "params.v.values", "只有 enum 类型才能写 values"),
    ("header.yaml", "params.r.max", "最大值 max（5）小于最小值 min（9）"),
    ("header.yaml", "params.n.min", "应为数字；收到 '1'"),
    ("header.yaml", "params.f.min", "最小值 min 不符合 int 类型"),
    ("header.yaml", "params.e.values", "枚举的可选值不能重复"),
    ("no-version.yaml", "version", "缺少必填字段 version / missing required key 'version'"),
    ("params-not-mapping.yaml", "params", "应为映射（键: 值）；收到 [1]"),
    ("steps-not-list.yaml", "steps", "应为步骤列表；收到 dict / expected a list of steps"),
    ("no-steps.yaml", "steps", "流程至少要有一个步骤 / a playbook needs at least one step"),
    ("steps.yaml", "steps[0] (role).role", "没有角色 nobody（可选："),
    ("steps.yaml", "steps[1] (due).due",
     "应为时长，如 30s、5m、2h、30d 或 5wd（工作日）；收到 '5x'"),
    ("steps.yaml", "steps[2] (due-int).due", "时长须带单位"),
    ("steps.yaml", "steps[3] (needs).needs[0]", "没有步骤 zz（可选："),
    ("steps.yaml", "steps[4] (self).needs[0]", "步骤不能依赖自身 / a step cannot need itself"),
    ("steps.yaml", "steps[5] (c1).needs[0]", "循环依赖：c1 -> c2 -> c1 / cycle: c1 -> c2 -> c1"),
    ("steps.yaml", "steps[7] (role).id", "步骤 id role 重复（首次定义于第 7 行）"),
    ("steps.yaml", "steps[8] (stage).stage", "没有阶段 warning（流程未分阶段）"),
    ("steps.yaml", "steps[9] (tpl).template", "没有模板 nope.md.j2（可选：t.md.j2、u.md.j2）"),
    ("steps.yaml", "steps[10] (tpl-out).template",
     "模板 ../x.j2 必须位于流程目录的 templates/ 之内"),
    ("steps.yaml", "steps[11] (child).playbook", "没有流程 nowhere（可选："),
    ("steps.yaml", "steps[12] (syntax).when", "表达式写法有误 / invalid expression: "),
    ("steps.yaml", "steps[13] (empty).when", "表达式为空 / invalid expression: it is empty"),
    ("steps.yaml", "steps[14] (name).when", "表达式中没有名称 prams（可用："),
    ("steps.yaml", "steps[15] (param).when", "没有参数 level（可选：grade）"),
    ("steps.yaml", "steps[16] (step-ref).when", "没有步骤 nope（可选："),
    ("steps.yaml", "steps[17] (filter).for_each", "没有名为 nosuch 的过滤器 / no filter named 'nos"
                                                  "uch'"),
    ("steps.yaml", "steps[18] (test).when", "没有名为 nosuch 的测试 / no test named 'nosuch'"),
    ("steps.yaml", "steps[19] (notify).to", "通知步骤须写 to"),
    ("steps.yaml", "steps[19] (notify).template", "通知步骤须写 template"),
    ("steps.yaml", "steps[20] (wait).due", "等待步骤须写 due"),
    ("steps.yaml", "steps[21] (task).role", "任务步骤须写 role"),
    ("steps.yaml", "steps[22] (only).playbook", "只有 action: playbook 的步骤才能写 playbook"),
    ("steps.yaml", "steps[22] (only).with", "只有 action: playbook 的步骤才能写 with"),
    ("steps.yaml", "steps[22] (only).number",
     "只有 action: document 或 notify 的步骤才能写 number"),
    ("steps.yaml", "steps[23] (verify-only).verify", "只有 action: task 的步骤才能写 verify"),
    ("steps.yaml", "steps[24] (ladder).remind", "提醒从时限倒数，请加上 due"),
    ("steps.yaml", "steps[24] (ladder).escalate", "升级从时限起算，请加上 due 或 ack"),
    ("steps.yaml", "steps[24] (ladder).escalate[1].after", "升级各级须按 after 从短到长排列"),
    ("steps.yaml", "steps[24] (ladder).escalate[1].notify[0]", "没有角色或通道 nobody（角色："),
    ("steps.yaml", "steps[25] (verify-due).verify.escalate", "核验升级从核验时限起算"),
    ("steps.yaml", "steps[26] (twice).needs", "同一步骤在 needs 中写了两次"),
    ("steps.yaml", "steps[27] (empty-notify).escalate[0].notify", "不能为空 / must not be empty"),
    ("steps.yaml", "steps[28] (evidence).evidence.photos", "不能小于 0；收到 -1"),
    ("steps.yaml", "steps[29] (note).evidence.note", "应为 true 或 false；收到 'maybe'"),
    ("steps.yaml", "steps[30] (remind).remind", "应为列表；收到 'soon'"),
    ("steps.yaml", "steps[31]", "应为映射（键: 值）；收到 'just text'"),
    ("steps.yaml", "steps[32] (blank).title", "不能为空"),
    ("steps.yaml", "steps[33] (untitled).title", "缺少必填字段 title"),
    ("steps.yaml", "steps[34] (act).action", "无效的取值 'notfy'（可选：'task'、"),
    ("steps.yaml", "steps[35] (key).colour", "没有字段 colour（可选：id、title、"),
    ("steps.yaml", "steps[36] (prefix1).number", "文号前缀写到年份之前为止"),
    ("steps.yaml", "steps[37] (prefix2).number", "文号前缀是发文机关代字"),
    ("steps.yaml", "steps[38] (prefix3).number", "文号前缀须为 1 至 20 个字"),
    ("steps.yaml", "steps[39] (repeat).escalate[0].repeat", "重复间隔 repeat 须大于 0"),
    ("steps.yaml", "steps[41] (doc-b).number", "步骤 doc-a（第 53 行）已用文号前缀 坪应急"),
    ("steps.yaml", "steps[42] (phase).verify.phase", "过长：最多 40 个字符"),
    ("steps.yaml", "steps[43] (at).at", "组织架构中没有单位类型 villag（现有："),
    ("modules.yaml", "started_by[0]", "没有角色 nobody（可选："),
    ("modules.yaml", "register.closed_by", "没有步骤 nope（可选："),
    ("modules.yaml", "modules[0] (nomod).use", "没有模块 nomod（可选："),
    ("modules.yaml", "modules[1] (rep).with.extra", "模块 good 没有参数 extra（可选：label）"),
    ("modules.yaml", "modules[1] (rep).at", "组织架构中没有单位类型 villag"),
    ("modules.yaml", "modules[2] (rep).as", "模块前缀 rep 用了两次"),
    ("modules.yaml", "modules[3] (g2).with.label", "模块 good 需要在 with 中给出 label 的值"),
    ("modules.yaml", "modules[4] (g3).with.label", "模块参数 label：应为文本；收到 [1, 2]"),
    ("modules.yaml", "steps[1] (b).when", "模块 rep 中的步骤要写成 steps['rep.<id>']"),
    ("modules/placeholders.yaml", "steps[0] (s).title", "模块参数 items 是 list"),
    ("modules/placeholders.yaml", "steps[0] (s).due", "没有模块参数 nothere（可选：items）"),
    ("same-2.yaml", "id", "流程 id same 重复（另见 "),
    ("modules/wrong-id.yaml", "id", "模块 id 须与文件名一致：wrong-id"),
    ("modules/wrong-id.yaml", "steps", "模块须有步骤列表，且不能为空"),
    ("modules/list.yaml", "", "模块文件应为映射（键: 值）"),
    ("modules/extra.yaml", "bogus", "没有字段 bogus（可选：id、title、"),
]

# A location, an optional key path, then the Chinese and the English halves.
LINE = re.compile(
    r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): "
    r"(?:(?P<path>[A-Za-z0-9_.\[\]-]+(?: \([a-z0-9_.-]+\)[A-Za-z0-9_.\[\]-]*)*): )?"
    r"(?P<zh>.+?) / (?P<en>.+)$"
)
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("bad")
    (root / "modules").mkdir()
    (root / "templates").mkdir()
    for name in ("t.md.j2", "u.md.j2"):
        (root / "templates" / name).write_text("{{ run.id }}\n", encoding="utf-8")
    for name, text in PLAYBOOKS.items():
        data = text if isinstance(text, bytes) else text.encode("utf-8")
        (root / name).write_bytes(data)
    for name, text in MODULES.items():
        (root / "modules" / name).write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOSELOOP_", "PREFECT_"))}
    env |= {"CLOSELOOP_DATA_DIR": str(root / "data"), "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run([sys.executable, "-m", "api.cli", "validate", str(root)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr == ""
    return root, done.stdout.splitlines()


def test_validate_every_message_is_chinese_first_after_its_location(
    printed: tuple[Path, list[str]],
) -> None:
    root, lines = printed
    for line in lines:
        match = LINE.match(line)
        assert match, f"not `file:line:col: path: 中文 / English`: {line}"
        assert match["file"].startswith(str(root)), line
        assert int(match["line"]) >= 1 and int(match["col"]) >= 1, line
        assert CJK.match(match["zh"]), f"does not start with Chinese after the path: {line}"
        assert match["en"][:1].isascii() and not CJK.match(match["en"]), line


@pytest.mark.parametrize(("file", "path", "start"), EXPECTED,
                         ids=[f"{f}:{p or '-'}" for f, p, _ in EXPECTED])
def test_validate_reports_each_kind_of_mistake_in_chinese(
    printed: tuple[Path, list[str]], file: str, path: str, start: str
) -> None:
    root, lines = printed
    prefix = re.escape(str(root / file)) + r":\d+:\d+: " + (re.escape(path) + ": " if path else "")
    found = [line for line in lines if re.match(prefix + re.escape(start), line)]
    assert found, f"no `{file}: {path}: {start}...` in:\n" + "\n".join(lines)


def test_validate_keeps_the_position_and_the_english_after_the_chinese(
    printed: tuple[Path, list[str]],
) -> None:
    root, lines = printed
    assert (f"{root}/steps.yaml:22:51: steps[15] (param).when: 没有参数 level（可选：grade） / "
            "unknown parameter 'level' (known: grade)") in lines
    assert (f"{root}/steps.yaml:10:52: steps[3] (needs).needs[0]: 没有步骤 zz（可选：role、due、du"
            "e-int、"
            "self、c1 等，共 41 个） / unknown step 'zz' (known: role, due, due-int, self, c1, ... "
            "(41 in all))") in lines
