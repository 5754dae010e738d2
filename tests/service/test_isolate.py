"""An event the database refuses, in a batch from a file or a stream: refused alone,
the others recorded (a real trigger refuses it, on either backend)."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from decimal import Decimal

from tortoise import Tortoise

from app.errors import UserError
from app.services.event_input import Outcome
from app.services.file_ingest import plan_ingest, run_ingest
from app.services.ingest import EventInput
from app.services.isolate import record_batch
from app.services.sources import create_source
from models import Event, PointTransaction, Wallet

POSTGRES = (
    "CREATE FUNCTION ql_refuse_poison() RETURNS trigger AS $$ BEGIN "
    "IF NEW.event_type = 'POISON' THEN RAISE EXCEPTION 'poisoned'; END IF; "
    "RETURN NEW; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER ql_refuse_poison BEFORE INSERT ON event FOR EACH ROW "
    "EXECUTE FUNCTION ql_refuse_poison()",
)
POSTGRES_DROP = (
    "DROP TRIGGER ql_refuse_poison ON event",
    "DROP FUNCTION ql_refuse_poison()",
)
SQLITE = (
    "CREATE TRIGGER ql_refuse_poison BEFORE INSERT ON event "
    "WHEN NEW.event_type = 'POISON' BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
)
SQLITE_DROP = ("DROP TRIGGER ql_refuse_poison",)


@asynccontextmanager
async def poison_refused():
    conn = Tortoise.get_connection("default")
    postgres = conn.capabilities.dialect == "postgres"
    for statement in POSTGRES if postgres else SQLITE:
        await conn.execute_script(statement)
    try:
        yield
    finally:
        for statement in POSTGRES_DROP if postgres else SQLITE_DROP:
            await conn.execute_script(statement)


async def ledger_matches(tenant_id: int) -> None:
    for wallet in await Wallet.filter(tenant_id=tenant_id):
        lines = await PointTransaction.filter(player_id=wallet.player_id).values_list(
            "amount", flat=True
        )
        assert sum(lines, Decimal(0)) == wallet.balance


async def test_the_event_the_database_refuses_is_refused_alone(rt, default_tenant):
    items = [
        EventInput("a", "APP_LOGIN", idempotency_key="k1"),
        EventInput("b", "POISON", idempotency_key="k2"),
        EventInput("c", "APP_LOGIN", idempotency_key="k3"),
    ]
    async with poison_refused():
        results = await record_batch(rt, default_tenant, items)
        assert isinstance(results[0], Outcome) and isinstance(results[2], Outcome)
        assert isinstance(results[1], UserError) and results[1].code == "INVALID"
        assert results[1].message.startswith("the database refused this event (")
        again = await record_batch(rt, default_tenant, items)  # a retry: duplicates
    assert [r.duplicate for r in again if isinstance(r, Outcome)] == [True, True]
    assert sorted(await Event.all().values_list("player__external_id", flat=True)) == ["a", "c"]
    await ledger_matches(default_tenant.id)


async def test_a_file_goes_on_past_it(rt, default_tenant, tmp_path):
    path = tmp_path / "events.jsonl"
    lines = [
        {"customer_id": "a", "event_type": "APP_LOGIN", "value": 1},
        {"customer_id": "b", "event_type": "POISON", "value": 1},
        {"customer_id": "c", "event_type": "APP_LOGIN", "value": 1},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    source = await create_source(default_tenant, source_type="custom", name="t", event_mapping={})
    async with poison_refused():
        plan = await plan_ingest(path, tenant="default", source=str(source.id))
        result = await run_ingest(rt, plan)
    assert (result.total.applied, result.total.rejected) == (2, 1), result
    (reject,) = [
        json.loads(x)
        for x in path.with_name("events.jsonl.rejected.jsonl").read_text().splitlines()
    ]
    assert reject["line"] == 2 and reject["code"] == "INVALID"
    assert reject["message"].startswith("the database refused this event")
