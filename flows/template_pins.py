"""The texts of the templates a playbook's steps and escalation levels name (and those they
include, import or extend), read when the playbook is compiled and stored with it: a run renders
its first report, 督办函 and closure form with the templates it started with, so a template
edited, renamed or broken while the run is in flight (SPEC §2: a running run keeps its version)
neither changes nor breaks the papers of runs already under way."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from jinja2 import Environment, TemplateSyntaxError, meta

from flows.spec import StepSpec

_PARSER = Environment()  # parsing only: finds the names a template includes


def named_templates(steps: Iterable[StepSpec]) -> list[str]:
    """Every template named by a step (notify, document) or by a level of its ladders."""
    names: set[str] = set()
    for step in steps:
        if step.template:
            names.add(step.template)
        levels = list(step.escalate) + (list(step.verify.escalate) if step.verify else [])
        names.update(level.template for level in levels if level.template)
    return sorted(names)


def template_texts(templates_dir: Path, names: Iterable[str]) -> dict[str, str]:
    """name -> text of each template and of those it includes, as they are on disk now.
    A missing or unreadable file is left out (the loader has already reported it)."""
    texts: dict[str, str] = {}
    todo = list(names)
    root = templates_dir.resolve()
    while todo:
        name = todo.pop()
        if name in texts:
            continue
        path = (root / name).resolve()
        if not path.is_relative_to(root):
            continue  # Jinja's loader refuses such a name too
        read = _read(path)
        if read is None:
            continue
        texts[name], found = read
        todo.extend(found)
    return dict(sorted(texts.items()))


# Every runtime compiles every playbook, and the tests build hundreds of runtimes on the same
# folder: a file's text and the names it includes are kept until the file changes on disk.
_read_cache: dict[Path, tuple[tuple[int, int], str, tuple[str, ...]]] = {}


def _read(path: Path) -> tuple[str, tuple[str, ...]] | None:
    """The file's text and the template names it includes; None if unreadable."""
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = _read_cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1], cached[2]
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        found = tuple(other for other in meta.find_referenced_templates(_PARSER.parse(text))
                      if isinstance(other, str))
    except TemplateSyntaxError:
        found = ()
    _read_cache[path] = (stamp, text, found)
    return text, found
