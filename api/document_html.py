"""A filed document (its Markdown as the templates in playbooks/templates write it) as HTML for
the pages: headings, bold, tables, lists and paragraphs, line breaks kept as the templates lay
out a signature block (督办单位：… / 签发人：… / 签发日期：…, one per line).

Safe by construction, because the text inside comes from what people typed (a hazard's
description, an enterprise's name): raw HTML is off, so `<script>` or `<img onerror>` in a value
is printed as those characters; links and images are off too (no template uses them), so a value
like `[点此](http://…)` cannot put a link or a remote image into an official document."""

from __future__ import annotations

from functools import cache

from markdown_it import MarkdownIt
from markdown_it.token import Token


@cache
def _parser() -> MarkdownIt:
    # commonmark with html off (the preset's default is on), GFM tables on (every form is a
    # 项目 | 内容 table), and a newline inside a paragraph kept as a line break.
    return (MarkdownIt("commonmark", {"html": False, "breaks": True})
            .enable("table").disable(["link", "image", "autolink"]))


def document_html(body: str) -> str:
    """The document's body as HTML, with nothing of its text taken as markup but Markdown's."""
    return _parser().render(body)


def document_heading(body: str) -> str | None:
    """The document's own title: the text of its first heading (重大事故隐患挂牌督办通知书,
    督办函), without its Markdown; None when it has none."""
    tokens = _parser().parse(body)
    for opening, inline in zip(tokens, tokens[1:], strict=False):
        if opening.type == "heading_open" and inline.type == "inline":
            text = _plain(inline.children or []).strip()
            return text or None
    return None


def _plain(children: list[Token]) -> str:
    return "".join(t.content for t in children if t.type in ("text", "code_inline"))
