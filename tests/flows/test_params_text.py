"""Text params (and step outputs, checked by the same rules): a required text has content, every
text is at most MAX_TEXT characters and holds no control or bidi characters, a number given for
text is taken as its digits but NaN and Infinity are not; a run's title fits its column, and a
register playbook's params fit the register's columns."""

from __future__ import annotations

import math

import pytest
from factories import run_row

from flows import lifecycle, run_titles
from flows.params import MAX_ITEMS, MAX_TEXT, check_values, validate_values
from flows.runtime import Runtime
from flows.spec import ParamSpec
from models.db import read_session
from models.errors import InvalidInput
from models.hazard import Hazard

SPECS = {
    "location": ParamSpec(type="string", required=True),
    "brief": ParamSpec(type="string"),
    "units": ParamSpec(type="list"),
}


def refused(raw: dict[str, object], *, prefix: str = "params") -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        validate_values(SPECS, {"location": "坪山", **raw}, prefix=prefix)
    return caught.value


# --- required text has content ----------------------------------------------------------------

@pytest.mark.parametrize("blank", ["", "   ", "\t\n", "\u3000\u3000", "\u200b", " \ufeff "])
def test_required_text_that_is_blank_is_refused(blank: str) -> None:
    error = refused({"location": blank})
    assert (error.field, error.message) == (
        "params.location", "必填，不能为空白 / required: must not be blank")


def test_optional_text_may_be_empty() -> None:
    assert validate_values(SPECS, {"location": "坪山", "brief": ""})["brief"] == ""


def test_required_output_that_is_blank_is_refused_naming_the_output() -> None:
    outputs = {"summary": ParamSpec(type="string", required=True)}
    with pytest.raises(InvalidInput) as caught:
        validate_values(outputs, {"summary": "  "}, prefix="outputs")
    assert caught.value.field == "outputs.summary"


def test_text_with_content_around_spaces_is_kept_as_given() -> None:
    assert validate_values(SPECS, {"location": "  六和社区 "})["location"] == "  六和社区 "


# --- length ---------------------------------------------------------------------------------------

def test_text_at_the_cap_is_accepted_and_one_more_character_is_refused() -> None:
    assert validate_values(SPECS, {"location": "坪" * MAX_TEXT})["location"] == "坪" * MAX_TEXT
    error = refused({"brief": "坪" * (MAX_TEXT + 1)})
    assert error.field == "params.brief"
    assert error.message == (f"过长：{MAX_TEXT + 1} 个字符（最多 {MAX_TEXT} 个） / too long: "
                             f"{MAX_TEXT + 1} characters (at most {MAX_TEXT})")


def test_five_megabytes_of_text_is_refused_with_a_short_message() -> None:
    error = refused({"location": "x" * 5_000_000})
    assert error.field == "params.location" and len(error.message) < 100


def test_a_list_param_holds_its_text_items_to_the_same_rules() -> None:
    assert validate_values(SPECS, {"location": "坪山", "units": "liuhe, heping"})["units"] == [
        "liuhe", "heping"]
    error = refused({"units": ["liuhe", "x" * (MAX_TEXT + 1)]})
    assert error.field == "params.units" and error.message.startswith("第 2 项：过长")
    error = refused({"units": ["a"] * (MAX_ITEMS + 1)})
    assert error.field == "params.units" and "at most 1000" in error.message


# --- control and bidi characters ------------------------------------------------------------

@pytest.mark.parametrize(("char", "code"), [
    ("\x00", "U+0000"), ("\x07", "U+0007"), ("\x1b", "U+001B"), ("\x7f", "U+007F"),
    ("\x0b", "U+000B"), ("\u202e", "U+202E"), ("\u202a", "U+202A"), ("\u2066", "U+2066"),
    ("\u2069", "U+2069"),
])
def test_control_and_bidi_characters_are_refused(char: str, code: str) -> None:
    error = refused({"location": f"六和{char}社区"})
    assert error.field == "params.location"
    assert error.message == (f"第 3 个字符是不可见的控制字符（{code}），请删除 / contains an "
                             f"invisible control character ({code}) at position 3; remove it")


def test_tabs_line_breaks_and_ordinary_unicode_are_kept() -> None:
    text = "六和社区\t3栋\r\n1单元　（东门）😀 ‘引号’ ①"
    assert validate_values(SPECS, {"location": text})["location"] == text


def test_a_playbook_default_is_held_to_the_same_rules() -> None:
    with pytest.raises(ValueError, match="control character"):
        ParamSpec(type="string", default="a\x00b")


# --- numbers given for text -----------------------------------------------------------------

def test_a_number_given_for_text_is_taken_as_its_digits() -> None:
    # YAML and expressions give 12 for "12"; a JSON client may send a code as a number.
    assert validate_values(SPECS, {"location": 12})["location"] == "12"
    assert validate_values(SPECS, {"location": 2.5})["location"] == "2.5"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True])
def test_nan_infinity_and_booleans_are_not_text(value: object) -> None:
    error = refused({"location": value})
    assert error.field == "params.location"
    assert error.message.startswith("应为文本；收到 ")


def test_a_number_too_long_to_write_out_is_refused_not_crashed() -> None:
    # Python refuses str() of an int with more than 4,300 digits (a ValueError, not ours).
    error = refused({"location": 10**5000})
    assert error.field == "params.location" and "too long" in error.message


def test_check_values_reports_blank_and_bad_text_with_english_for_wrapping_callers() -> None:
    _, problems = check_values(SPECS, {"location": " ", "brief": "a\x00"})
    assert [(p.name, p.kind, p.message) for p in problems] == [
        ("location", "invalid", "required: must not be blank"),
        ("brief", "invalid",
         "contains an invisible control character (U+0000) at position 2; remove it"),
    ]


# --- run titles and register columns ------------------------------------------------------------

def test_a_long_location_gives_a_title_cut_to_its_column_with_an_ellipsis(demo: Runtime) -> None:
    location = "坪山区六和社区幸福里" * 150  # 1,500 characters: a valid param
    run = lifecycle.start_run(demo, playbook_id="gas-leak", unit_id="liuhe",
                              params={"location": location}, actor="wang-qiang")
    stored = run_row(demo, run.id or 0)
    assert stored.params["location"] == location
    assert len(stored.title) == run_titles.MAX_TITLE == 300
    assert stored.title.startswith("燃气泄漏模块化应急处置·坪山区六和社区")
    assert stored.title.endswith("…")


def test_a_short_title_is_left_whole_on_one_line(demo: Runtime) -> None:
    run = lifecycle.start_run(demo, playbook_id="gas-leak", unit_id="liuhe",
                              params={"location": "六和社区\n幸福里 3栋"}, actor="wang-qiang")
    assert run_row(demo, run.id or 0).title == "燃气泄漏模块化应急处置·六和社区 幸福里 3栋"


@pytest.mark.parametrize(("name", "width"), [("location", 300), ("code", 60),
                                             ("enterprise", 200), ("found_by", 80)])
def test_a_register_param_wider_than_its_column_is_refused(
    demo: Runtime, name: str, width: int
) -> None:
    params = {"location": "六和社区", name: "隐" * (width + 1)}
    with pytest.raises(InvalidInput) as caught:
        lifecycle.start_run(demo, playbook_id="hazard-3030", unit_id="liuhe", params=params,
                            actor="wang-qiang")
    assert caught.value.field == f"params.{name}"
    assert f"at most {width}" in caught.value.message
    params[name] = "隐" * width
    run = lifecycle.start_run(demo, playbook_id="hazard-3030", unit_id="liuhe", params=params,
                              actor="wang-qiang")
    with read_session(demo.db) as session:
        entry = session.get(Hazard, run.id)
        assert entry is not None and getattr(entry, name) == "隐" * width

