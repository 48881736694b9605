"""JSON Schema of the playbook and module YAML formats, so editors can check and complete.

    python -m flows.schema_export            > playbooks/playbook.schema.json
    python -m flows.schema_export --module   > playbooks/modules/module.schema.json

In VS Code (YAML extension), a playbook opts in with a first line
`# yaml-language-server: $schema=playbook.schema.json`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel

from flows.spec import ModuleSource, PlaybookSource

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _schema(model: type[BaseModel], schema_id: str) -> dict[str, Any]:
    body = model.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": schema_id, **body}


def playbook_json_schema() -> dict[str, Any]:
    """The schema of playbooks/<id>.yaml."""
    return _schema(PlaybookSource, "https://closeloop.local/schema/playbook.schema.json")


def module_json_schema() -> dict[str, Any]:
    """The schema of playbooks/modules/<name>.yaml."""
    return _schema(ModuleSource, "https://closeloop.local/schema/module.schema.json")


def render(schema: dict[str, Any]) -> str:
    # Keep Chinese readable in the committed file and the diff stable.
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    schema = module_json_schema() if "--module" in args else playbook_json_schema()
    sys.stdout.write(render(schema))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
