"""Splitting lead files into requests keeps every row and maps lines back to the file."""

from __future__ import annotations

from pathlib import Path

from baton.importing import chunks


def test_csv_chunks_repeat_the_header_and_map_lines(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(
        "email,name,company,source\n"
        "a@x.jp,A,Alpha,seo\n"
        'b@x.jp,"B\nsecond line",Beta,ads\n'  # a quoted field across two lines
        "c@x.jp,C,Gamma,seo\n"
        "d@x.jp,D,Delta,seo\n"
    )
    parts = list(chunks(path, 2))
    assert [p.rows for p in parts] == [2, 2]
    assert all(p.content.startswith(b"email,name,company,source\n") for p in parts)
    # rows end on lines 2 and 4 of the file (the second spans lines 3-4), then 5 and 6
    assert parts[0].original_line == {2: 2, 4: 4}
    assert parts[1].original_line == {2: 5, 3: 6}


def test_jsonl_chunks_skip_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "leads.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n{"a": 3}\n')
    parts = list(chunks(path, 2))
    assert [p.rows for p in parts] == [2, 1]
    assert parts[0].original_line == {1: 1, 2: 3}
    assert parts[1].original_line == {1: 4}
    assert parts[0].content_type == "application/x-ndjson"
