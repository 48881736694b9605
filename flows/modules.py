"""Reusable modules: playbooks/modules/<name>.yaml, spliced into a playbook at load time.

A playbook writes

    modules:
      - use: first-report        # playbooks/modules/first-report.yaml
        as: report               # step ids become report.<id> (default: the module name)
        with: {due: 5m}          # values for the module's params
        needs: [receive]         # added to the module's entry steps (no needs inside it)
        when: "params.grade != '一般'"   # optional: folded into every module step's `when`

and the module file declares typed `params` and writes `${name}` where a value goes.
`${name}` standing alone as a whole value takes the parameter's value with its type (a
list stays a list); inside longer text it is replaced by the value as text; `$${` writes
a literal `${`. Substitution happens before validation, so a bad value (`with: {due: 5x}`)
is reported at the `with` entry that supplied it.

Inside a module, `needs` name the module's own steps (without prefix); a module reaches
outside only through the `needs` of its `modules:` entry. Playbook steps need module steps
by their prefixed id (`report.send`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from flows.locate import Origin, Where, choices, choices_zh, not_known, validation_errors, zh_en
from flows.params import check_values
from flows.spec import ModuleHeader, ModuleSource, ModuleUse
from models.errors import SourceError
from models.yamlpos import PathKey, Positions, YamlSyntaxError, load_with_positions

_WHOLE = re.compile(r"^\$\{\s*([^}]*?)\s*\}$")
_PLACEHOLDER = re.compile(r"\$\$\{|\$\{\s*([^}]*?)\s*\}")


@dataclass
class ModuleFile:
    """One parsed module file; `errors` are mistakes in the file itself."""

    name: str
    file: str
    text: str
    data: dict[str, Any] | None
    positions: Positions
    header: ModuleHeader | None
    errors: list[SourceError]


@dataclass
class NeedRef:
    """One `needs` entry, by final step id, with where it was written."""

    target: str
    where: Where
    path: PathKey
    outside: str | None = None  # a module entry's `needs`: the module's own prefix


@dataclass
class Candidate:
    """A step before validation: its YAML (placeholders filled) and where it came from."""

    raw: Any
    where: Where
    prefix: str = ""
    local_ids: list[str] | None = None  # a module step: needs resolve among these
    entry_needs: list[NeedRef] = field(default_factory=list)
    module_when: str | None = None
    module_at: str | None = None  # the `modules:` entry's `at`, for steps without their own


class ModuleLibrary:
    """Module files of one playbooks directory, each read and parsed once."""

    def __init__(self, modules_dir: Path) -> None:
        self.dir = modules_dir
        self._cache: dict[str, ModuleFile | None] = {}
        self._names: list[str] | None = None

    def names(self) -> list[str]:
        if self._names is None:
            found = self.dir.glob("*.yaml") if self.dir.is_dir() else []
            self._names = sorted(path.stem for path in found)
        return self._names

    def get(self, name: str) -> ModuleFile | None:
        if name not in self._cache:
            path = self.dir / f"{name}.yaml"
            self._cache[name] = _read_module(name, path) if path.is_file() else None
        return self._cache[name]


def _read_module(name: str, path: Path) -> ModuleFile:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        message = zh_en("无法读取模块文件", f"cannot read the module: {exc}")
        error = SourceError(file, 1, 1, "", message)
        return ModuleFile(name, file, "", None, Positions(file), None, [error])
    try:
        data, positions = load_with_positions(text, file)
    except YamlSyntaxError as exc:
        error = SourceError(file, exc.line, exc.col, exc.path, exc.message, exc.named)
        return ModuleFile(name, file, text, None, Positions(file), None, [error])
    root = Where(file, positions)
    if not isinstance(data, dict):
        error = root.at((), zh_en("模块文件应为映射（键: 值），含 id、title、params、steps",
                                  "a module is a mapping of keys: id, title, params, steps"))
        return ModuleFile(name, file, text, None, positions, None, [error])
    errors: list[SourceError] = []
    header: ModuleHeader | None = None
    head = {key: value for key, value in data.items() if key != "steps"}
    try:
        header = ModuleHeader.model_validate(head)
    except ValidationError as exc:
        errors += validation_errors(exc, head, root, ModuleSource)
    if header is not None and header.id != name:
        errors.append(root.at(("id",), zh_en(f"模块 id 须与文件名一致：{name}",
                                             f"the module id must match its file name: '{name}'")))
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        errors.append(root.at(("steps",), zh_en("模块须有步骤列表，且不能为空",
                                                "a module needs a non-empty list of steps")))
    return ModuleFile(name, file, text, data, positions, header, errors)


def splice(
    use: ModuleUse, use_where: Where, module: ModuleFile, errors: list[SourceError]
) -> list[Candidate] | None:
    """The module's steps for this use, or None when the use or the module is broken."""
    if module.errors or module.header is None or module.data is None:
        errors.extend(module.errors)
        return None
    specs = module.header.params
    values, problems = check_values(specs, use.with_)
    for problem in problems:
        if problem.kind == "unknown":
            message = zh_en(
                f"模块 {module.name} 没有参数 {problem.name}"
                f"（可选：{choices_zh(specs, problem.name)}）",
                f"unknown parameter '{problem.name}' of module '{module.name}' "
                f"(known: {choices(specs, problem.name)})",
            )
            errors.append(use_where.at(("with", problem.name), message, key=True))
        elif problem.kind == "missing":
            message = zh_en(f"模块 {module.name} 需要在 with 中给出 {problem.name} 的值",
                            f"module '{module.name}' needs a value for '{problem.name}' in 'with'")
            errors.append(use_where.at(("with", problem.name), message))
        else:
            message = zh_en(f"模块参数 {problem.name}：{problem.zh}", problem.message)
            errors.append(use_where.at(("with", problem.name), message))
    # An unknown key is harmless to the splice; a missing or ill-typed value is not.
    if any(problem.kind != "unknown" for problem in problems):
        return None

    origins_of: dict[str, Origin] = {}
    for name, spec in specs.items():
        if use.with_.get(name) is not None:
            path = (*use_where.base, "with", name)
            origins_of[name] = Origin(use_where.file, use_where.positions, path)
        elif spec.default is not None:
            origins_of[name] = Origin(module.file, module.positions, ("params", name, "default"))

    module_root = Where(module.file, module.positions)
    origins: dict[PathKey, Origin] = {}
    raw_steps = module.data["steps"]
    steps = [
        _substitute(raw, ("steps", j), values, origins_of, origins, module_root, errors)
        for j, raw in enumerate(raw_steps)
    ]
    local_ids = [
        raw["id"] for raw in steps if isinstance(raw, dict) and isinstance(raw.get("id"), str)
    ]
    entry = [
        NeedRef(need, use_where, ("needs", k), outside=use.prefix)
        for k, need in enumerate(use.needs)
    ]
    return [
        Candidate(
            raw=raw,
            where=Where(module.file, module.positions, ("steps", j), origins),
            prefix=use.prefix,
            local_ids=local_ids,
            entry_needs=entry,
            module_when=use.when,
            module_at=use.at,
        )
        for j, raw in enumerate(steps)
    ]


def _substitute(
    node: Any,
    path: PathKey,
    values: dict[str, Any],
    origins_of: dict[str, Origin],
    origins: dict[PathKey, Origin],
    where: Where,
    errors: list[SourceError],
) -> Any:
    """A copy of `node` with `${name}` filled in; records where whole values came from."""
    if isinstance(node, dict):
        return {
            key: _substitute(item, (*path, key), values, origins_of, origins, where, errors)
            for key, item in node.items()
        }
    if isinstance(node, list):
        return [
            _substitute(item, (*path, i), values, origins_of, origins, where, errors)
            for i, item in enumerate(node)
        ]
    if not isinstance(node, str) or "${" not in node:
        return node
    whole = _WHOLE.match(node)
    if whole:
        name = whole[1]
        if name not in values:
            errors.append(where.at(path, _unknown(name, values)))
            return None  # reported; as if the key were absent, so no second error follows
        if name in origins_of:
            origins[path] = origins_of[name]
        return values[name]

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$${":
            return "${"
        name = match[1]
        if name not in values:
            errors.append(where.at(path, _unknown(name, values)))
            return match[0]
        value = values[name]
        if isinstance(value, list | dict):
            kind = type(value).__name__
            errors.append(where.at(path, zh_en(
                f"模块参数 {name} 是 {kind}，只能单独作为一个完整的值",
                f"module parameter '{name}' is a {kind}; it can only stand alone as a whole value",
            )))
            return match[0]
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return _PLACEHOLDER.sub(replace, node)


def _unknown(name: str, values: dict[str, Any]) -> str:
    return not_known("模块参数", "module parameter", name, values)
