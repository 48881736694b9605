"""models.yamlpos refuses YAML that would take the process down, at the offending position.

Anyone with a token may send a playbook to validate, so nesting (PyYAML's and libyaml's
composers recurse once per level and segfault at ~30,000) and alias expansion ("billion
laughs": 500 bytes -> 10^9 values) are bounded before anything recurses or expands. The two
dangerous inputs run in a child process capped at 512 MiB of address space: were a limit to
break, the child fails (MemoryError, segfault) instead of the test run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from models.yamlpos import (
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    YamlSyntaxError,
    load_with_positions,
)

ROOT = Path(__file__).resolve().parents[2]
CAP_BYTES = 512 * 2**20

# Loads argv[1] with the address space capped and prints the outcome as JSON.
CHILD = f"""
import json, resource, sys
from models.yamlpos import YamlSyntaxError, load_with_positions
text = open(sys.argv[1], encoding="utf-8").read()
resource.setrlimit(resource.RLIMIT_AS, ({CAP_BYTES}, {CAP_BYTES}))
try:
    load_with_positions(text, "bomb.yaml")
    print(json.dumps({{"loaded": True}}))
except YamlSyntaxError as exc:
    print(json.dumps({{"line": exc.line, "col": exc.col, "message": exc.message}}))
"""


def load_capped(text: str, tmp_path: Path) -> dict[str, object]:
    source = tmp_path / "bomb.yaml"
    source.write_text(text, encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", CHILD, str(source)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    return json.loads(done.stdout)


def error_of(text: str) -> str:
    with pytest.raises(YamlSyntaxError) as caught:
        load_with_positions(text, "f.yaml")
    return str(caught.value)


def laughs(levels: int, width: int = 9) -> str:
    """`a: &a [x, ...]`, `b: &b [*a, *a, ...]`, ...: width**levels values once expanded."""
    lines = [f"a: &a [{', '.join(['x'] * width)}]"]
    for i in range(1, levels):
        name, prev = chr(ord("a") + i), chr(ord("a") + i - 1)
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * width)}]")
    return "\n".join(lines) + "\n"


def test_load_billion_laughs_is_refused_at_the_first_alias_past_the_budget(
    tmp_path: Path,
) -> None:
    text = laughs(9)  # 9**9 ≈ 3.9 * 10^8 values from 324 bytes
    assert len(text.encode()) < 500
    # The aliases of b to e repeat 90 + 819 + 7,380 + 66,420 values; f's first *e (66,430
    # more) passes MAX_ALIAS_NODES.
    assert load_capped(text, tmp_path) == {
        "line": 6, "col": 8,
        "message": f"别名 *e：别名展开的值总计将超过 {MAX_ALIAS_NODES:,} 个 / invalid YAML: "
                   f"alias *e: aliases would repeat more than {MAX_ALIAS_NODES:,} values in all",
    }


def test_load_nesting_100000_deep_is_refused_before_anything_recurses(tmp_path: Path) -> None:
    text = "id: " + "[" * 100_000 + "]" * 100_000  # 200 KB; segfaulted libyaml's composer
    # The mapping is level 1, so bracket MAX_DEPTH (column 4 + MAX_DEPTH) is one too many.
    assert load_capped(text, tmp_path) == {
        "line": 1, "col": 4 + MAX_DEPTH,
        "message": f"嵌套过深（超过 {MAX_DEPTH} 层） / invalid YAML: nested too deeply (more "
                   f"than {MAX_DEPTH} levels)",
    }


def nested_block(levels: int) -> str:
    """`levels` block mappings, each the value of the one before: k0: / k1: / ... / v."""
    return "".join(f"{'  ' * i}k{i}:\n" for i in range(levels)) + f"{'  ' * levels}v\n"


def test_load_nesting_at_the_limit_loads_and_one_more_is_refused() -> None:
    flow = "id: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)  # the mapping is level 1
    _, positions = load_with_positions(flow, "f.yaml")
    assert positions.of(("id", *[0] * (MAX_DEPTH - 2))).col == 4 + MAX_DEPTH - 1
    data, _ = load_with_positions(nested_block(MAX_DEPTH), "f.yaml")
    assert data["k0"]["k1"]["k2"] is not None
    assert error_of(nested_block(MAX_DEPTH + 1)) == (
        f"f.yaml:{MAX_DEPTH + 1}:{2 * MAX_DEPTH + 1}: 嵌套过深（超过 {MAX_DEPTH} 层） / "
        f"invalid YAML: nested too deeply (more than {MAX_DEPTH} levels)")
    assert error_of("id: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH) == (
        f"f.yaml:1:{4 + MAX_DEPTH}: 嵌套过深（超过 {MAX_DEPTH} 层） / invalid YAML: nested "
        f"too deeply (more than {MAX_DEPTH} levels)")


def test_load_aliases_up_to_the_budget_expand_and_one_more_value_is_refused() -> None:
    # An anchored list of 1,000 values (999 scalars and the list itself) used 100 times.
    uses = MAX_ALIAS_NODES // 1000
    text = f"a: &a [{', '.join(['x'] * 999)}]\nb: [{', '.join(['*a'] * uses)}]\n"
    data, _ = load_with_positions(text, "f.yaml")
    assert len(data["b"]) == uses and data["b"][-1] == ["x"] * 999
    assert data["b"][0] is not data["b"][1]  # every use is its own copy, as before
    assert error_of(text + "c: &c 1\nd: *c\n") == (
        f"f.yaml:4:4: 别名 *c：别名展开的值总计将超过 {MAX_ALIAS_NODES:,} 个 / invalid YAML: "
        f"alias *c: aliases would repeat more than {MAX_ALIAS_NODES:,} values in all")


def test_load_small_anchor_reused_keeps_working_with_the_anchors_position() -> None:
    text = ("steps:\n"
            "  - {id: a, when: &major \"params.grade == '重大'\"}\n"
            "  - {id: b, when: *major}\n")
    data, positions = load_with_positions(text, "f.yaml")
    assert data["steps"][1]["when"] == "params.grade == '重大'"
    # A value that came from an alias is where it was written: at the anchor.
    assert positions.of(("steps", 1, "when")) == positions.of(("steps", 0, "when"))
    assert positions.of_key(("steps", 1, "when")).line == 3


@pytest.mark.parametrize(("text", "want"), [
    ("a: &x [1, *x]\n",
     "f.yaml:1:11: 别名 *x 指向包含它自己的节点（递归结构） / invalid YAML: alias *x refers to "
     "a node that contains it (a recursive structure)"),
    ("a: 1\nb: *nowhere\n", "f.yaml:2:4: 别名 *nowhere 没有对应的锚点 / invalid YAML: found "
     "undefined alias 'nowhere'"),
    ("a: &x 1\nb: &x 2\n", "f.yaml:2:4: 锚点 &x 重复 / invalid YAML: found duplicate anchor "
     "'x'"),
    ("a: 1\n---\nb: 2\n", "f.yaml:2:1: 一个文件只能有一个 YAML 文档（--- 之后又有一个） / "
     "invalid YAML: expected a single document in the stream, but found another document"),
])
def test_load_bad_alias_or_stream_is_reported_where_it_is(text: str, want: str) -> None:
    assert error_of(text) == want


@pytest.mark.parametrize(("text", "where"), [
    ("id: x\x00", "1:6"),
    # libyaml reports a byte offset: the column still counts characters.
    ("title: 演示演示\nid: x\x00\n", "2:6"),
    ("id: x\n\x07\n", "2:1"),
])
def test_load_control_character_is_a_positioned_error(text: str, where: str) -> None:
    assert error_of(text) == (f"f.yaml:{where}: 含有不允许的字符 / invalid YAML: control "
                              "characters are not allowed")


def test_load_lone_surrogate_is_an_error_not_a_crash() -> None:
    assert error_of("a: 1\nb: x\ud800\n") == (
        "f.yaml:2:5: 不是有效的 Unicode 文本 / invalid YAML: not valid Unicode text")


def test_load_unknown_tag_on_a_key_is_an_error_not_a_crash() -> None:
    assert error_of("? !!python/object:os.system x\n: 1\n") == (
        "f.yaml:1:3: 格式有误，不是有效的 YAML / invalid YAML: could not determine a "
        "constructor for the tag 'tag:yaml.org,2002:python/object:os.system'")
