"""The baseline of the fan-out benchmark: a minimal Strawberry subscription app.

No Questline logic, no database, no Redis: `publish(playerId)` (an HTTP mutation)
puts one message into an in-process asyncio.Queue per subscriber of that player, and
`pointsChanged(playerId)` yields it; Strawberry executes the selection set for every
subscriber, as any Strawberry subscription does. The types answer the same client
documents as Questline (bench/wsload.py): `pointsChanged { playerId amount wallet
{ balance earnedToday } transaction { id amount createdAt } }` and
`leaderboardChanged(period, first) { entries { rank points player { id } } }` (a fixed
board, sent again on every publish). Served exactly like the app:

    python -m uvicorn --app-dir bench fanout_baseline_app:create_app --factory --port 8001
"""

from __future__ import annotations

import asyncio
import enum
import itertools
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache

SUBSCRIBERS: dict[str, set[asyncio.Queue]] = {}
BOARDS: set[asyncio.Queue] = set()
IDS = itertools.count(1)


@strawberry.enum
class LeaderboardPeriod(enum.Enum):
    DAILY = "DAILY"
    ALL_TIME = "ALL_TIME"


@strawberry.type
class Wallet:
    balance: float
    earned_today: float


@strawberry.type
class PointTransaction:
    id: strawberry.ID
    amount: float
    created_at: datetime


@strawberry.type
class PointsChanged:
    player_id: strawberry.ID
    amount: float
    wallet: Wallet
    transaction: PointTransaction


@strawberry.type
class Player:
    id: strawberry.ID


@strawberry.type
class LeaderboardEntry:
    rank: int
    points: float
    player: Player


@strawberry.type
class Leaderboard:
    entries: list[LeaderboardEntry]


BOARD = Leaderboard(
    entries=[
        LeaderboardEntry(rank=n, points=1000.0 - n, player=Player(id=strawberry.ID(f"p{n}")))
        for n in range(1, 11)
    ]
)


@strawberry.type
class PublishPayload:
    receivers: int


@strawberry.type
class Query:
    @strawberry.field
    def ping(self) -> str:
        return "pong"


@strawberry.type
class Mutation:
    @strawberry.mutation
    def publish(self, player_id: strawberry.ID) -> PublishPayload:
        now = datetime.now(UTC).isoformat()
        message = {
            "playerId": player_id,
            "amount": 1.0,
            "wallet": {"balance": 1.0, "earnedToday": 1.0},
            "transaction": {"id": str(next(IDS)), "amount": 1.0, "createdAt": now},
        }
        queues = SUBSCRIBERS.get(player_id, set())
        for queue in queues:
            queue.put_nowait(message)
        for queue in BOARDS:
            if queue.empty():  # one-slot: a change already waits
                queue.put_nowait(True)
        return PublishPayload(receivers=len(queues) + len(BOARDS))


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def points_changed(self, player_id: strawberry.ID) -> AsyncGenerator[PointsChanged, None]:
        queue: asyncio.Queue = asyncio.Queue()
        SUBSCRIBERS.setdefault(player_id, set()).add(queue)
        try:
            while True:
                m = await queue.get()
                yield PointsChanged(
                    player_id=strawberry.ID(m["playerId"]),
                    amount=m["amount"],
                    wallet=Wallet(
                        balance=m["wallet"]["balance"], earned_today=m["wallet"]["earnedToday"]
                    ),
                    transaction=PointTransaction(
                        id=strawberry.ID(m["transaction"]["id"]),
                        amount=m["transaction"]["amount"],
                        created_at=datetime.fromisoformat(m["transaction"]["createdAt"]),
                    ),
                )
        finally:
            queues = SUBSCRIBERS.get(player_id, set())
            queues.discard(queue)
            if not queues:
                SUBSCRIBERS.pop(player_id, None)

    @strawberry.subscription
    async def leaderboard_changed(
        self, period: LeaderboardPeriod = LeaderboardPeriod.ALL_TIME, first: int = 10
    ) -> AsyncGenerator[Leaderboard, None]:
        queue: asyncio.Queue = asyncio.Queue(maxsize=1)
        BOARDS.add(queue)
        try:
            yield BOARD
            while True:
                await queue.get()
                yield BOARD
        finally:
            BOARDS.discard(queue)


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            lambda: ParserCache(maxsize=512),
            lambda: ValidationCache(maxsize=512),
        ],
    )


def create_app() -> Starlette:
    graphql = GraphQL(build_schema(), graphql_ide=None)

    async def healthz(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> JSONResponse:
        count = sum(len(q) for q in SUBSCRIBERS.values()) + len(BOARDS)
        return JSONResponse({"ready": True, "subscriptions": count})

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
        ]
    )
