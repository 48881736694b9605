"""Typed run parameters: defaults, coercion from CLI text, and the first problem reported."""

from __future__ import annotations

import pytest

from flows.params import check_values, validate_params, validate_values
from flows.spec import ParamSpec, Playbook, StepSpec
from models.errors import InvalidInput

GRADES = ["一般", "较大", "重大", "特别重大"]


def playbook(**params: ParamSpec) -> Playbook:
    return Playbook(
        id="demo",
        version=1,
        title="演示",
        params=params,
        steps=[StepSpec(id="a", title="甲", role="director")],
        source_file="demo.yaml",
        sha256="0",
    )


HAZARD = playbook(
    location=ParamSpec(type="string", required=True),
    grade=ParamSpec(type="enum", values=GRADES, default="一般"),
    count=ParamSpec(type="int", default=0),
    ratio=ParamSpec(type="number"),
    urgent=ParamSpec(type="bool", default=False),
    found_on=ParamSpec(type="date"),
    alert_at=ParamSpec(type="datetime"),
    units=ParamSpec(type="list", default=["maluan"]),
)


def test_validate_params_fills_defaults_and_none_for_optional() -> None:
    values = validate_params(HAZARD, {"location": "坪山"})
    assert values == {
        "location": "坪山",
        "grade": "一般",
        "count": 0,
        "ratio": None,
        "urgent": False,
        "found_on": None,
        "alert_at": None,
        "units": ["maluan"],
    }


def test_validate_params_coerces_cli_text() -> None:
    values = validate_params(
        HAZARD,
        {
            "location": "坪山",
            "grade": "重大",
            "count": "3",
            "ratio": "0.5",
            "urgent": "true",
            "found_on": "2026-03-02",
            "alert_at": "2026-03-02T09:00:00+08:00",
            "units": "maluan, biling",
        },
    )
    assert values["count"] == 3
    assert values["ratio"] == 0.5
    assert values["urgent"] is True
    assert values["found_on"] == "2026-03-02"
    assert values["alert_at"] == "2026-03-02T09:00:00+08:00"
    assert values["units"] == ["maluan", "biling"]


def test_validate_params_list_default_is_a_copy() -> None:
    values = validate_params(HAZARD, {"location": "坪山"})
    values["units"].append("x")
    assert HAZARD.params["units"].default == ["maluan"]


def test_validate_params_unknown_key_is_refused_with_known_names() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_params(HAZARD, {"location": "坪山", "grde": "重大"})
    assert caught.value.field == "params.grde"
    assert "known: location, grade" in caught.value.message


def test_validate_params_missing_required_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_params(HAZARD, {})
    assert (caught.value.field, caught.value.message) == (
        "params.location",
        "缺少必填参数 'location' / missing required parameter 'location'",
    )


def test_validate_params_enum_outside_values_lists_allowed_values() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_params(HAZARD, {"location": "坪山", "grade": "严重"})
    assert caught.value.field == "params.grade"
    assert caught.value.message == (
        "'严重' 不是可选值（可选：一般、较大、重大、特别重大）"
        " / '严重' is not allowed (allowed: 一般, 较大, 重大, 特别重大)")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("count", "three"),
        ("count", True),
        ("ratio", "nan"),
        ("urgent", "maybe"),
        ("found_on", "2026-02-30"),
        ("found_on", "0001-01-01"),  # years outside 1900-2100 overflow wherever they are shown
        ("alert_at", "tomorrow"),
        ("alert_at", "9999-12-31T20:00:00+00:00"),
        ("alert_at", "1000-01-01T00:00:00+08:00"),
        ("units", 5),
        ("location", ["a"]),
    ],
)
def test_validate_params_wrong_type_is_refused(name: str, value: object) -> None:
    raw = {"location": "坪山", name: value}
    with pytest.raises(InvalidInput) as caught:
        validate_params(HAZARD, raw)
    assert caught.value.field == f"params.{name}"


def test_dates_and_times_at_the_edges_of_the_years_allowed() -> None:
    clean = validate_params(HAZARD, {"location": "坪山", "found_on": "1900-01-01",
                                     "alert_at": "2100-12-31T23:00:00+08:00"})
    assert clean["found_on"] == "1900-01-01"
    assert clean["alert_at"] == "2100-12-31T23:00:00+08:00"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("count", "abc", "应为整数；收到 'abc' / expected a whole number; got 'abc'"),
        ("ratio", "abc", "应为数字；收到 'abc' / expected a number; got 'abc'"),
        ("urgent", "maybe", "应为 是 或 否（true/false）；收到 'maybe' / expected true or false; "
                            "got 'maybe'"),
        ("found_on", "x", "应为日期，如 2026-11-23；收到 'x' / expected a date like 2026-11-23; "
                          "got 'x'"),
        ("units", 5, "应为列表；收到 5 / expected a list; got 5"),
        ("location", ["a"], "应为文本；收到 ['a'] / expected text; got ['a']"),
    ],
)
def test_validate_params_messages_are_chinese_first(name: str, value: object,
                                                    message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_params(HAZARD, {"location": "坪山", name: value})
    assert (caught.value.field, caught.value.message) == (f"params.{name}", message)


def test_validate_params_unknown_key_message_is_chinese_first() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_params(HAZARD, {"location": "坪山", "grde": "重大"})
    assert caught.value.message.startswith("没有参数 'grde'（可用：location、grade、")
    assert " / unknown parameter 'grde' (known: location, grade, " in caught.value.message


def test_check_values_keeps_the_english_for_callers_that_wrap_it() -> None:
    # The loader (module `with`) and the hazard import put their own words around it.
    _, problems = check_values(HAZARD.params, {"count": "x"})
    assert problems[-1].message == "expected a whole number; got 'x'"
    assert problems[-1].zh == "应为整数；收到 'x'"


# --- min and max ---------------------------------------------------------------------------

BOUNDED = {
    "target": ParamSpec(type="int", min=1, max=10000, default=30),
    "share": ParamSpec(type="number", min=0, max=1),
}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("target", -5, "不能小于 1；收到 -5 / must be at least 1; got -5"),
        ("target", 0, "不能小于 1；收到 0 / must be at least 1; got 0"),
        ("target", "0", "不能小于 1；收到 0 / must be at least 1; got 0"),
        ("target", 10001, "不能大于 10000；收到 10001 / must be at most 10000; got 10001"),
        ("share", 1.5, "不能大于 1；收到 1.5 / must be at most 1; got 1.5"),
        ("share", -0.1, "不能小于 0；收到 -0.1 / must be at least 0; got -0.1"),
    ],
)
def test_values_outside_min_max_are_refused(name: str, value: object, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_values(BOUNDED, {name: value})
    assert (caught.value.field, caught.value.message) == (f"params.{name}", message)


def test_values_at_min_and_max_are_accepted() -> None:
    assert validate_values(BOUNDED, {"target": 1, "share": 0}) == {"target": 1, "share": 0}
    assert validate_values(BOUNDED, {"target": "10000", "share": 1.0}) == {
        "target": 10000, "share": 1.0}
    assert validate_values(BOUNDED, {}) == {"target": 30, "share": None}


@pytest.mark.parametrize("value", [
    99999999999999999999999, -(2**53), 2**53, "99999999999999999999999", "1" * 5000,
    1e30, "-" + "9" * 20,
])
def test_huge_whole_numbers_are_refused_even_without_a_max(value: object) -> None:
    specs = {"count": ParamSpec(type="int"), "ratio": ParamSpec(type="number")}
    for name in ("count", "ratio"):
        if name == "ratio" and isinstance(value, float):
            continue  # a float is a float: finite is all a number needs
        with pytest.raises(InvalidInput) as caught:
            validate_values(specs, {name: value})
        assert caught.value.field == f"params.{name}"
        assert caught.value.message.startswith("整数超出范围")
        assert len(caught.value.message) < 300  # the value is shown shortened


def test_largest_safe_whole_number_is_accepted() -> None:
    specs = {"count": ParamSpec(type="int")}
    assert validate_values(specs, {"count": 2**53 - 1}) == {"count": 2**53 - 1}
    assert validate_values(specs, {"count": str(-(2**53 - 1))}) == {"count": -(2**53 - 1)}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"type": "string", "min": 1}, "'min' is only for types int and number"),
        ({"type": "enum", "values": ["a"], "max": 1}, "'max' is only for types int and number"),
        ({"type": "int", "min": 5, "max": 1}, r"max \(1\) is below min \(5\)"),
        ({"type": "int", "min": 1, "default": 0}, "default does not fit type int: must be at "
                                                 "least 1; got 0"),
        ({"type": "number", "max": 1, "default": 2}, "must be at most 1; got 2"),
        ({"type": "int", "min": 0.5}, "'min' does not fit type int"),
        ({"type": "int", "max": 10**30}, "whole number out of range"),
        ({"type": "int", "max": True}, "expected a number; got True"),
        ({"type": "int", "min": "1"}, "expected a number; got '1'"),
    ],
)
def test_param_spec_min_max_are_checked(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ParamSpec(**kwargs)  # type: ignore[arg-type]


def test_validate_params_reports_the_first_problem_only() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_params(HAZARD, {"count": "x", "urgent": "x"})
    assert caught.value.field == "params.location"


def test_check_values_lists_every_problem() -> None:
    _, problems = check_values(HAZARD.params, {"nope": 1, "count": "x"})
    assert [(p.name, p.kind) for p in problems] == [
        ("nope", "unknown"),
        ("location", "missing"),
        ("count", "invalid"),
    ]


def test_validate_values_uses_the_given_prefix() -> None:
    outputs = {"people": ParamSpec(type="int", required=True)}
    assert validate_values(outputs, {"people": "12"}, prefix="outputs") == {"people": 12}
    with pytest.raises(InvalidInput) as caught:
        validate_values(outputs, {}, prefix="outputs")
    assert caught.value.field == "outputs.people"


def test_param_spec_normalises_a_date_default() -> None:
    from datetime import date

    assert ParamSpec(type="date", default=date(2026, 3, 2)).default == "2026-03-02"


def test_param_spec_enum_default_outside_values_is_refused() -> None:
    with pytest.raises(ValueError, match="is not allowed"):
        ParamSpec(type="enum", values=["a"], default="b")


@pytest.mark.parametrize(("written", "stored"), [
    ("2026-11-30 24:00", "2026-12-01T00:00:00"),  # as exports and deadlines print a day's end
    ("2026-11-30T24:00:00", "2026-12-01T00:00:00"),
    ("2026-12-31 24:00+08:00", "2027-01-01T00:00:00+08:00"),
    ("2026-02-28 24:00:00.000Z", "2026-03-01T00:00:00+00:00"),
])
def test_a_days_24_00_is_the_next_days_midnight(written: str, stored: str) -> None:
    assert validate_params(HAZARD, {"location": "坪山", "alert_at": written})["alert_at"] == stored


@pytest.mark.parametrize("written", ["2026-11-30 24:01", "2026-11-30 25:00", "2026-02-30 24:00"])
def test_other_hours_past_23_are_still_refused(written: str) -> None:
    with pytest.raises(InvalidInput):
        validate_params(HAZARD, {"location": "坪山", "alert_at": written})
