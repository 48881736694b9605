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
        "missing required parameter 'location'",
    )


def test_validate_params_enum_outside_values_lists_allowed_values() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_params(HAZARD, {"location": "坪山", "grade": "严重"})
    assert caught.value.field == "params.grade"
    assert caught.value.message == "'严重' is not allowed (allowed: 一般, 较大, 重大, 特别重大)"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("count", "three"),
        ("count", True),
        ("ratio", "nan"),
        ("urgent", "maybe"),
        ("found_on", "2026-02-30"),
        ("alert_at", "tomorrow"),
        ("units", 5),
        ("location", ["a"]),
    ],
)
def test_validate_params_wrong_type_is_refused(name: str, value: object) -> None:
    raw = {"location": "坪山", name: value}
    with pytest.raises(InvalidInput) as caught:
        validate_params(HAZARD, raw)
    assert caught.value.field == f"params.{name}"


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
