"""Raw records read from a CSV or JSONL file from a byte offset, each with the line it
starts on, so that a file ingest can stop after any record and resume there."""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from app.errors import ErrorCode, UserError


@dataclass(slots=True)
class Row:
    """One record: parsed (`record`), or refused (`error`, with its text in `raw`)."""

    line: int  # the physical line it starts on, from 1
    record: Any = None
    raw: str | None = None
    error: UserError | None = None


class Lines:
    """The file's physical lines from a byte offset, as text (bytes that are not UTF-8
    kept as lone surrogates), counting bytes and lines; stops at `size` (the part of the
    file its digest covers)."""

    def __init__(self, fh: IO[bytes], offset: int, line: int, size: int) -> None:
        fh.seek(offset)
        self.fh, self.offset, self.line, self.size = fh, offset, line, size
        self.taken: list[str] = []  # the text read since the caller last cleared it

    def __iter__(self) -> Lines:
        return self

    def __next__(self) -> str:
        raw = self.fh.readline(max(self.size - self.offset, 0))
        if not raw:
            raise StopIteration
        text = raw.decode("utf-8", "surrogateescape")
        if self.offset == 0 and text.startswith("\ufeff"):
            text = text[1:]  # a byte-order mark (spreadsheet exports write one)
        self.offset += len(raw)
        self.line += 1
        self.taken.append(text)
        return text


class Records:
    """The rows of a file from a position, and the position after the last one taken."""

    def __init__(self, lines: Lines, rows: Iterator[Row]) -> None:
        self.lines, self.rows = lines, rows

    def __iter__(self) -> Iterator[Row]:
        return self.rows

    def position(self) -> tuple[int, int]:
        """Byte offset and line after the last row taken: the generators read one record
        at a time (csv.reader too), and one suspended at its `yield` has read no further."""
        return self.lines.offset, self.lines.line


def read_header(path: Path, size: int) -> tuple[list[str] | None, int, int]:
    """A CSV file's column names (None: no header, an empty file) and the offset and
    line after them. Raises a UserError for a header that cannot name the columns."""
    with path.open("rb") as fh:
        lines = Lines(fh, 0, 0, size)
        first = next(_csv_records(lines), None)
        if first is None:
            return None, 0, 0
        _, fields, text, problem = first
        if problem is not None:
            raise UserError(ErrorCode.INVALID, f"{path}: the header is not CSV: {problem}", "file")
        if _undecodable(text):
            raise UserError(ErrorCode.INVALID, f"{path}: the header is not UTF-8", "file")
        names = [name.strip() for name in fields or []]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise UserError(
                ErrorCode.INVALID, f"{path}: the header repeats {repeated[0]!r}", "file"
            )
        return names, lines.offset, lines.line


@contextlib.contextmanager
def open_records(
    path: Path, fmt: str, header: list[str] | None, offset: int, line: int, size: int
) -> Iterator[Records]:
    """The rows from `offset` (the start of line `line` + 1); CSV rows are objects keyed
    by the header, JSONL rows what each line holds."""
    with path.open("rb") as fh:
        lines = Lines(fh, offset, line, size)
        if fmt == "jsonl":
            yield Records(lines, _jsonl_rows(lines))
        else:
            yield Records(lines, _csv_rows(lines, header or []))


def _jsonl_rows(lines: Lines) -> Iterator[Row]:
    for text in lines:
        if not text.strip():
            continue
        if _undecodable(text):
            yield _not_utf8(lines.line, text)
            continue
        try:
            yield Row(lines.line, record=json.loads(text))
        except ValueError as exc:
            yield Row(lines.line, raw=text.rstrip("\r\n"), error=_invalid(f"not JSON: {exc}"))


def _csv_rows(lines: Lines, header: list[str]) -> Iterator[Row]:
    for start, fields, text, problem in _csv_records(lines):
        if problem is not None:
            yield Row(start, raw=text.rstrip("\r\n"), error=_invalid(f"not CSV: {problem}"))
        elif _undecodable(text):
            yield _not_utf8(start, text)
        elif len(fields or []) != len(header):
            message = f"expected {len(header)} columns, found {len(fields or [])}"
            yield Row(start, raw=text.rstrip("\r\n"), error=_invalid(message))
        else:
            # An empty cell is an absent value, as a missing key is in JSON: a template
            # or a lookup then takes its default instead of an empty string.
            record = {name: value or None for name, value in zip(header, fields or [], strict=True)}
            yield Row(start, record=record)


def _csv_records(lines: Lines) -> Iterator[tuple[int, list[str] | None, str, str | None]]:
    """(first line, fields, text, CSV error) of each record that is not blank."""
    reader = csv.reader(lines)
    while True:
        lines.taken.clear()
        start = lines.line + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # the reader starts afresh at the next line
            yield start, None, "".join(lines.taken), str(exc)
            continue
        text = "".join(lines.taken)
        if text.strip():
            yield start, fields, text, None


def _undecodable(text: str) -> bool:
    """Bytes that were not UTF-8 (kept as lone surrogates, which UTF-8 cannot encode)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _not_utf8(line: int, text: str) -> Row:
    shown = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return Row(line, raw=shown.rstrip("\r\n"), error=_invalid("not UTF-8"))


def _invalid(message: str) -> UserError:
    return UserError(ErrorCode.INVALID, message, "line")
