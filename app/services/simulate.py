"""Synthetic traffic for a tenant (`questline simulate`): its preset's simulation mix,
drawn by a seeded generator and recorded through `record_events` like any batch.

A run optionally backfills past days first (events spread over each day's active hours
in the tenant's timezone, in time order), then sends live events at a steady rate, one
batch per tick on a fixed schedule, until it has sent enough, its time is up or it is
told to stop (after the batch in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from decimal import Decimal
from itertools import accumulate
from typing import Any

from app import presets
from app.engine.periods import local_day
from app.engine.rules import WILDCARD, PointRules, parse_rules
from app.engine.simulation import Choice, Fixed, SimulationSpec, TrafficEntry, Uniform
from app.errors import ErrorCode, UserError
from app.runtime import Runtime
from app.services.common import check_external_id, zone
from app.services.ingest import MAX_BATCH, EventInput, Outcome, record_events
from app.services.rules import rules_for
from app.services.tenants import get_tenant
from models import Player, PlayerKind, Tenant

TICK = 0.25  # seconds between live batches
BACKFILL_BATCH = 500
MAX_PLAYERS = 100_000
MAX_BACKFILL_DAYS = 366
SOURCE = "simulate"  # the events' source: synthetic traffic is told apart from real

Progress = Callable[[str, int, int | None], None]  # phase, events sent, total (None: open)


@dataclass(frozen=True, slots=True)
class Options:
    players: int = 50
    rate: float = 20.0  # live events per second
    duration: float | None = None  # seconds of live traffic
    events: int | None = None  # live events
    backfill_days: int = 0
    seed: int | None = None
    player_prefix: str = "sim-"

    def check(self) -> None:
        """Raises UserError(INVALID) naming the option; nothing is written before this."""

        def bad(option: str, message: str) -> UserError:
            return UserError(ErrorCode.INVALID, f"--{option}: {message}", option)

        if not 1 <= self.players <= MAX_PLAYERS:
            raise bad("players", f"between 1 and {MAX_PLAYERS:,}")
        if not 0 < self.rate < float("inf"):
            raise bad("rate", "events per second must be above 0")
        if self.duration is not None and self.events is not None:
            raise bad("duration", "give --duration or --events, not both")
        if self.duration is not None and not 0 < self.duration < float("inf"):
            raise bad("duration", "seconds must be above 0")
        if self.events is not None and self.events < 0:
            raise bad("events", "must not be negative")
        if not 0 <= self.backfill_days <= MAX_BACKFILL_DAYS:
            raise bad("backfill-days", f"between 0 and {MAX_BACKFILL_DAYS}")
        try:
            check_external_id(f"{self.player_prefix}{self.players}")
        except UserError:
            raise bad("player-prefix", "player ids are 1-128 characters, no spaces first") from None

    @property
    def live_limit(self) -> int | None:
        """Live events to send; None: until stopped."""
        if self.events is not None:
            return self.events
        return int(self.rate * self.duration + 1e-9) if self.duration is not None else None


@dataclass(frozen=True, slots=True)
class Plan:
    tenant: Tenant
    options: Options
    mix: SimulationSpec
    derived: str | None  # why the mix was derived from the tenant's rules, or None
    run_id: str  # idempotency keys are sim-{run_id}-{n}
    today: date  # in the tenant's timezone: backfilled days are the days before it


@dataclass(slots=True)
class Summary:
    run_id: str
    sent: int = 0
    applied: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    points: Decimal = Decimal(0)  # rule points of the applied events
    level_up_bonus: Decimal = Decimal(0)
    level_ups: int = 0
    players: set[str] = field(default_factory=set)
    elapsed: float = 0.0
    stopped: bool = False  # told to stop before the end

    @property
    def per_second(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def add(self, inputs: Sequence[EventInput], results: Sequence[Outcome | UserError]) -> None:
        self.sent += len(inputs)
        for item, result in zip(inputs, results, strict=True):
            if isinstance(result, UserError):
                self.rejected[result.code.value] += 1
            elif result.duplicate:
                self.duplicates += 1
            else:
                self.applied += 1
                self.points += result.points
                self.players.add(item.player_id)
                if result.level_up is not None:
                    self.level_ups += 1
                    self.level_up_bonus += result.level_up.bonus


# ------------------------------------------------------------------ the mix


def mix_for(tenant: Tenant) -> tuple[SimulationSpec, str | None]:
    """The preset's mix while the tenant's rules are the preset's; otherwise one derived
    from the rules' event types (value 1, equal weights), with the reason."""
    rules = rules_for(tenant)
    spec: SimulationSpec | None = None
    try:
        spec = presets.simulation(tenant.preset)
    except KeyError:
        reason = f"preset {tenant.preset!r} is not installed"
    else:
        reason = f"preset {tenant.preset} has no simulation section"
    if spec is not None:
        preset_rules = parse_rules(presets.load(tenant.preset))
        if (rules.rules, rules.categories) == (preset_rules.rules, preset_rules.categories):
            return spec, None
        reason = f"the tenant's rules differ from preset {tenant.preset}'s"
    return derived_mix(rules), reason


def derived_mix(rules: PointRules) -> SimulationSpec:
    types = [rule.event_type for rule in rules.rules if rule.event_type != WILDCARD]
    if not types and rules.rule_for("simulated") is not None:
        types = ["simulated"]  # only a wildcard rule: any type will do
    if not types:
        raise UserError(ErrorCode.INVALID, "the tenant has no point rules: nothing to simulate")
    return SimulationSpec(events=[TrafficEntry(event_type=t) for t in types])


async def prepare(tenant_slug: str, options: Options) -> Plan:
    """Checks the options and the tenant and picks the mix; writes nothing."""
    options.check()
    tenant = await get_tenant(tenant_slug)
    mix, derived = mix_for(tenant)
    run_id = f"s{options.seed}" if options.seed is not None else secrets.token_hex(4)
    today = local_day(datetime.now(UTC), zone(tenant.timezone))
    return Plan(tenant, options, mix, derived, run_id, today)


# ------------------------------------------------------------------ the generator


def _draw(dist: Fixed | Uniform | Choice, rng: random.Random) -> Any:
    match dist:
        case Uniform(uniform=(low, high), places=places):
            number = round(rng.uniform(low, high), places)
            return int(number) if places == 0 else number
        case Choice(choice=choice, weights=weights):
            return rng.choices(choice, weights)[0]
    assert isinstance(dist, Fixed)
    return dist.fixed


class Traffic:
    """The run's events in order, from one seeded generator: the same seed and players
    give the same players, types, categories, values, metadata and order."""

    def __init__(self, mix: SimulationSpec, players: Sequence[str], rng: random.Random):
        self.mix, self.players, self.rng = mix, list(players), rng
        self.daily = [e for e in mix.events if e.once_per_day]
        self.drawn = [e for e in mix.events if not e.once_per_day]
        self.cum_weights = list(accumulate(e.weight for e in self.drawn))
        self.live_day: date | None = None
        self.live_active: list[int] = []
        self.greeted: set[int] = set()
        self.pending: deque[EventInput] = deque()

    def event(self, player: int, entry: TrafficEntry | None = None) -> EventInput:
        rng = self.rng
        entry = entry or rng.choices(self.drawn, cum_weights=self.cum_weights)[0]
        value = _draw(entry.value, rng)
        metadata = {key: _draw(dist, rng) for key, dist in entry.metadata.items()}
        return EventInput(
            self.players[player],
            entry.event_type,
            category=entry.category,
            value=Decimal(str(value)),
            source=SOURCE,
            metadata=metadata,
        )

    def active(self) -> list[int]:
        """The players active on a day (at least one)."""
        share, n = self.mix.active_share, len(self.players)
        chosen = [i for i in range(n) if self.rng.random() < share]
        return chosen or [self.rng.randrange(n)]

    def backfill_plan(self, days: int) -> list[list[tuple[int, int]]]:
        """For each day: (player, events) of its active players."""
        low, high = self.mix.events_per_day
        least = len(self.daily)
        return [
            [(i, max(self.rng.randint(low, high), least)) for i in self.active()]
            for _ in range(days)
        ]

    def backfill_day(self, day: date, plan: list[tuple[int, int]], tz: Any) -> list[EventInput]:
        """The day's events at random times within its active hours, in time order."""
        start, end = (h * 3600 for h in self.mix.active_hours)
        midnight = datetime.combine(day, clock(), tzinfo=tz)
        timed: list[tuple[float, int, EventInput]] = []
        for player, count in plan:
            seconds = sorted(self.rng.uniform(start, end) for _ in range(count))
            entries = self.daily + [None] * (count - len(self.daily))
            for at, entry in zip(seconds, entries, strict=True):
                timed.append((at, player, self.event(player, entry)))
        timed.sort(key=lambda t: (t[0], t[1]))
        for at, _, item in timed:
            # Wall-clock arithmetic in the zone, then UTC: a DST day keeps its hours.
            item.occurred_at = (midnight + timedelta(seconds=at)).astimezone(UTC)
        return [item for _, _, item in timed]

    def live(self, day: date) -> EventInput:
        """The next live event (occurredAt: when it is recorded) on `day`."""
        if day != self.live_day:
            self.live_day, self.live_active, self.greeted = day, self.active(), set()
        if not self.pending:
            player = self.rng.choice(self.live_active)
            if player not in self.greeted:
                self.greeted.add(player)
                self.pending.extend(self.event(player, entry) for entry in self.daily)
            self.pending.append(self.event(player))
        return self.pending.popleft()


# ------------------------------------------------------------------ the run


class _Run:
    def __init__(
        self, rt: Runtime, plan: Plan, progress: Progress | None, stop: asyncio.Event | None
    ):
        self.rt, self.plan, self.tenant = rt, plan, plan.tenant
        self.progress = progress or (lambda phase, done, total: None)
        self.stop = stop or asyncio.Event()
        self.tz = zone(plan.tenant.timezone)
        self.summary = Summary(plan.run_id)
        self.count = 0
        options = plan.options
        ids = [f"{options.player_prefix}{n}" for n in range(1, options.players + 1)]
        rng = random.Random(options.seed) if options.seed is not None else random.Random()
        self.traffic = Traffic(plan.mix, ids, rng)

    async def send(self, batch: list[EventInput]) -> None:
        for item in batch:
            self.count += 1
            item.idempotency_key = f"sim-{self.plan.run_id}-{self.count}"
        self.summary.add(batch, await record_events(self.rt, self.tenant, batch))

    async def sleep(self, seconds: float) -> None:
        """Sleeps, or less when told to stop."""
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def backfill(self) -> None:
        days = self.plan.options.backfill_days
        if not days:
            return
        today = self.plan.today
        plan = self.traffic.backfill_plan(days)
        total, done = sum(count for day in plan for _, count in day), 0
        self.progress("backfill", 0, total)
        buffer: list[EventInput] = []
        for back, day_plan in zip(range(days, 0, -1), plan, strict=True):
            day = today - timedelta(days=back)
            buffer.extend(self.traffic.backfill_day(day, day_plan, self.tz))
            while len(buffer) >= BACKFILL_BATCH or (back == 1 and buffer):
                if self.stop.is_set():
                    return
                batch, buffer = buffer[:BACKFILL_BATCH], buffer[BACKFILL_BATCH:]
                await self.send(batch)
                done += len(batch)
                self.progress("backfill", done, total)

    async def live(self) -> None:
        options = self.plan.options
        limit = options.live_limit
        if limit == 0 or self.stop.is_set():
            return
        self.progress("live", 0, limit)
        start = time.monotonic()
        deadline = start + options.duration if options.duration is not None else None
        tick = sent = 0
        # Tick k starts at start + k·TICK and brings the count to rate·(k+1)·TICK: a slow
        # batch delays the next tick, never the schedule, so the rate does not drift.
        while (limit is None or sent < limit) and not self.stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            due = int(options.rate * (tick + 1) * TICK + 1e-9)
            due = due if limit is None else min(due, limit)
            while sent < due and not self.stop.is_set():
                day = local_day(datetime.now(UTC), self.tz)
                batch = [self.traffic.live(day) for _ in range(min(due - sent, MAX_BATCH))]
                await self.send(batch)
                sent += len(batch)
                self.progress("live", sent, limit)
            tick += 1
            await self.sleep(start + tick * TICK - time.monotonic())

    async def ensure_players(self) -> None:
        """The run's players exist, of the mix's kind (new ones only; others are left as
        they are)."""
        kind = PlayerKind(self.plan.mix.player_kind)
        ids = self.traffic.players
        for at in range(0, len(ids), 1000):
            chunk = ids[at : at + 1000]
            have = set(
                await Player.filter(tenant_id=self.tenant.id, external_id__in=chunk).values_list(
                    "external_id", flat=True
                )
            )
            new = [
                Player(tenant_id=self.tenant.id, external_id=x, kind=kind, display_name=x)
                for x in chunk
                if x not in have
            ]
            if new:
                await Player.bulk_create(new, ignore_conflicts=True)


async def simulate(
    rt: Runtime,
    plan: Plan,
    *,
    progress: Progress | None = None,
    stop: asyncio.Event | None = None,
) -> Summary:
    """Runs the plan: players, backfill, live traffic. `stop` set: ends after the batch
    in flight."""
    run = _Run(rt, plan, progress, stop)
    started = time.monotonic()
    try:
        await run.ensure_players()
        await run.backfill()
        await run.live()
    finally:
        run.summary.elapsed = time.monotonic() - started
        run.summary.stopped = run.stop.is_set()
    return run.summary
