"""Assembles the schema from the per-domain Query/Mutation/Subscription classes."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.extensions import AddValidationRules, MaskErrors, ParserCache, ValidationCache
from strawberry.extensions.query_depth_limiter import create_validator
from strawberry.tools import merge_types

from app.errors import AuthError


def _mask(error: GraphQLError) -> bool:
    """Hide unexpected errors' internals; keep auth, validation and input errors."""
    original = error.original_error
    return not (original is None or isinstance(original, (AuthError, ValueError)))


DEPTH_LIMIT = create_validator(max_depth=12, should_ignore=None)


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
        query=query, mutation=mutation, subscription=subscription, extensions=extensions
    )
