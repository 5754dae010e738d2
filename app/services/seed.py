"""Demo data for a fresh install: tenant `default` and a few players; safe to run twice."""

from __future__ import annotations

from app.runtime import Runtime
from app.services import players
from app.services.tenants import ensure_tenant
from app.settings import Settings
from models import PlayerKind

DEMO_PLAYERS = [
    ("alice", "Alice", "prepaid", "north", PlayerKind.CUSTOMER),
    ("bob", "Bob", "postpaid", "north", PlayerKind.CUSTOMER),
    ("carol", "Carol", "prepaid", "south", PlayerKind.CUSTOMER),
    ("dave", "Dave", "postpaid", "south", PlayerKind.CUSTOMER),
]


async def seed_demo(settings: Settings) -> list[str]:
    rt = Runtime(settings=settings)
    await rt.hub.connect()
    try:
        tenant = await ensure_tenant()
        for player_id, name, segment, team, kind in DEMO_PLAYERS:
            await players.upsert_player(
                rt,
                tenant,
                player_id,
                {"display_name": name, "segment": segment, "team_id": team, "kind": kind},
            )
    finally:
        await rt.hub.disconnect()
    return [f"tenant {tenant.slug} ({tenant.preset}) with {len(DEMO_PLAYERS)} demo players"]
