"""app.services.record_files: what a stray quote, a line that never ends and a long
JSONL file cost: one refused line each, and memory for one record."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from app.services.record_files import MAX_RECORD_BYTES, open_records, read_header


def rows_of(path: Path, fmt: str) -> list[tuple[int, object, str | None]]:
    """(line, record, refusal) of every row of the file."""
    size = path.stat().st_size
    header, offset, line = read_header(path, size) if fmt == "csv" else (None, 0, 0)
    with open_records(path, fmt, header, offset, line, size) as rows:
        return [(r.line, r.record, r.error.message if r.error else None) for r in rows]


def test_a_quote_left_open_refuses_its_line_alone_and_the_rest_is_read(tmp_path):
    path = tmp_path / "stray.csv"
    path.write_text('player,value\na,1\n"b,2\nc,3\nd,4\n')
    rows = rows_of(path, "csv")
    assert [(line, record) for line, record, _ in rows] == [
        (2, {"player": "a", "value": "1"}),
        (3, None),
        (4, {"player": "c", "value": "3"}),
        (5, {"player": "d", "value": "4"}),
    ]
    assert "a quote left open?" in (rows[1][2] or "")


def test_a_quote_closed_lines_later_with_text_after_it_costs_one_line(tmp_path):
    path = tmp_path / "late.csv"
    path.write_text('player,value\nd,"4\ne,5\n"f,6\ng,7\n')
    rows = rows_of(path, "csv")
    assert [(line, record) for line, record, _ in rows] == [
        (2, None),  # its quote closes at line 4, followed by 'f'
        (3, {"player": "e", "value": "5"}),
        (4, None),  # its own quote is never closed
        (5, {"player": "g", "value": "7"}),
    ]


def test_a_quote_that_closes_into_another_column_count_costs_one_line(tmp_path):
    path = tmp_path / "count.csv"
    path.write_text('player,value\n"a\nb",1,2\nc,3\n')
    assert [(line, record) for line, record, _ in rows_of(path, "csv")] == [
        (2, None),
        (3, None),  # 'b",1,2' alone is not CSV either
        (4, {"player": "c", "value": "3"}),
    ]


def test_a_field_over_several_lines_in_closed_quotes_is_one_record(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text('player,note\na,"one\ntwo"\nb,x\n')
    assert [(line, record) for line, record, _ in rows_of(path, "csv")] == [
        (2, {"player": "a", "note": "one\ntwo"}),
        (4, {"player": "b", "note": "x"}),
    ]


def test_a_line_longer_than_a_record_may_be_is_refused_and_the_next_one_read(tmp_path):
    for fmt, first, last in (
        ("jsonl", '{"a": 1}', '{"b": 2}'),
        ("csv", "player,value\na,1", "b,2"),
    ):
        path = tmp_path / f"long.{fmt}"
        with path.open("w") as fh:
            fh.write(first + "\n")
            fh.write("x" * (MAX_RECORD_BYTES * 3) + "\n")
            fh.write(last + "\n")
        rows = rows_of(path, fmt)
        assert [record is None for _, record, _ in rows] == [False, True, False], fmt
        assert f"longer than {MAX_RECORD_BYTES:,} bytes" in (rows[1][2] or ""), fmt
        assert rows[2][0] == (3 if fmt == "jsonl" else 4), fmt


def test_a_file_without_line_ends_is_read_a_record_at_most(tmp_path):
    path = tmp_path / "zeros.jsonl"
    with path.open("wb") as fh:
        fh.truncate(MAX_RECORD_BYTES * 20)  # one line of NULs, never ended
    tracemalloc.start()
    try:
        rows = rows_of(path, "jsonl")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(line, record) for line, record, _ in rows] == [(1, None)]
    assert peak < MAX_RECORD_BYTES * 4


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_reading_a_long_file_keeps_one_record_in_memory(tmp_path, fmt):
    path = tmp_path / f"many.{fmt}"
    pad = "y" * 200
    if fmt == "jsonl":
        head, line = "", json.dumps({"player": "p", "value": 1, "pad": pad}) + "\n"
    else:
        head, line = "player,value,pad\n", f"p,1,{pad}\n"
    path.write_text(head + line * 20_000)
    size = path.stat().st_size
    columns, offset, first = read_header(path, size) if fmt == "csv" else (None, 0, 0)
    tracemalloc.start()
    try:
        with open_records(path, fmt, columns, offset, first, size) as rows:
            count = 0
            for row in rows:
                count += 1
                assert row.error is None and row.record["pad"] == pad
                assert len(rows.lines.taken) == 1
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 20_000
    assert peak < size // 4  # all the text taken would be the file's size again
