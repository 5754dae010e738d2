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


# The most one record may take, a CSV record over several lines included: a line that
# never ends (a file of NULs, a binary file) or a quote never closed would otherwise be
# read whole into memory before it could be refused.
MAX_RECORD_BYTES = 1 << 20
_SKIP_CHUNK = 1 << 16


class TooLong(Exception):
    """The record being read passed MAX_RECORD_BYTES."""


class Lines:
    """The file's physical lines from a byte offset, as text (bytes that are not UTF-8
    kept as lone surrogates), counting bytes and lines; stops at `size` (the part of the
    file its digest covers). `mark()` starts a record: `taken` then holds its text.

    A line longer than MAX_RECORD_BYTES is skipped to its end and raises TooLong (its
    start kept in `taken`); so does a record whose lines together pass it."""

    def __init__(self, fh: IO[bytes], offset: int, line: int, size: int) -> None:
        fh.seek(offset)
        self.fh, self.offset, self.line, self.size = fh, offset, line, size
        self.mark()

    def mark(self) -> None:
        """A record starts here."""
        self.taken: list[str] = []  # the record's text so far
        self.taken_bytes = 0
        self.first_end: tuple[int, int] | None = None  # offset and line after its first line

    def rewind_to_second_line(self) -> None:
        """Reads again from the record's second line (its first one refused alone)."""
        assert self.first_end is not None
        self.offset, self.line = self.first_end
        self.fh.seek(self.offset)
        self.mark()

    def __iter__(self) -> Lines:
        return self

    def __next__(self) -> str:
        left = max(self.size - self.offset, 0)
        raw = self.fh.readline(min(left, MAX_RECORD_BYTES + 1))
        if not raw:
            raise StopIteration
        too_long = len(raw) > MAX_RECORD_BYTES
        text = raw[:200].decode("utf-8", "surrogateescape") if too_long else self._text(raw)
        self.offset += len(raw)
        if too_long:
            self._skip_rest(raw)
        self.line += 1
        if self.first_end is None:
            self.first_end = (self.offset, self.line)
        self.taken.append(text)
        self.taken_bytes += len(raw)
        if self.taken_bytes > MAX_RECORD_BYTES:
            raise TooLong
        return text

    def _text(self, raw: bytes) -> str:
        text = raw.decode("utf-8", "surrogateescape")
        if self.offset == 0 and text.startswith("\ufeff"):
            text = text[1:]  # a byte-order mark (spreadsheet exports write one)
        return text

    def _skip_rest(self, raw: bytes) -> None:
        """The rest of a line too long to keep, read and dropped in chunks."""
        while not raw.endswith(b"\n") and self.offset < self.size:
            raw = self.fh.readline(min(self.size - self.offset, _SKIP_CHUNK))
            if not raw:
                return
            self.offset += len(raw)


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
    while True:
        lines.mark()
        try:
            text = next(lines)
        except StopIteration:
            return
        except TooLong:
            yield _too_long(lines.line, lines.taken[0])
            continue
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
    for start, fields, text, problem in _csv_records(lines, len(header)):
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


def _csv_records(
    lines: Lines, columns: int | None = None
) -> Iterator[tuple[int, list[str] | None, str, str | None]]:
    """(first line, fields, text, CSV error) of each record that is not blank.

    Strict CSV: a quote opened and never closed (or closed and followed by more text)
    is an error, not a field that runs on to the end of the file. A record over several
    lines that is not CSV, passes MAX_RECORD_BYTES or (given `columns`) has another
    number of fields is refused by its first line alone, and the lines after it are read
    again as records of their own: one stray quote costs one line, not the rest of the
    file."""
    reader = csv.reader(lines, strict=True)
    while True:
        lines.mark()
        start = lines.line + 1
        try:
            fields: list[str] | None = next(reader)
            problem = None
        except StopIteration:
            return
        except TooLong:
            fields, problem = None, f"a record longer than {MAX_RECORD_BYTES:,} bytes"
        except csv.Error as exc:
            fields, problem = None, str(exc)
        spans = len(lines.taken) > 1
        if fields is not None and spans and columns is not None and len(fields) != columns:
            fields, problem = None, f"expected {columns} columns, found {len(fields)}"
        if problem is None:
            text = "".join(lines.taken)
            if text.strip():
                yield start, fields, text, None
            continue
        text = lines.taken[0] if lines.taken else ""
        if spans:
            problem += f" in a record of {len(lines.taken)} lines from here (a quote left open?)"
            lines.rewind_to_second_line()
        reader = csv.reader(lines, strict=True)  # afresh, after the refused text
        yield start, None, text, problem


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


def _too_long(line: int, start: str) -> Row:
    shown = start.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    message = f"a line longer than {MAX_RECORD_BYTES:,} bytes"
    return Row(line, raw=shown.rstrip("\r\n") + "…", error=_invalid(message))


def _invalid(message: str) -> UserError:
    return UserError(ErrorCode.INVALID, message, "line")
