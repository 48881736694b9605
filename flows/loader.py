"""Loading playbooks: YAML with positions -> modules spliced -> checked -> compiled Playbook.

A playbook that fails never loads, and the operator sees *every* mistake at once, each as
`file:line:col: path: 中文 / English` (the assembling itself is in flows/assemble.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flows.assemble import Session, assemble, dedupe
from flows.locate import Where, zh_en
from flows.modules import ModuleLibrary
from flows.spec import Playbook
from models.errors import PlaybookInvalid, SourceError
from models.gc_pause import paused_gc
from models.yamlpos import Positions, YamlSyntaxError, load_with_positions

_NO_SUCH_PATH = zh_en("文件或目录不存在", "no such file or directory")
_NOT_A_FILE = zh_en("不是普通文件或目录", "not a regular file or directory")


@dataclass
class LoadContext:
    """What a playbook may refer to. None means "unknown here: don't check"."""

    playbooks_dir: Path
    known_roles: set[str] | None = None
    known_unit_types: set[str] | None = None  # the org chart's unit types, for `at`
    known_channels: set[str] = field(default_factory=set)
    known_playbooks: set[str] | None = None
    # Helper functions of flows/context.expression_context.
    expression_names: set[str] = field(default_factory=lambda: {"units", "campaign", "sample"})

    @property
    def modules_dir(self) -> Path:
        return self.playbooks_dir / "modules"

    @property
    def templates_dir(self) -> Path:
        return self.playbooks_dir / "templates"


def load_playbook_text(text: str, *, filename: str, context: LoadContext) -> Playbook:
    """Compile one playbook; raises PlaybookInvalid listing every error found."""
    with paused_gc():  # the checked models of every step stay alive too: models/gc_pause.py
        data, positions = _parse(text, filename)
        return assemble(text, filename, data, positions, Session(context),
                        context.known_playbooks)


def load_playbook_file(path: Path, *, context: LoadContext) -> Playbook:
    """As load_playbook_text; errors name the file as `path` was given."""
    return load_playbook_text(_read(path), filename=str(path), context=context)


def load_catalog(
    playbooks_dir: Path, *, context: LoadContext
) -> tuple[dict[str, Playbook], list[SourceError]]:
    """Every playbooks_dir/*.yaml that loads, by id, and the errors of those that don't."""
    with paused_gc():  # as load_playbook_text
        return _load_catalog(playbooks_dir, context=context)


def _load_catalog(
    playbooks_dir: Path, *, context: LoadContext
) -> tuple[dict[str, Playbook], list[SourceError]]:
    session = Session(replace(context, playbooks_dir=playbooks_dir))
    parsed: list[tuple[Path, str, Any, Positions]] = []
    errors: list[SourceError] = []
    for path in sorted(playbooks_dir.glob("*.yaml")):
        try:
            text = _read(path)
            parsed.append((path, text, *_parse(text, str(path))))
        except PlaybookInvalid as exc:
            errors += exc.errors
    # A playbook saved as .yml would be skipped without a word: "valid", yet never loaded.
    for path in sorted(playbooks_dir.glob("*.yml")):
        errors.append(SourceError(str(path), 1, 1, "", zh_en(
            f"流程文件的扩展名须为 .yaml，此文件不会被加载（请改名为 {path.stem}.yaml）",
            f"playbooks are *.yaml files: this one is not loaded (rename it to "
            f"{path.stem}.yaml)")))
    # A child playbook may be any playbook of the directory, valid or not: a broken one
    # is reported in its own file, not again at every step that starts it.
    files_of: dict[str, list[str]] = {}
    for path, _, data, _ in parsed:
        if _raw_id(data):
            files_of.setdefault(data["id"], []).append(str(path))
    catalog: dict[str, Playbook] = {}
    sources: dict[str, tuple[str, Any, Positions]] = {}
    for path, text, data, positions in parsed:
        try:
            playbook = assemble(text, str(path), data, positions, session, set(files_of))
        except PlaybookInvalid as exc:
            errors += exc.errors
            continue
        others = [other for other in files_of[playbook.id] if other != str(path)]
        if others:
            # Neither copy loads: which one a run would get must not depend on file names.
            message = zh_en(f"流程 id {playbook.id} 重复（另见 {'、'.join(others)}）",
                            f"duplicate playbook id '{playbook.id}' (also in {', '.join(others)})")
            errors.append(Where(str(path), positions).at(("id",), message))
        else:
            catalog[playbook.id] = playbook
            sources[playbook.id] = (str(path), data, positions)
    for parent in list(catalog.values()):
        found = _child_values(parent, catalog, *sources[parent.id])
        if found:
            errors += found
            del catalog[parent.id]
    return catalog, dedupe(errors)


def _child_values(parent: Playbook, catalog: dict[str, Playbook], filename: str, data: Any,
                  positions: Positions) -> list[SourceError]:
    """The constant `with` values of the parent's own `action: playbook` steps, held to the
    child playbook's params (its enum values, types, bounds) when both are in the catalog.
    Before, `with: {grade: 特大}` for a child whose grade is 一般/重大 loaded, and the child
    run failed to start at run time, every time. A `{{ }}` value is known only at run time."""
    from flows.expressions import is_template_string
    from flows.params import check_values

    raw_steps = data.get("steps") if isinstance(data, dict) else None
    index = {raw.get("id"): j for j, raw in enumerate(raw_steps or [])
             if isinstance(raw, dict)}
    where = Where(filename, positions)
    out: list[SourceError] = []
    for step in parent.steps:
        child = catalog.get(step.playbook or "")
        if step.action != "playbook" or child is None or step.id not in index:
            continue
        given = {k: v for k, v in (step.with_ or {}).items() if not is_template_string(v)}
        _, problems = check_values(child.params, given)
        for problem in problems:
            if problem.kind == "missing" and problem.name in (step.with_ or {}):
                continue  # given as {{ }}: known at run time
            path: tuple[str | int, ...] = ("steps", index[step.id], "with")
            if problem.name in given:
                path += (problem.name,)
            out.append(where.at(path, zh_en(f"子流程 {child.id}：{problem.zh}",
                                            f"child playbook '{child.id}': {problem.message}")))
    return out


def validate_paths(paths: list[Path], *, context: LoadContext) -> list[SourceError]:
    """Errors of `closeloop validate PATH...`; a path is a playbooks directory or a file."""
    errors: list[SourceError] = []
    ids_in: dict[Path, set[str]] = {}
    for path in paths:
        if path.is_dir():
            _, found = load_catalog(path, context=context)
            errors += found
            library = ModuleLibrary(path / "modules")
            for name in library.names():
                module = library.get(name)
                errors += module.errors if module else []
        elif path.is_file() and path.parent.name == "modules":
            module = ModuleLibrary(path.parent).get(path.stem)
            errors += module.errors if module else []
        elif path.is_file():
            known = context.known_playbooks
            if known is None:
                if path.parent not in ids_in:
                    ids_in[path.parent] = _ids_in(path.parent)
                known = ids_in[path.parent]
            errors += _validate_file(path, context, known)
        elif path.exists():  # /dev/null, a pipe: there, but nothing a playbook is read from
            errors.append(SourceError(str(path), 1, 1, "", _NOT_A_FILE))
        else:
            errors.append(SourceError(str(path), 1, 1, "", _NO_SUCH_PATH))
    return dedupe(errors)


def _validate_file(path: Path, context: LoadContext, known: set[str] | None) -> list[SourceError]:
    # Modules and templates sit next to the file, and its siblings are the playbooks it
    # may start: that is how the server will load it.
    local = replace(context, playbooks_dir=path.parent, known_playbooks=known)
    try:
        load_playbook_file(path, context=local)
    except PlaybookInvalid as exc:
        return exc.errors
    return []


def _ids_in(directory: Path) -> set[str]:
    """Ids of the playbooks in `directory`. Only the top-level `id:` line of each sibling is
    read: parsing every sibling in full made validating one file cost as much as all of them."""
    ids: set[str] = set()
    for path in directory.glob("*.yaml"):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        match = _TOP_ID.search(text)
        if match:
            ids.add(match[1].strip("'\""))
    return ids


_TOP_ID = re.compile(r"^id:[ \t]*([^\s#]+)", re.MULTILINE)


def declared_id(path: Path) -> str | None:
    """The top-level `id:` a playbook file declares, read from its text alone (the file may
    not parse), or None."""
    try:
        match = _TOP_ID.search(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
    return match[1].strip("'\"") if match else None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, OSError):
            message = zh_en("无法读取文件", f"cannot read: {exc.strerror}")
        else:
            message = zh_en("无法读取：不是 UTF-8 文本", "cannot read: not UTF-8 text")
        raise PlaybookInvalid([SourceError(str(path), 1, 1, "", message)]) from exc


def _parse(text: str, filename: str) -> tuple[Any, Positions]:
    try:
        return load_with_positions(text, filename)
    except YamlSyntaxError as exc:
        error = SourceError(filename, exc.line, exc.col, exc.path, exc.message, exc.named)
        raise PlaybookInvalid([error]) from exc


def _raw_id(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("id"), str)


