"""Demo data for a fresh install: tenant `default`, a few players, a week of their
telco behaviour and a small rewards shop; safe to run twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.runtime import opened_runtime
from app.services import ingest, players, reward_items
from app.services.tenants import ensure_tenant
from app.settings import Settings
from models import PlayerKind, RewardItem

DEMO_PLAYERS = [
    ("alice", "Alice", "prepaid", "north", PlayerKind.CUSTOMER),
    ("bob", "Bob", "postpaid", "north", PlayerKind.CUSTOMER),
    ("carol", "Carol", "prepaid", "south", PlayerKind.CUSTOMER),
    ("dave", "Dave", "postpaid", "south", PlayerKind.CUSTOMER),
]
ACTIVE_DAYS = {"alice": 7, "bob": 3, "carol": 5, "dave": 1}
# The telco shop: campaign offers and partner rewards (name, category, cost, options).
DEMO_REWARDS = [
    ("1 GB bonus data", "OFFER", 50, {"featured": True, "expiry_days": 30}),
    ("10% off the next bill", "DISCOUNT", 120, {"per_player_limit": 1}),
    ("A month of music streaming", "DIGITAL", 200, {"stock": 100, "expiry_days": 90}),
    ("Stadium tickets for two", "EXPERIENCE", 1000, {"stock": 5, "requires_approval": True}),
]


async def seed_demo(settings: Settings) -> list[str]:
    # The server's kind of Runtime: with REDIS_URL, the events reach the Redis boards.
    async with opened_runtime(settings) as rt:
        tenant = await ensure_tenant()
        for player_id, name, segment, team, kind in DEMO_PLAYERS:
            await players.upsert_player(
                rt,
                tenant,
                player_id,
                {"display_name": name, "segment": segment, "team_id": team, "kind": kind},
            )
        results = await ingest.record_events(rt, tenant, demo_events(datetime.now(UTC)))
        have = set(await RewardItem.filter(tenant_id=tenant.id).values_list("name", flat=True))
        for name, category, cost, options in DEMO_REWARDS:
            if name not in have:
                await reward_items.create_item(
                    tenant, name=name, category=category, points_cost=cost, **options
                )
    new = sum(1 for r in results if isinstance(r, ingest.Outcome) and not r.duplicate)
    refused = [r for r in results if not isinstance(r, ingest.Outcome)]
    lines = [
        f"tenant {tenant.slug} ({tenant.preset}) with {len(DEMO_PLAYERS)} demo players",
        f"{new} demo events recorded ({len(results) - new - len(refused)} were there already)",
        f"{len(DEMO_REWARDS)} demo rewards in the shop",
    ]
    if refused:
        lines.append(f"{len(refused)} demo events refused: {refused[0].message}")
    return lines


def demo_events(now: datetime) -> list[ingest.EventInput]:
    """Logins and data use on consecutive days at 00:01 and 00:02 UTC: the same date
    always gives the same events, so re-seeding is a no-op, and today's are at most two
    minutes ahead of now (within the accepted clock skew)."""
    today = now.replace(hour=0, minute=1, second=0, microsecond=0)
    events = []
    for player_id, days in ACTIVE_DAYS.items():
        for n in range(days - 1, -1, -1):
            day = today - timedelta(days=n)
            stamp = day.date().isoformat()
            events.append(
                ingest.EventInput(
                    player_id,
                    "APP_LOGIN",
                    occurred_at=day,
                    idempotency_key=f"demo:{player_id}:{stamp}:login",
                )
            )
            events.append(
                ingest.EventInput(
                    player_id,
                    "DATA_USAGE",
                    value=150 * (n + 1),
                    occurred_at=day + timedelta(minutes=1),
                    idempotency_key=f"demo:{player_id}:{stamp}:data",
                )
            )
        events.append(
            ingest.EventInput(
                player_id,
                "RECHARGE",
                value=10,
                occurred_at=today - timedelta(days=days - 1),
                idempotency_key=f"demo:{player_id}:recharge",
            )
        )
    return events
