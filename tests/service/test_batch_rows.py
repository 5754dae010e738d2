"""A batch's rows as stored: PostgreSQL receives them as JSON text (ingest_store), SQLite
as typed values; both must store exactly what the events said and what they earned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from app.services import ingest
from app.services.tenants import create_tenant
from models import Event, Player, PointTransaction, Wallet

METADATA = {
    "note": 'Zürich "quoted" \\ back ✓',
    "nested": [1, {"a": None, "b": [True, False]}],
    "big": 2**70,
    "small": 1.5,
    "empty": {},
}


async def test_every_value_of_a_batch_is_stored_exactly(rt):
    tenant = await create_tenant("exact-rows", preset="telco")
    when = datetime(2026, 11, 20, 23, 59, 58, 123456, tzinfo=timezone(timedelta(hours=-5)))
    results = await ingest.record_events(
        rt,
        tenant,
        [
            ingest.EventInput(
                "ann",
                "DATA_USAGE",
                value=Decimal("1234.567891"),
                occurred_at=when,
                metadata=METADATA,
                idempotency_key="row-1",
            ),
            ingest.EventInput("ann", "APP_LOGIN", value=1, metadata=None, idempotency_key=None),
            ingest.EventInput("bo", "RECHARGE", value=10, source="billing"),
        ],
        now=datetime(2026, 11, 21, 6, 0, tzinfo=UTC),
    )
    assert all(isinstance(r, ingest.Outcome) for r in results)
    first, second, third = results
    stored = await Event.get(id=first.event.id)
    assert stored.metadata == METADATA
    assert stored.value == Decimal("1234.567891")
    assert stored.occurred_at == when
    assert stored.idempotency_key == "row-1"
    assert stored.points_awarded == first.points
    assert stored.outcome["points"] == str(first.points)
    assert (await Event.get(id=second.event.id)).idempotency_key is None
    assert (await Event.get(id=third.event.id)).source == "billing"

    ann = await Player.get(tenant=tenant, external_id="ann")
    lines = await PointTransaction.filter(player=ann).order_by("id")
    assert [line.event_id for line in lines] == [first.event.id, second.event.id]
    assert [line.amount for line in lines] == [first.points, second.points]
    wallet = await Wallet.get(player=ann)
    assert wallet.balance == first.points + second.points == lines[-1].balance_after
