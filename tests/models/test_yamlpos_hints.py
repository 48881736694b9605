"""models.yamlpos: the mistakes of someone typing YAML with a Chinese input method are named
at their own line, in Chinese: a key's full-width colon (YAML itself stops a line later, at
"could not find expected ':'"), a tab in the indentation, a line out of alignment."""

from __future__ import annotations

import pytest

from models.yamlpos import YamlSyntaxError, load_with_positions


def _error(text: str) -> YamlSyntaxError:
    with pytest.raises(YamlSyntaxError) as caught:
        load_with_positions(text, "org.yaml")
    return caught.value


def test_a_full_width_colon_after_a_key_is_named_at_its_own_line_and_column() -> None:
    text = ("units:\n"
            "  - id: pingshan\n"
            "    name: 坪山区\n"
            "    type：district\n"
            "    people: []\n")
    error = _error(text)
    assert (error.line, error.col) == (4, 9)
    assert error.message.startswith("键后面用了全角冒号“：”，请改为半角冒号“:”")


def test_a_full_width_colon_inside_a_value_is_not_taken_for_the_mistake() -> None:
    # The value's 时间：16:30 is fine YAML; the mistake is the tab two lines down.
    text = ("steps:\n"
            "  - id: a\n"
            "    title: 时间：16点\n"
            "    role: x\n"
            "\tdue: 5m\n")
    error = _error(text)
    assert (error.line, error.col) == (5, 1)
    assert error.message.startswith("缩进里有制表符（Tab）")


def test_a_line_indented_one_space_too_far_says_it_is_out_of_alignment() -> None:
    error = _error("steps:\n  - id: a\n     title: 接警\n    role: x\n")
    assert error.line == 3
    assert error.message.startswith("格式有误：这一行的缩进与同级的行没有对齐")


def test_other_syntax_errors_keep_the_general_message() -> None:
    error = _error("steps: [a, b\n")
    assert error.message.startswith("格式有误，不是有效的 YAML / invalid YAML: ")


def test_a_tab_before_a_dash_is_named_as_a_tab_at_its_column() -> None:
    # YAML's own words were "found character that cannot start any token".
    error = _error("units:\n  - id: pingshan\n    people:\n\t  - {id: zhang-wei}\n")
    assert (error.line, error.col) == (4, 1)
    assert error.message.startswith("缩进里有制表符（Tab），YAML 只能用空格缩进")


def test_a_tab_after_a_dash_is_named_as_a_tab_at_its_column() -> None:
    error = _error("steps:\n  -\tid: a\n    title: 接警\n")
    assert (error.line, error.col) == (2, 4)
    assert error.message.startswith("缩进里有制表符（Tab）")


def test_an_org_chart_with_a_tab_says_tab_at_file_line_col() -> None:
    from models.errors import OrgInvalid
    from models.org import load_org_text

    text = ("units:\n"
            "  - id: pingshan\n"
            "    name: 坪山区\n"
            "    type: district\n"
            "    people:\n"
            "\t- {id: zhang-wei, name: 张伟, roles: [director], notify: []}\n")
    with pytest.raises(OrgInvalid) as caught:
        load_org_text(text, filename="org/bureau.yaml")
    assert str(caught.value.errors[0]).startswith(
        "org/bureau.yaml:6:1: 缩进里有制表符（Tab），YAML 只能用空格缩进，请把 Tab 换成空格")


def test_full_width_spaces_as_indentation_are_named_not_read_as_a_key() -> None:
    # At the top level YAML reads "　　kind" as a key and the file loaded; deeper it said only
    # that the line was out of alignment.
    error = _error("id: x\n\u3000\u3000kind: response\n")
    assert (error.line, error.col) == (2, 1)
    assert error.message.startswith("缩进里有全角空格（U+3000），YAML 只能用半角空格缩进")
    error = _error("steps:\n  - id: a\n  \u3000title: 接警\n")
    assert (error.line, error.col) == (3, 3)
    assert error.message.startswith("缩进里有全角空格（U+3000）")


def test_a_full_width_colon_in_braces_is_named_not_read_as_an_unknown_key() -> None:
    error = _error("params:\n  location: {type：string, required: true}\n")
    assert (error.line, error.col, error.path) == (2, 18, "params.location")
    assert error.message.startswith("键后面用了全角冒号“：”")


def test_no_space_after_a_keys_colon_is_named_at_its_own_line() -> None:
    # YAML stopped a line later: "could not find expected ':'".
    error = _error("steps:\n  - id: a\n    role:duty_officer\n    title: 接警\n")
    assert (error.line, error.col) == (3, 9)
    assert error.message.startswith("键后面的冒号“:”之后缺少空格")
    error = _error("params:\n  location: {type:string}\n")
    assert (error.line, error.col) == (2, 18)
    assert error.message.startswith("键后面的冒号“:”之后缺少空格")


def test_a_full_width_space_after_a_keys_colon_is_named() -> None:
    error = _error("id:\u3000gas-leak\ntitle: 燃气泄漏\n")
    assert (error.line, error.col) == (1, 3)
    assert error.message.startswith("键后面的冒号“:”之后是全角空格（U+3000）")


def test_chinese_text_urls_and_times_are_no_false_alarm() -> None:
    text = ("title: 时限：5分钟，地点：六和社区\n"
            "description: |\n"
            "  \u3000\u3000第一段：各社区立即转移。\n"
            "  \u3000\u3000第二段。\n"
            "notify: ['json://127.0.0.1:8000/duty', mailto://duty@example.org]\n"
            "at: ['08:30', '17:00']\n"
            "quoted: {'\u3000x': 1, 'a:b': 2}\n")
    data, _ = load_with_positions(text, "x.yaml")
    assert data["title"] == "时限：5分钟，地点：六和社区"
    assert data["description"].startswith("\u3000\u3000第一段")
    assert data["quoted"] == {"\u3000x": 1, "a:b": 2}
