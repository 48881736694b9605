"""Sandboxed playbook expressions: native values, names, and refusals."""

from __future__ import annotations

import pytest

from flows.expressions import (
    ExpressionError,
    compile_expression,
    compile_value,
    is_template_string,
    render_string,
    resolve_value,
)


def test_evaluate_returns_native_values() -> None:
    context = {"params": {"grade": "重大", "units": ["a", "b"]}}
    assert compile_expression("params.grade in ['较大', '重大']").evaluate(context) is True
    assert compile_expression("params.units").evaluate(context) == ["a", "b"]
    assert compile_expression("params.units | length").evaluate(context) == 2


def test_compile_lists_top_level_names_and_constant_lookups() -> None:
    compiled = compile_expression("units(type='village', within=run.unit) if params.big else []")
    assert compiled.names == {"units", "run", "params"}
    assert ("params", "big") in compiled.lookups
    assert compile_expression("steps['report.send'].outputs").lookups == {("steps", "report.send")}


def test_compile_sees_a_lookup_at_the_root() -> None:
    assert compile_expression("params.grade").lookups == {("params", "grade")}
    assert compile_expression("params").names == {"params"}


def test_compile_same_text_twice_gives_the_same_object() -> None:
    assert compile_expression("run.unit == 'x'") is compile_expression("run.unit == 'x'")


def test_compile_syntax_error_raises_expression_error() -> None:
    with pytest.raises(ExpressionError, match="invalid expression"):
        compile_expression("params.grade in ['重大'")


def test_compile_trailing_text_is_refused() -> None:
    with pytest.raises(ExpressionError, match="after the expression"):
        compile_expression("params.a params.b")


def test_compile_unknown_filter_is_refused_before_evaluation() -> None:
    with pytest.raises(ExpressionError, match="no filter named 'shout'"):
        compile_expression("params.a | shout")


def test_compile_empty_expression_is_refused() -> None:
    with pytest.raises(ExpressionError, match="empty"):
        compile_expression("  ")


def test_evaluate_undefined_name_raises_expression_error() -> None:
    with pytest.raises(ExpressionError, match="no attribute 'missing'"):
        compile_expression("params.missing").evaluate({"params": {}})
    with pytest.raises(ExpressionError):
        compile_expression("[params.missing]").evaluate({"params": {}})


def test_evaluate_sandbox_blocks_python_internals() -> None:
    with pytest.raises(ExpressionError):
        compile_expression("params.__class__.__mro__").evaluate({"params": {}})
    with pytest.raises(ExpressionError):
        compile_expression("''.__class__.__subclasses__()").evaluate({})


def test_evaluate_sandbox_refuses_to_mutate_run_data() -> None:
    items: list[int] = []
    with pytest.raises(ExpressionError):
        compile_expression("items.append(1)").evaluate({"items": items})
    assert items == []


def test_evaluate_calls_helper_functions_from_the_context() -> None:
    def units(type: str) -> list[str]:
        return [f"{type}-1", f"{type}-2"]

    assert compile_expression("units(type='village')").evaluate({"units": units}) == [
        "village-1",
        "village-2",
    ]


def test_evaluate_runtime_error_raises_expression_error() -> None:
    with pytest.raises(ExpressionError):
        compile_expression("1 / 0").evaluate({})


def test_render_string_gives_text() -> None:
    assert render_string("{{ params.n }} 人", {"params": {"n": 3}}) == "3 人"


def test_render_string_undefined_raises_expression_error() -> None:
    with pytest.raises(ExpressionError):
        render_string("{{ params.nope }}", {"params": {}})


def test_resolve_value_keeps_native_type_of_a_lone_expression() -> None:
    context = {"params": {"units": ["a"], "n": 3}}
    assert resolve_value("{{ params.units }}", context) == ["a"]
    assert resolve_value(" {{ params.n }} ", context) == 3
    assert resolve_value("共{{ params.n }}个", context) == "共3个"
    assert resolve_value({"x": ["{{ params.n }}", 1]}, context) == {"x": [3, 1]}
    assert resolve_value("plain", context) == "plain"


def test_compile_value_of_text_with_markup_is_a_template() -> None:
    compiled = compile_value("{{ params.a }}-{{ run.b }}")
    assert compiled.names == {"params", "run"}


def test_is_template_string_detects_markup_only() -> None:
    assert is_template_string("{{ params.a }}")
    assert is_template_string("{% if x %}y{% endif %}")
    assert not is_template_string("重大")
    assert not is_template_string(3)
