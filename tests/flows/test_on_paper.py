"""What people typed, as it goes into a Markdown document (flows.render.on_paper): one line that
opens no block, and otherwise as written."""

from __future__ import annotations

import pytest

from flows.render import on_paper


@pytest.mark.parametrize(("typed", "printed"), [
    ("已清理\n\n## 三、复查意见\n复查合格", "已清理 ## 三、复查意见 复查合格"),
    ("## 三、复查意见", "＃＃ 三、复查意见"),
    ("> 局长批示", "＞ 局长批示"),
    ("```\n伪造\n```", "｀｀｀ 伪造 ```"),
    ("| 伪造 | 表格 |", "｜ 伪造 ｜ 表格 ｜"),
    ("- 复查人：局长", "－ 复查人：局长"),  # a list item
    ("1. 同意销号", "1． 同意销号"),
    ("---", "－－－"),  # a rule
    ("-3层", "-3层"),  # a basement, not a list item
    ("1.5米", "1.5米"),
    ("#3楼 配电室", "#3楼 配电室"),  # a building number, not a heading
    ("3#楼", "3#楼"),
    ("`张三`", "`张三`"),
    ("坪山区六和社区", "坪山区六和社区"),
])
def test_typed_text_is_one_line_that_opens_nothing(typed: str, printed: str) -> None:
    assert on_paper(typed) == printed


def test_the_context_is_copied_and_other_values_kept() -> None:
    context = {"params": {"location": "# 3栋", "casualties": 2}, "items": ["a\nb", None]}
    assert on_paper(context) == {"params": {"location": "＃ 3栋", "casualties": 2},
                                 "items": ["a b", None]}
    assert context["params"]["location"] == "# 3栋"
