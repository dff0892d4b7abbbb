"""`baton import leads FILE`: send a lead file to the marketing API in chunks, with progress."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass
class Chunk:
    """One request's worth of rows, and the file line each of its lines came from."""

    content: bytes
    content_type: str
    rows: int
    original_line: dict[int, int] = field(default_factory=dict)


def chunks(path: Path, rows_per_chunk: int) -> Iterator[Chunk]:
    """Split the file into self-contained requests (each CSV chunk repeats the header)."""
    if path.suffix.lower() in JSONL_SUFFIXES:
        yield from _jsonl_chunks(path, rows_per_chunk)
    else:
        yield from _csv_chunks(path, rows_per_chunk)


def _jsonl_chunks(path: Path, size: int) -> Iterator[Chunk]:
    lines: list[tuple[int, str]] = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                lines.append((number, line.rstrip("\n")))
            if len(lines) == size:
                yield _jsonl_chunk(lines)
                lines = []
    if lines:
        yield _jsonl_chunk(lines)


def _jsonl_chunk(lines: list[tuple[int, str]]) -> Chunk:
    text = "\n".join(line for _, line in lines) + "\n"
    mapping = {i: number for i, (number, _) in enumerate(lines, start=1)}
    return Chunk(text.encode(), "application/x-ndjson", len(lines), mapping)


def _csv_chunks(path: Path, size: int) -> Iterator[Chunk]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        records: list[tuple[int, list[str]]] = []
        for record in reader:
            records.append((reader.line_num, record))
            if len(records) == size:
                yield _csv_chunk(header, records)
                records = []
        if records:
            yield _csv_chunk(header, records)


def _csv_chunk(header: list[str], records: list[tuple[int, list[str]]]) -> Chunk:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def render(row: list[str]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        return buffer.getvalue()

    parts = [render(header)]
    line = 1
    mapping = {}
    for original, record in records:
        text = render(record)
        parts.append(text)
        line += text.count("\n")
        mapping[line] = original  # the server names a row by the line its record ends on
    return Chunk("".join(parts).encode(), "text/csv", len(records), mapping)
