"""The framework ceiling for the ingest benchmark: Strawberry on Starlette doing nothing.

`noop(input: RecordEventInput!)` takes the same input and returns the same payload shape
as Questline's `recordEvent`, and `noopBatch(input: [RecordEventInput!]!)` those of
`recordEvents` (one outcome per input), with the same ParserCache/ValidationCache
extensions, but touch no database. Served exactly like the app:

    python -m uvicorn --app-dir bench baseline_app:create_app --factory --port 8001
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.scalars import JSON


@strawberry.input
class RecordEventInput:
    player_id: strawberry.ID
    event_type: str
    category: str | None = None
    value: float = 1.0
    occurred_at: datetime | None = None
    source: str = "api"
    metadata: JSON | None = None
    idempotency_key: str | None = None


@strawberry.type
class Wallet:
    balance: int


@strawberry.type
class Outcome:
    points_awarded: int
    wallet: Wallet


@strawberry.type
class UserError:
    code: str
    message: str
    field: str | None = None


@strawberry.type
class NoopPayload:
    outcome: Outcome | None
    errors: list[UserError]


@strawberry.type
class NoopBatchPayload:
    outcomes: list[Outcome]
    errors: list[UserError]


@strawberry.type
class Query:
    @strawberry.field
    def ping(self) -> str:
        return "pong"


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def noop(self, input: RecordEventInput) -> NoopPayload:
        return NoopPayload(outcome=Outcome(points_awarded=0, wallet=Wallet(balance=0)), errors=[])

    @strawberry.mutation
    async def noop_batch(self, input: list[RecordEventInput]) -> NoopBatchPayload:
        wallet = Wallet(balance=0)
        return NoopBatchPayload(
            outcomes=[Outcome(points_awarded=0, wallet=wallet) for _ in input], errors=[]
        )


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        extensions=[
            lambda: ParserCache(maxsize=512),
            lambda: ValidationCache(maxsize=512),
        ],
    )


def create_app() -> Starlette:
    graphql = GraphQL(build_schema(), graphql_ide=None)

    async def healthz(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/graphql", graphql, methods=["GET", "POST"]),
        ]
    )
