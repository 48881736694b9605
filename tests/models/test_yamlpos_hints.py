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
