"""A table as a download: the export format checked, and the file streamed with a name in
Chinese (三个清单, 月度排名, 报送考核: flows/exports.py writes the rows)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi.responses import StreamingResponse

from flows import exports
from flows.runtime import Runtime
from models.errors import InvalidInput, clipped


def check_format(fmt: str) -> str:
    """csv or xlsx, as written (lower case): `CSV` is refused like any other unknown format."""
    if fmt not in exports.FORMATS:
        shown, known = clipped(fmt, 80), exports.FORMATS
        raise InvalidInput("format", f"未知的导出格式“{shown}”（可选：{'、'.join(known)}）/ "
                           f"unknown format '{shown}' (known: {', '.join(known)})")
    return fmt


def download(rt: Runtime, fmt: str, table: exports.Table) -> StreamingResponse:
    """The table streamed as `fmt`, named after its title and the bureau's local time."""
    stamp = rt.clock.now().astimezone(rt.tz).strftime("%Y%m%d-%H%M")
    name = f"{table.title}-{stamp}.{fmt}"
    disposition = f"attachment; filename=\"export-{stamp}.{fmt}\"; filename*=UTF-8''{quote(name)}"
    return StreamingResponse(exports.export_chunks(fmt, table),
                             media_type=exports.MEDIA_TYPES[fmt],
                             headers={"Content-Disposition": disposition})
