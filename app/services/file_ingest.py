"""A file of raw records (CSV or JSONL) into events through a tenant's DataSource, in
batches, resumable from a checkpoint beside the file.

Each record goes through `to_event_input` (the source's mapping, as `normalizeEvent`)
and, a batch at a time, `record_events` (rules, ledger, boards, publishing after
commit; one event at a time if the database refuses the batch: `record_batch`). Its
idempotency key is the record's own id within its source when the mapping names one,
else `file-{sha256[:16]}:{line}`: a re-run, or a resumed run, counts no
record twice. After each committed batch the checkpoint (the file's digest, the byte
offset and line after the batch, the running counts) is replaced atomically. Refused
records go to FILE.rejected.jsonl; the checkpoint's `rejects_bytes` keeps that file in
step with it (a resumed run cuts off what a batch that never committed wrote there).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from app.errors import ErrorCode, UserError
from app.runtime import Runtime
from app.services.event_input import EventInput
from app.services.ingest import MAX_BATCH, Outcome
from app.services.isolate import database_answers, failure, record_batch
from app.services.record_files import Row, open_records, read_header
from app.services.sources import SOURCE_TYPES, find_source, to_event_input
from app.services.tenants import get_tenant
from models import DataSource, Tenant

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
DEFAULT_BATCH = 500
STATE_SUFFIX = ".ingest-state.json"
REJECTS_SUFFIX = ".rejected.jsonl"
STATE_VERSION = 1
ZERO = Decimal(0)

log = logging.getLogger("questline.ingest")


@dataclass(slots=True)
class Counts:
    read: int = 0  # records (rows, or lines that are not blank), whatever became of them
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    points: Decimal = ZERO  # the applied events' pointsAwarded
    bonus: Decimal = ZERO  # the level-up bonuses they brought

    def add(self, other: Counts) -> None:
        for name in ("read", "applied", "duplicates", "rejected", "points", "bonus"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(slots=True)
class Checkpoint:
    """Where a run stands: after line `line`, at byte `offset`."""

    digest: str  # the file's sha256, hex
    tenant: str
    source_id: int
    format: str
    offset: int = 0
    line: int = 0
    rejects_bytes: int = 0
    complete: bool = False
    counts: Counts = field(default_factory=Counts)
    # Records applied under a key made of the file's digest and their line (no id of
    # their own): a changed file's lines are new keys, and would apply them again.
    # None: a checkpoint from before this was counted.
    positional: int | None = 0

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["counts"].update(points=str(self.counts.points), bonus=str(self.counts.bonus))
        return {"version": STATE_VERSION, **data}

    @classmethod
    def from_json(cls, data: Any) -> Checkpoint:
        """Raises KeyError, TypeError or ValueError for a file this did not write."""
        if data.pop("version") != STATE_VERSION:
            raise ValueError("another version")
        counts = Counts(**data.pop("counts"))
        data.setdefault("positional", None)
        saved = cls(**data, counts=counts)
        c = saved.counts
        numbers = (saved.source_id, saved.offset, saved.line, saved.rejects_bytes)
        if saved.positional is not None and type(saved.positional) is not int:
            raise TypeError("a field of the wrong type")
        texts = (saved.digest, saved.tenant, saved.format, c.points, c.bonus)
        if (
            not all(type(n) is int for n in (*numbers, c.read, c.applied, c.duplicates, c.rejected))
            or not all(type(t) is str for t in texts)
            or type(saved.complete) is not bool
        ):
            raise TypeError("a field of the wrong type")
        c.points, c.bonus = Decimal(c.points), Decimal(c.bonus)
        return saved


@dataclass(slots=True)
class Plan:
    """What a run will do, decided before anything is written."""

    path: Path
    format: str  # csv or jsonl
    batch_size: int
    state_path: Path
    rejects_path: Path
    tenant: Tenant
    source: DataSource
    size: int
    digest: str
    header: list[str] | None  # CSV: the column names (None: an empty file)
    start: Checkpoint  # where the run begins
    status: str = "new"  # new, resume, restart, changed, unreadable, complete
    note: str | None = None  # why it begins there, for the operator


@dataclass(slots=True)
class Result:
    total: Counts  # the whole file's: this run and those it resumed
    run: Counts  # this run's
    elapsed: float  # seconds, this run
    complete: bool
    line: int  # the last line read and committed
    rejects_path: Path


# progress(byte offset reached, this run's counts): after each committed batch.
Progress = Callable[[int, Counts], None]


# ------------------------------------------------------------------ planning


async def plan_ingest(
    path: Path,
    *,
    tenant: str,
    source: str,
    fmt: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    state_path: Path | None = None,
    restart: bool = False,
    stop: asyncio.Event | None = None,
) -> Plan:
    """Checks everything a run needs and reads its checkpoint; writes nothing. Raises a
    UserError for a usage error (file, format, batch size, tenant, source, a changed
    file that would apply records twice) and Stopped when `stop` is set while the file
    is read for its digest."""
    _check_readable(path)
    fmt = _format(path, fmt)
    if not 1 <= batch_size <= MAX_BATCH:
        raise UserError(ErrorCode.INVALID, f"the batch size is 1-{MAX_BATCH}", "batchSize")
    state_path = state_path or Path(f"{path}{STATE_SUFFIX}")
    rejects_path = Path(f"{path}{REJECTS_SUFFIX}")
    for target in (state_path, rejects_path):
        _check_writable(target)
    row = await get_tenant(tenant)
    found = await _source(row, source)
    # Reads the whole file, once the rest is known good; in a thread, so that a signal
    # is heard (and stops it) at once.
    size, digest = await asyncio.to_thread(_digest, path, stop)
    header, offset, line = read_header(path, size) if fmt == "csv" else (None, 0, 0)
    fresh = Checkpoint(digest, row.slug, found.id, fmt, offset, line)
    plan = Plan(
        path, fmt, batch_size, state_path, rejects_path, row, found, size, digest, header, fresh
    )
    saved, problem = _load_checkpoint(state_path, offset, size)
    if restart:
        plan.status, plan.note = "restart", f"--restart: reading {path} from the start"
    elif problem is not None:
        plan.status = "unreadable"
        plan.note = f"the checkpoint {state_path} cannot be used ({problem}): starting over"
    elif saved is None:
        pass
    elif saved.digest != digest and saved.positional != 0:
        done = "some" if saved.positional is None else f"{saved.positional:,}"
        raise UserError(
            ErrorCode.CONFLICT,
            f"{path} changed since its checkpoint {state_path} (sha256 {saved.digest[:12]}… "
            f"then, {digest[:12]}… now), and {done} of the records applied then had no id "
            "of their own: they were known by their line, and reading the new file would "
            "apply them again. Give --restart to read it from the start all the same.",
            "file",
        )
    elif saved.digest != digest:
        plan.status = "changed"
        plan.note = (
            f"{path} changed since its checkpoint (sha256 {saved.digest[:12]}… then, "
            f"{digest[:12]}… now): starting over"
        )
    elif (saved.tenant, saved.source_id, saved.format) != (row.slug, found.id, fmt):
        plan.status = "changed"
        plan.note = (
            f"the checkpoint is for tenant {saved.tenant}, data source #{saved.source_id} "
            f"and format {saved.format}: starting over"
        )
    elif saved.complete:
        plan.status, plan.start = "complete", saved
        plan.note = f"{path} was already ingested; --restart reads it again"
    else:
        plan.status, plan.start = "resume", saved
        done = saved.counts.read
        plan.note = f"resuming {path} after line {saved.line} ({done:,} records done before)"
    return plan


def _format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt.lower() not in ("csv", "jsonl"):
            raise UserError(ErrorCode.INVALID, f"unknown format {fmt!r}: csv or jsonl", "format")
        return fmt.lower()
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise UserError(
            ErrorCode.INVALID,
            f"cannot tell the format of {path} from its extension: give --format csv or jsonl",
            "format",
        )
    return found


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise UserError(ErrorCode.NOT_FOUND, f"no file {path}", "file")
    if not path.is_file():
        raise UserError(ErrorCode.INVALID, f"{path} is not a file", "file")
    if not os.access(path, os.R_OK):
        raise UserError(ErrorCode.INVALID, f"cannot read {path}", "file")


def _check_writable(target: Path) -> None:
    folder_ok = os.access(target.parent, os.W_OK | os.X_OK)
    if not folder_ok or (target.exists() and not os.access(target, os.W_OK)):
        raise UserError(ErrorCode.INVALID, f"cannot write {target}", "file")


class Stopped(Exception):
    """A signal stopped the run before it wrote anything."""


DIGEST_CHUNK = 1 << 20


def _digest(path: Path, stop: asyncio.Event | None = None) -> tuple[int, str]:
    """The file's size and sha256 (hex), read a MiB at a time; Stopped once `stop` is
    set (checked between chunks: this runs in a thread)."""
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(DIGEST_CHUNK):
                if stop is not None and stop.is_set():
                    raise Stopped
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise UserError(ErrorCode.INVALID, f"cannot read {path}: {exc.strerror}", "file") from None
    return size, digest.hexdigest()


async def _source(tenant: Tenant, spec: str) -> DataSource:
    if spec.isascii() and spec.isdigit():
        return await find_source(tenant, spec, None)
    if spec in SOURCE_TYPES:
        return await find_source(tenant, None, spec)
    raise UserError(
        ErrorCode.INVALID,
        f"unknown source {spec!r}: give a data source id or a type ({', '.join(SOURCE_TYPES)})",
        "source",
    )


def _load_checkpoint(path: Path, start: int, size: int) -> tuple[Checkpoint | None, str | None]:
    """The saved checkpoint, or why it cannot be used; (None, None) when there is none."""
    if not path.exists():
        return None, None
    try:
        saved = Checkpoint.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ArithmeticError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if not start <= saved.offset <= size:
        return None, f"offset {saved.offset} is outside the records"
    return saved, None


# ------------------------------------------------------------------ running


class DatabaseAway(Exception):
    """The database did not answer through every retry of a batch; the checkpoint is
    the last committed batch's."""


RETRY_FIRST, RETRY_MAX = 0.5, 30.0  # seconds between a batch's tries, doubling
DEFAULT_RETRIES = 8


async def run_ingest(
    rt: Runtime,
    plan: Plan,
    *,
    progress: Progress | None = None,
    stop: asyncio.Event | None = None,
    retries: int = DEFAULT_RETRIES,
) -> Result:
    """Reads the file from the plan's start and applies it batch by batch, saving the
    checkpoint after each; once `stop` is set, returns after the batch in flight. A
    batch the database does not answer is tried again `retries` times (a line on the
    log each), then DatabaseAway."""
    state = replace(plan.start, counts=replace(plan.start.counts))
    run = Counts()
    started = time.monotonic()
    resumed = plan.status in ("resume", "complete")
    with (
        open_records(
            plan.path, plan.format, plan.header, state.offset, state.line, plan.size
        ) as rows,
        _Rejects(plan.rejects_path, state, resumed) as rejects,
    ):
        while not state.complete and not (stop is not None and stop.is_set()):
            batch = list(itertools.islice(rows, plan.batch_size))
            applied = await _apply_retrying(rt, plan, batch, state.line, retries, stop)
            if applied is None:
                break  # stopped while waiting for the database: this batch is not done
            counts, positional = applied
            rejects.write(batch)  # on disk before the checkpoint that counts them
            state.offset, state.line = rows.position()
            state.complete = len(batch) < plan.batch_size
            state.counts.add(counts)
            if state.positional is not None:
                state.positional += positional
            run.add(counts)
            _save(plan.state_path, state)
            if progress is not None:
                progress(state.offset, run)
    elapsed = time.monotonic() - started
    return Result(state.counts, run, elapsed, state.complete, state.line, plan.rejects_path)


async def _apply_retrying(
    rt: Runtime,
    plan: Plan,
    batch: list[Row],
    after: int,
    retries: int,
    stop: asyncio.Event | None,
) -> tuple[Counts, int] | None:
    """`_apply`, tried again while the database does not answer (its records' keys make
    whatever a failed try committed a duplicate the next time); None when `stop` is set
    while waiting."""
    wait = RETRY_FIRST
    for attempt in range(retries + 1):
        try:
            # A task of its own: a transaction that died with its connection stays
            # Tortoise's current one in the context that ran it, and every later try in
            # that context would be handed the dead connection again.
            return await asyncio.create_task(_apply(rt, plan, batch))
        except UserError:
            raise
        except Exception as exc:
            if await database_answers():
                raise  # not the database being away: a fault to see
            if attempt == retries:
                raise DatabaseAway(
                    f"the database did not answer through {retries} retries of the batch "
                    f"after line {after} ({failure(exc)})"
                ) from exc
            log.warning(
                "the database is unavailable (%s): the batch after line %d again in %.1f s "
                "(retry %d of %d)",
                failure(exc),
                after,
                wait,
                attempt + 1,
                retries,
            )
        if stop is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            if stop.is_set():
                return None
        else:
            await asyncio.sleep(wait)
        wait = min(wait * 2, RETRY_MAX)
    raise AssertionError("unreachable")


async def _apply(rt: Runtime, plan: Plan, batch: list[Row]) -> tuple[Counts, int]:
    """One batch through the source's mapping and `record_events`; a refusal is put on
    its row. Also returns how many applied records were keyed by their line."""
    counts = Counts(read=len(batch))
    mapped: list[Row] = []
    inputs: list[EventInput] = []
    by_line: set[int] = set()  # rows whose key is their line's
    for row in batch:
        if row.error is not None:
            continue
        try:
            item = to_event_input(plan.source, row.record, None)
        except UserError as exc:
            row.error = exc
            continue
        if item.idempotency_key is None:  # the mapping found no id of the record's own
            item.idempotency_key = f"file-{plan.digest[:16]}:{row.line}"
            by_line.add(row.line)
        mapped.append(row)
        inputs.append(item)
    results = await record_batch(rt, plan.tenant, inputs) if inputs else []
    positional = 0
    for row, result in zip(mapped, results, strict=True):
        if not isinstance(result, Outcome):
            row.error = result
        elif result.duplicate:
            counts.duplicates += 1
        else:
            counts.applied += 1
            counts.points += result.points
            counts.bonus += result.level_up.bonus if result.level_up else ZERO
            positional += row.line in by_line
    counts.rejected = sum(1 for row in batch if row.error is not None)
    return counts, positional


def _save(path: Path, state: Checkpoint) -> None:
    """Written beside the target, then renamed over it: a crash leaves the old or the
    new checkpoint, never half of one."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temp.open("w", encoding="utf-8") as fh:
        json.dump(state.to_json(), fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temp, path)


class _Rejects:
    """FILE.rejected.jsonl: removed by a run that starts over; cut back to the
    checkpoint's `rejects_bytes` by one that resumes; appended to after each batch."""

    def __init__(self, path: Path, state: Checkpoint, resumed: bool) -> None:
        self.path, self.state, self.resumed = path, state, resumed
        self.fh: IO[bytes] | None = None

    def __enter__(self) -> _Rejects:
        if not self.resumed:
            self.state.rejects_bytes = 0
            self.path.unlink(missing_ok=True)
        elif self.path.exists() and self.path.stat().st_size > self.state.rejects_bytes:
            os.truncate(self.path, self.state.rejects_bytes)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            self.fh.close()

    def write(self, batch: list[Row]) -> None:
        lines = [_reject_json(row) for row in batch if row.error is not None]
        if not lines:
            return
        if self.fh is None:
            self.fh = self.path.open("ab")
        # A lone surrogate (a JSON "\udc80") is written escaped: it has no UTF-8.
        self.fh.write("".join(lines).encode("utf-8", "backslashreplace"))
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.state.rejects_bytes = self.fh.tell()


def _reject_json(row: Row) -> str:
    """One line of the rejects file: where, why, and the record (or the text that did
    not parse)."""
    assert row.error is not None
    entry: dict[str, Any] = {
        "line": row.line,
        "code": str(row.error.code),
        "message": row.error.message,
        "field": row.error.field,
    }
    if row.raw is not None:
        entry["text"] = row.raw
    else:
        entry["record"] = row.record
    return json.dumps(entry, ensure_ascii=False, default=str) + "\n"
