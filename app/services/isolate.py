"""Batches from a file or a stream: one event the database refuses does not hold back
the rest for ever.

`record_events` checks all it can before it writes. What it cannot foresee (a database
constraint or trigger, a value the driver cannot send) fails the batch's transaction,
and a file or a stream would retry that batch for ever. `record_batch` applies such a
batch again one event at a time: an event that fails alone while the database answers
is refused (INVALID, naming the kind of error) and the others are recorded. When the
database does not answer, the error is raised: the caller retries later, and the
events' idempotency keys (files and streams always give one) make those already
recorded duplicates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from app.errors import ErrorCode, UserError
from app.runtime import Runtime
from app.services.board_sql import sql
from app.services.event_input import EventInput, Outcome
from app.services.ingest import record_events
from models import Tenant

log = logging.getLogger("questline.ingest")

PROBE_SECONDS = 5.0
FAILURE_CHARS = 300  # a failure's message in the log is cut at this length


def failure(exc: BaseException) -> str:
    """An exception in one short line, for the log: its class and message."""
    text = " ".join(str(exc).split())
    if len(text) > FAILURE_CHARS:
        text = text[: FAILURE_CHARS - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def database_answers() -> bool:
    try:
        conn, text = sql("SELECT 1")
        await asyncio.wait_for(conn.execute_query(text), PROBE_SECONDS)
    except Exception:
        return False
    return True


async def record_batch(
    rt: Runtime, tenant: Tenant, inputs: Sequence[EventInput]
) -> list[Outcome | UserError]:
    try:
        return await record_events(rt, tenant, inputs, alone=True)
    except UserError:
        raise  # the batch itself is refused (its size): not the database
    except Exception as exc:
        if not await database_answers():  # away: nothing to apply alone, the caller retries
            raise
        log.warning(
            "a batch of %d events failed (%r): applying them one at a time", len(inputs), exc
        )
    results: list[Outcome | UserError] = []
    for item in inputs:
        try:
            results += await record_events(rt, tenant, [item], alone=True)
        except Exception as exc:
            if not await database_answers():
                raise
            log.error(
                "the database refused event %r of player %r: %r",
                item.idempotency_key,
                item.player_id,
                exc,
            )
            message = f"the database refused this event ({type(exc).__name__})"
            results.append(UserError(ErrorCode.INVALID, message, []))
    return results


__all__ = ["database_answers", "failure", "record_batch"]
