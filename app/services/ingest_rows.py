"""The rows the ingest statements read and write (app.services.ingest_store), and
their conversion from what each dialect returns: SQLite gives text back."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from app.services.board_cache import Packed


@dataclass(slots=True)
class WalletRow:
    player_id: int
    balance: Decimal
    lifetime_earned: Decimal
    level: int
    streak_current: int
    streak_best: int
    last_active_day: date | None
    last_event_at: datetime | None

    def state_values(self) -> list[Any]:
        """The columns a batch writes back, in WALLET_COLUMNS order after player_id."""
        return [
            self.balance,
            self.lifetime_earned,
            self.level,
            self.streak_current,
            self.streak_best,
            self.last_active_day,
            self.last_event_at,
        ]


@dataclass(slots=True)
class DayRow:
    player_id: int
    day: date
    events: int
    earned: Decimal


@dataclass(slots=True)
class Opened:
    """What a batch's first statement found (IngestStore.open_batch)."""

    hits: list[str]  # idempotency keys already stored
    players: list[Any]
    locked: bool  # every player's wallet is locked, and `wallets` holds them all
    fresh: bool  # `wallets` and `days` are current: no wait for a lock hid a change
    wallets: dict[int, WalletRow]
    days: dict[tuple[int, date], DayRow]


def _decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def to_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(slots=True)
class Written:
    """What a batch's writes return: the new ledger ids in the order of the lines, and
    its board points as written (`totals`, SQLite; `boards`, packed, PostgreSQL) or left
    pending (`pending`, PostgreSQL's large batches)."""

    ids: list[int]
    totals: list[ScoreTotal] = field(default_factory=list)
    boards: list[Packed] = field(default_factory=list)
    pending: int | None = None


@dataclass(frozen=True, slots=True)
class ScoreTotal:
    """A period score row after a write: what the Redis boards copy."""

    player_id: int
    period: str
    period_key: str
    points: Decimal
    reached_at: datetime


def wallet_rows(rows: Iterable[Any]) -> dict[int, WalletRow]:
    return {
        r["player_id"]: WalletRow(
            r["player_id"],
            _decimal(r["balance"]),
            _decimal(r["lifetime_earned"]),
            r["level"],
            r["streak_current"],
            r["streak_best"],
            to_date(r["last_active_day"]),
            _datetime(r["last_event_at"]),
        )
        for r in rows
    }


def day_rows(rows: Iterable[Any]) -> dict[tuple[int, date], DayRow]:
    out = {}
    for r in rows:
        row = DayRow(r["player_id"], to_date(r["day"]), r["events"], _decimal(r["earned"]))
        out[(row.player_id, row.day)] = row
    return out


def player_row(r: Any, pk: str = "id") -> _PlayerRow:
    return _PlayerRow(
        r[pk],
        r["external_id"],
        r["kind"],
        r["segment"],
        r["timezone"],
        json_value(r["attributes"]),
        bool(r["hidden_from_boards"]),
    )


def score_total(row: dict[str, Any]) -> ScoreTotal:
    reached = row["reached_at"]
    if isinstance(reached, str):
        reached = datetime.fromisoformat(reached)
    if reached.tzinfo is None:
        reached = reached.replace(tzinfo=UTC)
    return ScoreTotal(
        row["player_id"], row["period"], row["period_key"], Decimal(str(row["points"])), reached
    )


@dataclass(slots=True)
class _PlayerRow:
    id: int
    external_id: str
    kind: str
    segment: str | None
    timezone: str | None
    attributes: dict[str, Any]
    hidden_from_boards: bool = False


def json_value(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else (value or {})
