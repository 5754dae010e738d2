"""SQLite runs each statement on aiosqlite's own thread, and every hand-over to that
thread costs far more CPU than a small statement: the ingest path makes few of them
(IngestStore._one_hop) and still reports errors as Tortoise does."""

from __future__ import annotations

from datetime import UTC, datetime

import aiosqlite
import pytest
from tortoise import Tortoise
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.transactions import in_transaction

from app.services import ingest
from app.services.ingest_store import IngestStore
from app.services.tenants import create_tenant
from models import Event, Player, PointTransaction, Wallet
from tests.conftest import IS_POSTGRES, logged_queries

pytestmark = pytest.mark.skipif(IS_POSTGRES, reason="SQLite's path")


@pytest.fixture
def hand_overs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The functions handed to aiosqlite's thread, counted (and run as they were)."""
    seen: list[str] = []
    handed = aiosqlite.Connection._execute

    async def counted(self, fn, *args, **kwargs):
        seen.append(getattr(fn, "__name__", repr(fn)))
        return await handed(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return seen


async def test_known_players_events_take_four_hand_overs_however_many(rt, hand_overs):
    tenant = await create_tenant("hops", preset="telco")
    now = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    names = [f"p{n}" for n in range(40)]
    first = [ingest.EventInput(name, "APP_LOGIN", value=1) for name in names]
    assert all(
        isinstance(r, ingest.Outcome)
        for r in await ingest.record_events(rt, tenant, first, now=now)
    )

    counts = []
    for batch in (names[:1], names):
        hand_overs.clear()
        events = [
            ingest.EventInput(name, "RECHARGE", value=10, idempotency_key=f"k-{name}-{len(batch)}")
            for name in batch
        ]
        with logged_queries() as log:
            results = await ingest.record_events(rt, tenant, events, now=now)
        assert all(isinstance(r, ingest.Outcome) and r.points > 0 for r in results)
        counts.append(len(hand_overs))
        # Statements run in one hand-over are still logged (and counted) one by one:
        # the key check, players, wallets, days; events, lines, wallets, days, scores.
        assert log.count == 9, log.count
    # BEGIN (app.sqlite_engine), the batch's reads, its writes, COMMIT.
    assert counts == [4, 4], counts
    assert await Event.filter(tenant=tenant).count() == 81
    for name in ("p0", "p39"):  # what the hand-overs wrote adds up
        wallet = await Wallet.get(player__tenant=tenant, player__external_id=name)
        lines = await PointTransaction.filter(player_id=wallet.player_id).order_by("id")
        assert len(lines) == (3 if name == "p0" else 2)
        assert wallet.balance == sum(line.amount for line in lines) == lines[-1].balance_after


async def test_one_hop_reports_errors_as_tortoise_does(rt):
    tenant = await create_tenant("hop-errors", preset="telco")
    await Player.create(tenant=tenant, external_id="ann", attributes={})
    insert = (
        "INSERT INTO player (tenant_id, external_id, kind, attributes, hidden_from_boards, "
        "created_at) VALUES (?, 'ann', 'CUSTOMER', '{}', 0, ?)"
    )
    async with in_transaction() as conn:
        store = IngestStore(conn, postgres=False)
        with pytest.raises(IntegrityError):
            await store._one_hop(lambda db: db.execute(insert, [tenant.id, datetime.now(UTC)]))
        with pytest.raises(OperationalError):
            await store._one_hop(lambda db: db.execute("SELECT * FROM no_such_table", []))
    assert await Player.filter(tenant=tenant).count() == 1


async def test_a_transaction_left_open_is_rolled_back_before_the_next_begins(rt):
    """A COMMIT that failed leaves SQLite's transaction open: the next transaction rolls
    it back (Tortoise's own begin would have committed it) and begins its own."""
    tenant = await create_tenant("left-open", preset="telco")
    client = Tortoise.get_connection("default")
    raw = client._connection
    await raw.execute("BEGIN")
    await raw.execute(
        "INSERT INTO player (tenant_id, external_id, kind, attributes, hidden_from_boards, "
        "created_at) VALUES (?, 'ghost', 'CUSTOMER', '{}', 0, ?)",
        [tenant.id, datetime.now(UTC)],
    )
    assert raw.in_transaction
    async with in_transaction():
        await Player.create(tenant=tenant, external_id="real", attributes={})
    assert not raw.in_transaction
    assert sorted(await Player.filter(tenant=tenant).values_list("external_id", flat=True)) == [
        "real"
    ]
