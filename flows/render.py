"""One Jinja2 environment for every message and document (first report, supervision notice,
closure form). Sandboxed, StrictUndefined: a template that names a missing value fails loudly
at render time instead of sending a report with a blank where the casualties should be.

Documents are Markdown, and what people typed (params, outputs, notes, reasons) is printed
into them: every text of the context goes in as one line (line breaks become spaces), with
`|` as the full-width ｜ and what would open a block at its start (a heading's "# ", a quote's
">", a code fence, a list item, a rule) full-width too, so a typed value cannot open a
section, a table row or a block of an official form (a forged "## 三、复查意见 … 复查人：局长"
in a closure form). The templates' own Markdown is untouched."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    DictLoader,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
)
from jinja2.sandbox import SandboxedEnvironment

from models.errors import CloseloopError

_PINNED_ENVS = 64


class RenderFailed(CloseloopError):
    pass


# Papers the product itself writes (the 演练评估 report), not a playbook: found here unless the
# bureau's templates folder has its own of the same name, so a playbooks folder of the bureau's
# own (CLOSELOOP_PLAYBOOKS) still gets them.
PRODUCT_TEMPLATES = Path(__file__).resolve().parent / "templates"


class Renderer:
    def __init__(self, templates_dir: Path, *, tz: ZoneInfo) -> None:
        self.tz = tz
        self.files = FileSystemLoader(str(templates_dir))
        self.env = self._environment(self.files)
        self.product_env = self._environment(
            ChoiceLoader([self.files, FileSystemLoader(str(PRODUCT_TEMPLATES))]))
        # Environments over the templates a run's playbook version pinned, by their texts
        # (a few versions are in use at a time; each compiles its templates once).
        self._pinned: dict[tuple[tuple[str, str], ...], SandboxedEnvironment] = {}
        self._lock = threading.Lock()

    def _environment(self, loader: BaseLoader) -> SandboxedEnvironment:
        env = SandboxedEnvironment(
            loader=loader,
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        env.filters["local"] = self.local
        return env

    def _pinned_env(self, pinned: dict[str, str]) -> SandboxedEnvironment:
        key = tuple(sorted(pinned.items()))
        with self._lock:
            env = self._pinned.get(key)
            if env is None:
                if len(self._pinned) >= _PINNED_ENVS:
                    self._pinned.pop(next(iter(self._pinned)))
                # A name the version did not pin (a version stored before pinning) is read
                # from the folder, as before.
                env = self._environment(ChoiceLoader([DictLoader(pinned), self.files]))
                self._pinned[key] = env
            return env

    def local(self, value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        """UTC in the database, the bureau's zone on paper. Also for a time param, which is
        ISO text (an offset written, else the bureau's clock); text that is not a time is
        printed as it is."""
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                return value
            value = parsed if parsed.tzinfo else parsed.replace(tzinfo=self.tz)
        if value is None:
            return ""
        return value.astimezone(self.tz).strftime(fmt)

    def deadline(self, value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        """A deadline on paper (deadline_text in the bureau's zone)."""
        if value is None:
            return ""
        return deadline_text(value.astimezone(self.tz), fmt)

    def render(self, template: str, context: dict[str, Any],
               pinned: dict[str, str] | None = None) -> str:
        """`pinned`: the template texts of the run's playbook version (Playbook.templates)."""
        env = self._pinned_env(pinned) if pinned else self.env
        try:
            return env.get_template(template).render(**on_paper(context))
        except TemplateError as exc:
            raise RenderFailed(f"template {template}: {exc}") from exc

    def render_product(self, template: str, context: dict[str, Any]) -> str:
        """One of the product's own papers (PRODUCT_TEMPLATES), or the bureau's edit of it."""
        try:
            return self.product_env.get_template(template).render(**on_paper(context))
        except TemplateError as exc:
            raise RenderFailed(f"template {template}: {exc}") from exc

    def render_string(self, source: str, context: dict[str, Any]) -> str:
        try:
            return self.env.from_string(source).render(**on_paper(context))
        except TemplateError as exc:
            raise RenderFailed(f"message template: {exc}") from exc


def deadline_text(at: datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A deadline `at` (in the zone it is to be read in) as written on paper: one that ends a
    day (working-day deadlines, a date asked for, end at local midnight) reads as that day's
    24:00, the way notices write 「3月9日24时前」, not as 00:00 of a day that is not the last
    day. Every deadline the product prints goes through here (documents, messages, the API's
    `*_local`, the register exports), and the register import reads 24:00 back
    (flows/found_times.py)."""
    if (at.hour, at.minute, at.second, at.microsecond) != (0, 0, 0, 0) or "%H" not in fmt:
        return at.strftime(fmt)
    day_before = at - timedelta(days=1)
    return day_before.strftime(fmt.replace("%H:%M:%S", "24:00:00").replace("%H:%M", "24:00")
                               .replace("%H", "24"))


_BREAKS = re.compile(r"\s*[\r\n\u2028\u2029]+\s*")
# What opens a block at the start of a line: a heading (# to ###### and a space), a quote, a
# code fence, a list item ("- ", "1. "), a rule (---). "#3楼", "3#楼", "-3层" or "1.5米" open
# nothing and are printed as written.
_OPENS = re.compile(r"^(\s*)(#{1,6}(?=\s|$)|>|`{3,}|~{3,}|[-*+](?=\s|$)|[-*_]{3,}|"
                    r"\d{1,9}[.)](?=\s|$))")
_LEADING = str.maketrans({"#": "＃", ">": "＞", "`": "｀", "~": "～", "-": "－", "*": "＊",
                          "+": "＋", "_": "＿", ".": "．", ")": "）"})
_MARKS = frozenset("\r\n\u2028\u2029|#>`~-*+_.)")


def on_paper(value: Any) -> Any:
    """The context as it may be printed into Markdown (see the module docstring): texts made
    single lines that open nothing; dicts and lists copied, anything else as it is."""
    if isinstance(value, str):
        if _MARKS.isdisjoint(value):
            return value
        text = _BREAKS.sub(" ", value).replace("|", "｜")
        return _OPENS.sub(lambda m: m[1] + m[2].translate(_LEADING), text, count=1)
    if isinstance(value, dict):
        return {k: on_paper(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [on_paper(v) for v in value] if isinstance(value, list) else tuple(
            on_paper(v) for v in value)
    return value
