"""Reading lead files for bulk import: CSV with a header, or JSON lines. No I/O besides parsing."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from services.marketing.schemas import ImportRowError, LeadCreate
from shared.problems import field_name

MAX_ROWS = 100_000
COLUMNS = ("email", "name", "company", "title", "source", "campaign_id", "occurred_at")
REQUIRED_COLUMNS = ("email", "name", "company", "source")
CSV_TYPES = ("text/csv", "application/csv")
JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")


class ImportFileError(ValueError):
    """The file as a whole cannot be read (not the fault of single rows)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


@dataclass
class ParsedFile:
    rows: list[tuple[int, LeadCreate]] = field(default_factory=list)
    errors: list[ImportRowError] = field(default_factory=list)
    count: int = 0


def parse(content: bytes, content_type: str) -> ParsedFile:
    """Validate every row; good rows and the line and field of each bad one."""
    media = content_type.split(";")[0].strip().lower()
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError("body", f"the file is not UTF-8 (byte {exc.start})") from exc
    nul = "\x00" in text  # rows are searched for it only when the file has one
    if media in CSV_TYPES:
        return _validate(_csv_rows(text), nul)
    if media in JSONL_TYPES:
        return _validate(_jsonl_rows(text), nul)
    raise ImportFileError(
        "Content-Type", f"use {CSV_TYPES[0]} (with a header) or {JSONL_TYPES[0]} (JSON lines)"
    )


def _csv_rows(text: str) -> Any:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ImportFileError("header", f"missing column(s): {', '.join(missing)}")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise ImportFileError("header", f"unknown column(s): {', '.join(unknown)}")
    reader.fieldnames = header
    for record in reader:
        extra = record.pop(None, None)
        values = {k: v.strip() for k, v in record.items() if v is not None and v.strip() != ""}
        if extra:
            yield reader.line_num, ("row", "more values than columns")
        else:
            yield reader.line_num, values


def _jsonl_rows(text: str) -> Any:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield number, ("row", "not a JSON object")
            continue
        yield number, value if isinstance(value, dict) else ("row", "not a JSON object")


def _validate(rows: Any, nul: bool) -> ParsedFile:
    parsed = ParsedFile()
    for line, values in rows:
        parsed.count += 1
        if parsed.count > MAX_ROWS:
            raise ImportFileError("body", f"more than {MAX_ROWS} rows; split the file")
        if nul and not isinstance(values, tuple):
            values = _nul_field(values) or values
        if isinstance(values, tuple):
            parsed.errors.append(ImportRowError(line=line, field=values[0], reason=values[1]))
            continue
        try:
            parsed.rows.append((line, LeadCreate.model_validate(values)))
        except ValidationError as exc:
            first = exc.errors()[0]
            parsed.errors.append(
                ImportRowError(line=line, field=field_name(first["loc"]), reason=first["msg"])
            )
    return parsed


def _nul_field(values: dict[str, Any]) -> tuple[str, str] | None:
    """The row's first field (or key) holding NUL, which no database here stores, as an error."""
    for name, value in values.items():
        if "\x00" in name or (isinstance(value, str) and "\x00" in value):
            return name.replace("\x00", "\\u0000"), "must not contain the NUL character (U+0000)"
    return None
