"""One Jinja2 environment for every message and document (first report, supervision notice,
closure form). Sandboxed, StrictUndefined: a template that names a missing value fails loudly
at render time instead of sending a report with a blank where the casualties should be."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from models.errors import CloseloopError


class RenderFailed(CloseloopError):
    pass


class Renderer:
    def __init__(self, templates_dir: Path, *, tz: ZoneInfo) -> None:
        self.tz = tz
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader(str(templates_dir)),
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["local"] = self.local

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
        """A deadline on paper. One that ends a day (working-day deadlines end at local
        midnight) reads as that day's 24:00, the way notices write 「3月9日24时前」, not
        as 00:00 of a day that is not the last day."""
        if value is None:
            return ""
        at = value.astimezone(self.tz)
        if (at.hour, at.minute, at.second, at.microsecond) != (0, 0, 0, 0) or "%H" not in fmt:
            return at.strftime(fmt)
        day_before = at - timedelta(days=1)
        return day_before.strftime(fmt.replace("%H:%M:%S", "24:00:00").replace("%H:%M", "24:00")
                                   .replace("%H", "24"))

    def render(self, template: str, context: dict[str, Any]) -> str:
        try:
            return self.env.get_template(template).render(**context)
        except TemplateError as exc:
            raise RenderFailed(f"template {template}: {exc}") from exc

    def render_string(self, source: str, context: dict[str, Any]) -> str:
        try:
            return self.env.from_string(source).render(**context)
        except TemplateError as exc:
            raise RenderFailed(f"message template: {exc}") from exc
