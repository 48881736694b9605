"""The playbook loader: every invalid example gives exactly its errors, valid ones compile.

Each tests/fixtures/playbooks/<name>.yaml with a <name>.expected sidecar must fail with exactly
the lines of the sidecar, in order (`file:line:col: path: message`, as the CLI prints them).
Paths in messages are relative to the repository root, so the tests run from there.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flows.graph import topological_order
from flows.loader import (
    LoadContext,
    load_catalog,
    load_playbook_file,
    load_playbook_text,
    validate_paths,
)
from flows.schema_export import playbook_json_schema, render
from flows.spec import Playbook, StepSpec
from models.errors import PlaybookInvalid

ROOT = Path(__file__).resolve().parents[2]
DATA = Path("tests/fixtures/playbooks")
ROLES = {
    "duty_officer",
    "section_chief",
    "director",
    "commander",
    "inspector",
    "rectifier",
    "township_head",
    "village_head",
}
CHANNELS = {"county_duty_office"}
EXPECTED = sorted((ROOT / DATA).glob("*.expected"))
VALID = ["gas-leak", "hazard-3030", "typhoon-633"]


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def context(playbooks_dir: Path = DATA, **overrides: object) -> LoadContext:
    values: dict[str, object] = {
        "known_roles": set(ROLES),
        "known_channels": set(CHANNELS),
        "known_playbooks": set(VALID),
    }
    values.update(overrides)
    return LoadContext(playbooks_dir, **values)  # type: ignore[arg-type]


def errors_of(path: Path, ctx: LoadContext | None = None) -> list[str]:
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook_file(path, context=ctx or context())
    return [str(error) for error in caught.value.errors]


def minimal(steps: str, head: str = "") -> str:
    return f"id: demo\nversion: 1\ntitle: 演示\n{head}steps:\n{steps}"


@pytest.mark.parametrize("expected", EXPECTED, ids=lambda p: p.stem)
def test_load_invalid_example_reports_its_expected_errors(expected: Path) -> None:
    want = expected.read_text(encoding="utf-8").splitlines()
    assert errors_of(DATA / f"{expected.stem}.yaml") == want


def test_load_four_kinds_of_mistakes_reports_all_of_them() -> None:
    got = errors_of(DATA / "four-errors.yaml")
    assert got == [
        "tests/fixtures/playbooks/four-errors.yaml:12:13: steps[1] (verify).needs[0]: 没有步骤 ver"
        "fy"
        "（可选：receive、assess、decide、report、close） / unknown step 'verfy' "
        "(known: receive, assess, decide, report, close)",
        "tests/fixtures/playbooks/four-errors.yaml:16:13: steps[2] (assess).needs[0]: "
        "循环依赖：assess -> decide -> assess / cycle: assess -> decide -> assess",
        "tests/fixtures/playbooks/four-errors.yaml:25:10: steps[4] (report).due: 应为时长，如 30s"
        "、5m、2h、"
        "30d 或 5wd（工作日）；收到 '5 minutes' / expected a duration like "
        "30s, 5m, 2h, 30d or 5wd; got '5 minutes'",
        "tests/fixtures/playbooks/four-errors.yaml:28:11: steps[5] (close).role: 没有角色 dutyoffi"
        "cer"
        "（可选：commander、director、duty_officer、inspector、rectifier、section_chief、"
        "township_head、village_head） / unknown role "
        "'dutyofficer' (known: commander, director, duty_officer, inspector, rectifier, "
        "section_chief, township_head, village_head)",
    ]


@pytest.mark.parametrize("name", VALID)
def test_load_valid_example_compiles(name: str) -> None:
    playbook = load_playbook_file(DATA / f"{name}.yaml", context=context())
    assert playbook.id == name
    assert playbook.source_file == f"tests/fixtures/playbooks/{name}.yaml"


def test_load_catalog_keeps_valid_and_reports_every_invalid_file() -> None:
    catalog, errors = load_catalog(DATA, context=context(known_playbooks=None))
    assert sorted(catalog) == VALID
    want = [line for path in EXPECTED for line in path.read_text("utf-8").splitlines()]
    assert sorted(str(error) for error in errors) == sorted(want)


def test_load_catalog_duplicate_ids_leave_both_files_out(tmp_path: Path) -> None:
    text = minimal("  - {id: a, title: 甲, role: director}\n")
    (tmp_path / "one.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "two.yaml").write_text(text, encoding="utf-8")
    catalog, errors = load_catalog(tmp_path, context=context(tmp_path))
    assert catalog == {}
    assert [str(e) for e in errors] == [
        f"{tmp_path}/one.yaml:1:5: id: 流程 id demo 重复（另见 {tmp_path}/two.yaml） / "
        f"duplicate playbook id 'demo' (also in {tmp_path}/two.yaml)",
        f"{tmp_path}/two.yaml:1:5: id: 流程 id demo 重复（另见 {tmp_path}/one.yaml） / "
        f"duplicate playbook id 'demo' (also in {tmp_path}/one.yaml)",
    ]


def test_load_catalog_child_playbook_must_exist_in_directory(tmp_path: Path) -> None:
    steps = "  - {id: a, title: 甲, action: playbook, playbook: nowhere}\n"
    (tmp_path / "demo.yaml").write_text(minimal(steps), encoding="utf-8")
    _, errors = load_catalog(tmp_path, context=context(tmp_path, known_playbooks=None))
    assert [e.message for e in errors] == [
        "没有流程 nowhere（可选：demo） / unknown playbook 'nowhere' (known: demo)"
    ]


def test_validate_paths_directory_reports_playbooks_and_module_files(tmp_path: Path) -> None:
    shutil.copytree(ROOT / DATA, tmp_path, dirs_exist_ok=True)
    (tmp_path / "modules" / "odd.yaml").write_text("id: even\ntitle: 怪\nsteps: []\n", "utf-8")
    catalog_errors = load_catalog(tmp_path, context=context(tmp_path))[1]
    errors = validate_paths([tmp_path], context=context(tmp_path))
    odd = str(tmp_path / "modules" / "odd.yaml")
    assert [str(e) for e in errors if e.file == odd] == [
        f"{odd}:1:5: id: 模块 id 须与文件名一致：odd / the module id must match its file name: "
        "'odd'",
        f"{odd}:3:8: steps: 模块须有步骤列表，且不能为空 / a module needs a non-empty list of "
        "steps",
    ]
    assert [e for e in errors if e.file != odd] == catalog_errors


def test_validate_paths_says_a_path_that_is_there_but_no_file_is_not_one() -> None:
    elsewhere = LoadContext(Path("nowhere"), known_roles=ROLES, known_channels=CHANNELS)
    [error] = validate_paths([Path("/dev/null")], context=elsewhere)
    assert str(error) == ("/dev/null:1:1: 不是普通文件或目录 / not a regular file or "
                          "directory")
    [error] = validate_paths([Path("nowhere/at-all.yaml")], context=elsewhere)
    assert "文件或目录不存在" in str(error)


def test_validate_paths_file_takes_modules_and_siblings_from_its_directory() -> None:
    elsewhere = LoadContext(Path("nowhere"), known_roles=ROLES, known_channels=CHANNELS)
    assert validate_paths([DATA / "gas-leak.yaml"], context=elsewhere) == []
    errors = validate_paths([DATA / "four-errors.yaml"], context=elsewhere)
    assert len(errors) == 4


def test_validate_paths_missing_path_is_an_error() -> None:
    errors = validate_paths([Path("no/such.yaml")], context=context())
    assert [str(e) for e in errors] == [
        "no/such.yaml:1:1: 文件或目录不存在 / no such file or directory"
    ]


def test_topological_order_reports_each_cycle_once() -> None:
    # 0 needs 2, 2 needs 1, 1 needs 0: one cycle; 3 needs itself; 4 waits on the cycle.
    order, cycles = topological_order([[2], [0], [1], [3], [0], []])
    assert order == [5]
    assert cycles == [[0, 2, 1, 0], [3, 3]]


def test_compile_module_steps_are_prefixed_and_spliced() -> None:
    playbook = load_playbook_file(DATA / "gas-leak.yaml", context=context())
    assert playbook.step_ids == [
        "receive",
        "report.draft",
        "report.send",
        "verify",
        "major.verbal",
        "major.system",
        "dispatch",
        "rectify",
        "close",
    ]
    draft = playbook.step("report.draft")
    assert draft.needs == ["receive"]  # the module entry's `needs`
    assert str(draft.due.after) == "5m"  # type: ignore[union-attr]
    assert draft.file == "tests/fixtures/playbooks/modules/first-report.yaml"
    assert draft.line == 8
    send = playbook.step("report.send")
    assert send.needs == ["report.draft"]
    assert send.to == ["county_duty_office", "section_chief"]  # a list from `with`
    assert playbook.dependents("report.send") == ["dispatch"]


def test_compile_module_defaults_fill_missing_with_values() -> None:
    playbook = load_playbook_file(DATA / "gas-leak.yaml", context=context())
    verbal = playbook.step("major.verbal")
    assert verbal.due is not None
    assert (str(verbal.due.after), verbal.due.from_) == ("30m", "run")


def test_compile_module_when_is_folded_into_each_step() -> None:
    playbook = load_playbook_file(DATA / "gas-leak.yaml", context=context())
    assert playbook.step("major.system").when == "params.grade in ['重大', '特别重大']"
    text = minimal(
        "  - {id: a, title: 甲, role: director}\n",
        head="params:\n  go: {type: bool}\nmodules:\n  - use: first-report\n    when: params.go\n",
    ).replace("id: a,", "id: a, when: 'true',")
    folded = load_playbook_text(text, filename="demo.yaml", context=context())
    assert folded.step("first-report.draft").when == "params.go"
    assert folded.step("a").when == "true"


def test_compile_module_placeholders_inside_text_are_interpolated(tmp_path: Path) -> None:
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "go.yaml").write_text(
        "id: go\ntitle: 前往\nparams:\n  unit: {type: string, required: true}\n"
        "  hours: {type: int, default: 2}\n"
        "steps:\n  - id: go\n    title: '前往${unit}，限${hours}小时'\n"
        "    description: '写 $${unit} 得到字面的占位符'\n    role: director\n",
        encoding="utf-8",
    )
    text = minimal("  - {id: a, title: 甲, role: director}\n",
                   head="modules:\n  - {use: go, with: {unit: 坪山}}\n")
    playbook = load_playbook_text(text, filename="demo.yaml", context=context(tmp_path))
    step = playbook.step("go.go")
    assert step.title == "前往坪山，限2小时"
    assert step.description == "写 ${unit} 得到字面的占位符"


def test_compile_orders_steps_topologically_with_ties_in_file_order() -> None:
    text = minimal(
        "  - {id: close, title: 办结, role: director, needs: [b, a]}\n"
        "  - {id: b, title: 乙, role: director, needs: [start]}\n"
        "  - {id: a, title: 甲, role: director, needs: [start]}\n"
        "  - {id: start, title: 开始, role: director}\n"
    )
    playbook = load_playbook_text(text, filename="demo.yaml", context=context())
    assert playbook.step_ids == ["start", "b", "a", "close"]


def test_compile_round_trips_through_json() -> None:
    for name in VALID:
        playbook = load_playbook_file(DATA / f"{name}.yaml", context=context())
        stored = json.loads(json.dumps(playbook.model_dump(mode="json", by_alias=True)))
        again = Playbook.model_validate(stored)
        assert again == playbook
        assert again.model_dump(mode="json", by_alias=True) == stored


def test_compile_sha256_changes_when_a_used_module_changes(tmp_path: Path) -> None:
    shutil.copytree(ROOT / DATA, tmp_path, dirs_exist_ok=True)
    before = load_playbook_file(tmp_path / "gas-leak.yaml", context=context(tmp_path))
    module = tmp_path / "modules" / "first-report.yaml"
    module.write_text(module.read_text("utf-8").replace("起草首报", "起草首报（改）"), "utf-8")
    after = load_playbook_file(tmp_path / "gas-leak.yaml", context=context(tmp_path))
    assert before.sha256 != after.sha256
    assert after.step("report.draft").title == "起草首报（改）"


def test_load_without_known_roles_skips_role_checks() -> None:
    text = minimal("  - {id: a, title: 甲, role: nobody, verify: {role: ghost}}\n")
    playbook = load_playbook_text(text, filename="demo.yaml", context=context(known_roles=None))
    assert playbook.step("a").role == "nobody"


def test_load_channel_is_accepted_as_a_recipient_not_as_a_role() -> None:
    text = minimal(
        "  - {id: a, title: 甲, action: notify, template: first-report.md.j2, "
        "to: [county_duty_office]}\n"
        "  - {id: b, title: 乙, role: county_duty_office}\n"
    )
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook_text(text, filename="demo.yaml", context=context())
    assert [e.path for e in caught.value.errors] == ["steps[1].role"]


def test_load_helper_names_come_from_the_context() -> None:
    text = minimal("  - {id: a, title: 甲, role: director, for_each: 'villages()'}\n")
    with pytest.raises(PlaybookInvalid):
        load_playbook_text(text, filename="demo.yaml", context=context())
    ctx = context(expression_names={"villages"})
    playbook = load_playbook_text(text, filename="demo.yaml", context=ctx)
    assert playbook.step("a").for_each == "villages()"


def test_load_text_that_is_not_a_mapping_is_reported() -> None:
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook_text("- just\n- a list\n", filename="demo.yaml", context=context())
    assert [str(e) for e in caught.value.errors] == [
        "demo.yaml:1:1: 流程文件应为映射（键: 值），含 id、version、title、params、modules、steps"
        " / a playbook is a mapping of keys: id, version, title, params, modules, steps"
    ]


def test_load_playbook_without_steps_is_reported() -> None:
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook_text("id: demo\nversion: 1\ntitle: 空\n", filename="demo.yaml",
                           context=context())
    assert [str(e) for e in caught.value.errors] == [
        "demo.yaml:1:1: steps: 流程至少要有一个步骤 / a playbook needs at least one step"
    ]


def test_load_bad_value_from_module_with_points_at_the_with_entry() -> None:
    errors = errors_of(DATA / "bad-module-with.yaml")
    where = "tests/fixtures/playbooks/bad-module-with.yaml:7:17: modules[0] (report).with.due:"
    assert errors[0].startswith(where)


def test_load_value_shared_by_an_alias_is_one_mistake_at_its_line() -> None:
    # Two steps reading one aliased list: the unknown role is written once, so it is told
    # once, at the anchor, not again under the second step's path.
    notify = ("  - id: {id}\n    title: 发送\n    action: notify\n    needs: [receive]\n"
              "    template: first-report.md.j2\n    to: {to}\n")
    text = minimal("  - id: receive\n    title: 接警\n    role: duty_officer\n"
                   + notify.format(id="a", to="&leaders [directr, director]")
                   + notify.format(id="b", to="*leaders"))
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook_text(text, filename="demo.yaml", context=context())
    assert [f"{e.line}:{e.col}: {e.path}" for e in caught.value.errors] == [
        "13:19: steps[1].to[0]"]
    assert "没有角色或通道 directr" in caught.value.errors[0].message


def test_load_unreadable_file_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook_file(missing, context=context(tmp_path))
    assert caught.value.errors[0].message == (
        "无法读取文件 / cannot read: No such file or directory"
    )


def test_step_lookup_of_unknown_id_raises_key_error() -> None:
    playbook = load_playbook_file(DATA / "hazard-3030.yaml", context=context())
    with pytest.raises(KeyError):
        playbook.step("nope")


def test_playbook_model_rejects_steps_out_of_order() -> None:
    steps = [
        StepSpec(id="b", title="乙", role="x", needs=["a"]),
        StepSpec(id="a", title="甲", role="x"),
    ]
    with pytest.raises(ValueError, match="needs 'a', which is unknown or not before it"):
        Playbook(id="demo", version=1, title="演示", steps=steps, source_file="x", sha256="0")


def test_schema_export_matches_the_committed_file() -> None:
    committed = (ROOT / "playbooks" / "playbook.schema.json").read_text(encoding="utf-8")
    assert render(playbook_json_schema()) == committed


def test_schema_export_describes_every_property() -> None:
    schema = playbook_json_schema()
    models = [schema, *schema["$defs"].values()]
    missing = [
        f"{model.get('title')}.{name}"
        for model in models
        for name, prop in model.get("properties", {}).items()
        if "description" not in prop
    ]
    assert missing == []


def test_load_5000_step_chain_is_within_the_yaml_limits() -> None:
    steps = "".join(f"  - {{id: s{i}, title: 第{i}步, role: director"
                    + (f", needs: [s{i - 1}]}}\n" if i else "}\n") for i in range(5000))
    playbook = load_playbook_text(minimal(steps), filename="demo.yaml", context=context())
    assert len(playbook.steps) == 5000 and playbook.step("s4999").needs == ["s4998"]


def test_validate_paths_reports_hostile_yaml_as_errors_not_tracebacks(tmp_path: Path) -> None:
    """What `closeloop validate FILE...` prints for an alias bomb, nesting past the limit and a
    NUL: one positioned error each (the CLI used to end in MemoryError, a segfault, and a
    ReaderError traceback)."""
    names = ["alias-bomb", "too-deep", "nul-char"]
    errors = validate_paths([DATA / f"{name}.yaml" for name in names], context=context())
    want = [(DATA / f"{name}.expected").read_text("utf-8").strip() for name in names]
    assert [str(e) for e in errors] == want


def test_stage_titles_name_the_stages_and_a_title_of_no_stage_is_refused_at_its_line(
        tmp_path: Path) -> None:
    text = ("id: storm\nversion: 1\ntitle: 台风\nkind: typhoon\nstages: [watch, warning]\n"
            "stage_titles:\n  watch: 台风消息\n  warnin: 台风警报\n"
            "steps:\n  - {id: a, title: 叫应, role: commander, stage: warning}\n")
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook_text(text, filename="storm.yaml", context=context())
    assert [str(e) for e in caught.value.errors] == [
        "storm.yaml:8:11: stage_titles.warnin: 没有阶段 warnin（可选：watch、warning） / "
        "unknown stage 'warnin' (known: watch, warning)"]
    playbook = load_playbook_text(text.replace("warnin:", "warning:"), filename="storm.yaml",
                                  context=context())
    assert playbook.stage_titles == {"watch": "台风消息", "warning": "台风警报"}
    assert [playbook.stage_title(s) for s in ("watch", "warning", None)] == [
        "台风消息", "台风警报", None]


def test_title_params_name_declared_params_and_an_unknown_one_is_refused_at_its_line() -> None:
    text = ("id: storm\nversion: 1\ntitle: 台风\nparams:\n  name: {type: string}\n"
            "title_params: [name, nmae]\n"
            "steps:\n  - {id: a, title: 叫应, role: commander}\n")
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook_text(text, filename="storm.yaml", context=context())
    assert [str(e) for e in caught.value.errors] == [
        "storm.yaml:6:22: title_params[1]: 没有参数 nmae（可选：name） / unknown param 'nmae' "
        "(known: name)"]
    playbook = load_playbook_text(text.replace(", nmae", ""), filename="storm.yaml",
                                  context=context())
    assert playbook.title_params == ["name"]


ITEM_STEPS = """\
  - {id: move, title: 转移, role: village_head, for_each: "units(type='village')"}
  - {id: back, title: 返回, role: village_head, needs: [move], item_needs: [move],
     for_each: "units(type='village')"}
"""


def test_item_needs_pair_a_fan_out_with_the_same_fan_out_of_a_need() -> None:
    playbook = load_playbook_text(minimal(ITEM_STEPS), filename="pairs.yaml", context=context())
    assert playbook.step("back").item_needs == ["move"]


def item_needs_errors(steps: str) -> list[str]:
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook_text(minimal(steps), filename="pairs.yaml", context=context())
    return [str(e) for e in caught.value.errors]


def test_item_needs_not_in_needs_is_refused_at_its_line() -> None:
    steps = ITEM_STEPS.replace("needs: [move], item_needs: [move]",
                               "needs: [move], item_needs: [mvoe]")
    assert item_needs_errors(steps) == [
        "pairs.yaml:6:75: steps[1] (back).item_needs[0]: mvoe 须同时写在 needs 中（item_needs 只说"
        "明按项"
        "等待） / 'mvoe' must also be in 'needs' (item_needs says how it is waited for)"]


def test_item_needs_without_a_fan_out_of_its_own_is_refused() -> None:
    steps = ITEM_STEPS.replace(',\n     for_each: "units(type=\'village\')"}', "}")
    assert item_needs_errors(steps) == [
        "pairs.yaml:6:74: steps[1] (back).item_needs: item_needs 按项等待，须配合 for_each"
        "（本步骤逐项分派） / item_needs waits item by item: the step needs a 'for_each'"]


def test_item_needs_on_a_step_fanned_out_over_another_list_is_refused_at_its_line() -> None:
    steps = ITEM_STEPS.replace("""for_each: "units(type='village')"}\n  - {id: back""",
                               """for_each: "units(type='township')"}\n  - {id: back""")
    assert item_needs_errors(steps) == [
        "pairs.yaml:6:75: steps[1] (back).item_needs[0]: 步骤 move 须与本步骤按同一 for_each 分派"
        "才能按项"
        "等待（它的是 units(type='township')，本步骤是 units(type='village')） / step 'move' must "
        "fan out over the same for_each to be waited for item by item (it has "
        "units(type='township'), this step units(type='village'))"]


def test_not_future_is_only_for_datetime_outputs() -> None:
    steps = ("  - {id: a, title: 转移, role: village_head, outputs: {people: {type: int, "
             "not_future: true}}}\n")
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook_text(minimal(steps), filename="times.yaml", context=context())
    [error] = caught.value.errors
    assert str(error).startswith("times.yaml:5:")
    assert "只有 datetime 类型才能写 not_future（这里是 int）" in str(error)
    fine = steps.replace("type: int", "type: datetime")
    playbook = load_playbook_text(minimal(fine), filename="times.yaml", context=context())
    assert playbook.step("a").outputs["people"].not_future is True


def test_a_playbook_saved_as_yml_is_named_not_skipped(tmp_path: Path) -> None:
    """`validate` of a folder said "valid" while the server would never load a .yml file."""
    (tmp_path / "leak.yml").write_text("id: leak\nversion: 1\ntitle: 泄漏\nsteps: []\n",
                                       encoding="utf-8")
    errors = validate_paths([tmp_path], context=context(tmp_path))
    assert [(e.file, e.line, e.message.split(" / ")[0]) for e in errors] == [
        (str(tmp_path / "leak.yml"), 1,
         "流程文件的扩展名须为 .yaml，此文件不会被加载（请改名为 leak.yaml）")]


def test_a_childs_constant_params_are_checked_when_the_folder_loads(tmp_path: Path) -> None:
    """`with: {grade: 特大}` for a child whose grade is 一般/重大 loaded, and the child run
    failed to start at run time, every time; a {{ }} value is known only then."""
    shutil.copy(Path("tests/fixtures/engine/register-demo.yaml"), tmp_path)
    (tmp_path / "parent.yaml").write_text("""\
id: parent
version: 1
title: 启动整改
steps:
  - id: bad
    title: 登记隐患
    action: playbook
    playbook: register-demo
    with: {location: 仓库, grade: 特大}
  - id: later
    title: 登记另一隐患
    action: playbook
    playbook: register-demo
    with: {location: "{{ run.title }}"}
""", encoding="utf-8")
    catalog, errors = load_catalog(tmp_path, context=context(tmp_path, known_roles=None))
    assert [(e.line, e.path, e.message.split(" / ")[0]) for e in errors] == [
        (9, "steps[0].with.grade", "子流程 register-demo：'特大' 不是可选值（可选：一般、重大）")]
    assert sorted(catalog) == ["register-demo"]  # the parent does not load
