"""YAML folding and Chinese: a `>` scalar wrapped in the file must read as one sentence.

YAML folds each line break of a `>` scalar into a space. Long 说明 in the shipped playbooks
are wrapped that way, and read 「限期整改、 异人复查」 on the inspector's task until the loader
joined folds between Chinese without the space (models/yamlpos.unfold_chinese).
"""

from __future__ import annotations

import re
from typing import Any

from flows.runtime import Runtime
from models.yamlpos import load_with_positions

WIDE = r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]"
WIDE_GAP = re.compile(f"{WIDE} {WIDE}")


def test_folded_chinese_joins_without_space_english_keeps_its_own() -> None:
    text = (
        "description: >\n"
        "  整改方案五落实）；\n"
        "  限期整改、异人复查\n"
        "  and English words\n"
        "  fold with spaces.\n"
        "quoted: \"甲 乙\"\n"
        "literal: |\n"
        "  第一行\n"
        "  第二行\n"
    )
    data, _ = load_with_positions(text, "x.yaml")
    assert data["description"] == (
        "整改方案五落实）；限期整改、异人复查 and English words fold with spaces.\n")
    # Only folds are touched: a space written in a quoted or literal scalar is the author's.
    assert data["quoted"] == "甲 乙"
    assert data["literal"] == "第一行\n第二行\n"


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _texts(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _texts(item)]
    return []


def test_shipped_playbooks_read_without_fold_gaps(demo: Runtime) -> None:
    gaps = {
        playbook_id: [text[max(0, m.start() - 8):m.end() + 8]
                      for text in _texts(demo.catalog.get(playbook_id).model_dump())
                      for m in WIDE_GAP.finditer(text)]
        for playbook_id in demo.catalog.current
    }
    assert {"gas-leak", "hazard-3030", "typhoon-633"} <= set(demo.catalog.current)
    assert {key: found for key, found in gaps.items() if found} == {}
