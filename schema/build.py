"""Assembles the schema from the per-domain Query/Mutation/Subscription classes."""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Sequence
from typing import Any

import strawberry
from graphql import GraphQLError, GraphQLResolveInfoHelpers
from strawberry.extensions import AddValidationRules, MaskErrors, ParserCache, ValidationCache
from strawberry.extensions.query_depth_limiter import create_validator
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.tools import merge_types

from app.errors import AuthError


def _mask(error: GraphQLError) -> bool:
    """Hide unexpected errors' internals; keep auth, validation and input errors."""
    original = error.original_error
    return not (original is None or isinstance(original, (AuthError, ValueError)))


DEPTH_LIMIT = create_validator(max_depth=12, should_ignore=None)


class ExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, without a reference cycle per request.

    graphql-core 3.3 gives each executor `async_helpers` made of the executor's own
    bound methods, so executor -> helpers -> method -> executor is a cycle, and with it
    everything the executor reaches (our Context, its loaders, the Starlette request and
    response, uvicorn's request cycle: about 70 objects a request) could only be freed by
    the cyclic garbage collector. At 50 clients that was ~12% of the worker's CPU, and
    its full passes (28 ms each, 1.5 a second) were the tail of request latency. Here the
    helpers hold the executor weakly, so a request's objects are freed by reference
    counting as soon as it is answered (tests/api/test_gc.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        executor = weakref.ref(self)

        def gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
            return _alive(executor).gather_async_work(values)

        def track(values: Sequence[Any]) -> None:
            _alive(executor).track_async_work(values)

        self.async_helpers = GraphQLResolveInfoHelpers(gather=gather, track=track)


def _alive(executor: weakref.ref[ExecutionContext]) -> ExecutionContext:
    found = executor()
    if found is None:  # a resolver kept `info` beyond its operation
        raise RuntimeError("the GraphQL operation these helpers belong to has finished")
    return found


def build_schema(*, mask_errors: bool = True) -> strawberry.Schema:
    from resolvers.events import EventMutation, EventSubscription
    from resolvers.leaderboards import LeaderboardQuery, LeaderboardSubscription
    from resolvers.ledger import LedgerMutation, LedgerQuery
    from resolvers.players import PlayerMutation, PlayerQuery, PlayerSubscription
    from resolvers.rewards import RewardMutation, RewardQuery
    from resolvers.wheel import WheelMutation, WheelQuery

    query = merge_types(
        "Query", (PlayerQuery, LedgerQuery, LeaderboardQuery, RewardQuery, WheelQuery)
    )
    mutation = merge_types(
        "Mutation",
        (EventMutation, LedgerMutation, PlayerMutation, RewardMutation, WheelMutation),
    )
    subscription = merge_types(
        "Subscription", (EventSubscription, LeaderboardSubscription, PlayerSubscription)
    )
    # Factories: a fresh extension per request; the parse/validation LRU caches live
    # at module level and are shared.
    extensions: list = [
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        # The depth rule class is made once: ValidationCache keys on the rule classes,
        # and QueryDepthLimiter would make a new class per request (never a cache hit).
        lambda: AddValidationRules([DEPTH_LIMIT]),
    ]
    if mask_errors:
        extensions.append(lambda: MaskErrors(should_mask_error=_mask))
    return strawberry.Schema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        extensions=extensions,
        execution_context_class=ExecutionContext,
    )
