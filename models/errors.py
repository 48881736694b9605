"""Exceptions named after the condition; api/errors.py maps them to HTTP statuses.

Never branch on message text: branch on the class and its fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def clipped(text: str, most: int = 40) -> str:
    """`text` cut to `most` characters with "..." for a message that echoes a value from the
    request or a file: a 3 MB value must not come back in a 3 MB error."""
    return text if len(text) <= most else text[:most - 3] + "..."


class CloseloopError(Exception):
    """Base of every error closeloop raises on purpose."""


@dataclass(frozen=True)
class SourceError:
    """One mistake in a YAML source (playbook, module, org chart), with where it is."""

    file: str
    line: int
    col: int
    path: str  # key path such as "steps[3].needs"; "" for the whole file
    message: str
    # The path as people read it, each list item with an id named: "steps[3] (transfer).needs"
    # (models.yamlpos.Positions.named); "" when that is `path` itself. `path` stays the plain
    # key path a program may match on.
    named: str = field(default="", compare=False)

    def __str__(self) -> str:
        shown = self.named or self.path
        where = f"{shown}: " if shown else ""
        return f"{self.file}:{self.line}:{self.col}: {where}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "path": self.path,
            "message": self.message,
            "text": str(self),
        }


class SourceInvalid(CloseloopError):
    """A YAML source failed validation; `errors` lists every mistake found, in file order."""

    def __init__(self, errors: list[SourceError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.file, e.line, e.col, e.path))
        super().__init__("\n".join(str(e) for e in self.errors))


class PlaybookInvalid(SourceInvalid):
    """A playbook (or a module it uses) failed validation and was not loaded."""


class OrgInvalid(SourceInvalid):
    """The org chart file failed validation."""


class InvalidInput(CloseloopError):
    """A request or command carried a value that is wrong; `field` names it (e.g. params.grade)."""

    def __init__(self, field: str, message: str,
                 others: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        # Further wrong fields of the same request, (field, message): a form with three
        # required answers left empty is told all three at once, not one per try.
        self.others = others


# What a user calls each kind of thing, for "不存在" messages (Chinese first, SPEC: the product
# speaks Chinese first); a kind missing here is shown as its English name.
KIND_NAMES_ZH = {
    "campaign": "3030专项行动", "channel": "接收通道", "document": "文书", "evidence": "证据文件",
    "extension request": "延期申请", "hazard": "隐患", "person": "人员",
    "playbook version": "流程版本", "playbook": "流程", "run": "流程实例", "task": "任务",
    "unit": "单位",
}


class NotFound(CloseloopError):
    """`ident` is what was asked for, often straight from the request: the message shows it
    clipped (a 5,000-character id must not come back in a 10 KB 404), the field keeps it."""

    def __init__(self, kind: str, ident: object) -> None:
        shown = clipped(str(ident), 80)  # every real id fits (the longest are 80 characters)
        super().__init__(f"{KIND_NAMES_ZH.get(kind, kind)} {shown} 不存在 / "
                         f"{kind} '{shown}' not found")
        self.kind = kind
        self.ident = ident


class NoPreview(NotFound):
    """A file handed in that has no preview (flows/evidence_preview.py): a HEIC photo, a PDF,
    a video, or a photo that cannot be decoded. A 404; the original is still there to open."""

    def __init__(self, evidence_id: str, content_type: str) -> None:
        CloseloopError.__init__(self, f"该文件（{content_type}）无法生成预览，请打开原件查看 / "
                                f"no preview of {content_type}; open the original")
        self.kind = "preview"
        self.ident = evidence_id
        self.content_type = content_type


class Conflict(CloseloopError):
    """The thing is not in a state that allows this (already done, already verified, ...)."""

    def __init__(self, message: str, *, current: str | None = None) -> None:
        super().__init__(message)
        self.current = current


class ConcurrentRuns(Conflict):
    """A start that asked not to run alongside another (flows/concurrent.py) found runs of the
    same playbook running for the unit, above it or below it; `runs` lists them (dicts)."""

    def __init__(self, message: str, runs: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.runs = runs


class ExtensionPastDeadline(Conflict):
    """A request for more time made once the task's deadline has passed (flows/extensions.py):
    an extension is asked before the deadline; the overdue task stays on its escalation ladder.
    A 409 whose error code is `extension_past_deadline`; `due_local` is the deadline as shown."""

    def __init__(self, current: str, due_local: str) -> None:
        super().__init__(
            f"任务期限 {due_local} 已过，不能再申请延期：延期须在期限届满前提出，逾期任务继续按督办"
            f"程序处理（督办、提级督办）/ the deadline ({due_local}) has passed: a request for "
            "more time must be made before it, and the overdue task stays on its escalation "
            "ladder", current=current)
        self.due_local = due_local


class EvidenceDamaged(Conflict):
    """A stored evidence file no longer holds what was uploaded: its bytes do not match the
    SHA-256 recorded at upload, or it is gone from the store. Not the request's fault (a 409,
    never a 422 or a 500); the caller logs it. Uploading the genuine file again repairs it
    (the store rewrites a key whose bytes differ, flows/evidence_store.py)."""

    def __init__(self, evidence_id: str, *, missing: bool = False) -> None:
        shown = clipped(evidence_id)
        if missing:
            message = (f"证据文件 {shown} 已不在存储中，请重新上传原文件 / stored file for "
                       f"{shown} is missing; upload the original file again")
        else:
            message = (f"证据文件 {shown} 已损坏（与登记的哈希不符），请重新上传原文件 / stored "
                       f"file for {shown} does not match its hash; upload the original file "
                       "again")
        super().__init__(message, current=None)
        self.evidence_id = evidence_id
        self.missing = missing


class Forbidden(CloseloopError):
    """The person may not do this; `reason` says why in words a user understands."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unauthorized(CloseloopError):
    """No token, or a token that does not verify."""


class StoreUnavailable(CloseloopError):
    """The evidence store (a directory or an HTTP object store) could not be reached or refused
    the request. `reason` is for logs and the CLI: it names the store's URL (never its
    credentials); the API answers 503 without it."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"证据存储不可用 / evidence store unavailable: {reason}")
        self.reason = reason
