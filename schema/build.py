"""Assembles the schema from the per-domain Query/Mutation/Subscription classes."""

from __future__ import annotations

import logging
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Iterator, Sequence
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLResolveInfoHelpers,
    GraphQLSchema,
    ObjectFieldNode,
    StringValueNode,
    Visitor,
    visit,
)
from strawberry.extensions import AddValidationRules, MaskErrors, ParserCache, SchemaExtension
from strawberry.extensions.query_depth_limiter import create_validator
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext, validate_document
from strawberry.tools import merge_types

from app.errors import UserError, shown_to_clients
from app.flat_render import Fallback, object_plan
from schema.nul_guard import nul_problem

# Input fields whose values are secrets: stored, never returned, never logged
# (a data source's credentials).
SECRET_FIELDS = frozenset({"connectionConfig"})
REDACTED = "[redacted]"


def _mask(error: GraphQLError) -> bool:
    """Hide unexpected errors' internals; keep auth, validation and input errors."""
    return not shown_to_clients(error)


DEPTH_LIMIT = create_validator(max_depth=12, should_ignore=None)

VALIDATED_MAX = 512
# (schema id, document id, rules) -> (schema, document, errors); least recently used first.
_validated: OrderedDict[tuple[int, int, tuple[type, ...]], tuple[Any, Any, list[GraphQLError]]]
_validated = OrderedDict()
validation_counts = {"hits": 0, "misses": 0}


class ValidationByDocument(SchemaExtension):
    """Strawberry's ValidationCache, keyed on the parsed document's identity.

    ValidationCache memoises `validate_document(schema, document, rules)` with
    functools.lru_cache, so every request hashes its whole document, and graphql-core's
    syntax nodes hash field by field down the tree: at 50 clients recording events that
    was 2.1% of the worker's CPU, more than anything else our extensions do. ParserCache
    hands every request with the same text the same document object, so its identity
    is key enough. Each entry holds its schema and document, so neither id can be
    reused by another object while the entry is cached; a document parsed again (after
    ParserCache evicted it) is a new object, validated again.

    A valid request is then checked for NUL characters (schema.nul_guard), here rather
    than in an extension of its own: each extension costs every request ~5 µs."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        schema, document = context.schema._schema, context.graphql_document
        rules = tuple(context.validation_rules)
        key = (id(schema), id(document), rules)
        found = _validated.get(key)
        if found is not None and found[0] is schema and found[1] is document:
            _validated.move_to_end(key)
            errors = found[2]
            validation_counts["hits"] += 1
        else:
            assert document is not None  # parsed before validation
            errors = validate_document(schema, document, rules)
            validation_counts["misses"] += 1
            _validated[key] = (schema, document, errors)
            if len(_validated) > VALIDATED_MAX:
                _validated.popitem(last=False)
        if not errors and document is not None:  # then text PostgreSQL cannot store
            problem = nul_problem(document, context.variables)
            if problem is not None:
                message = f"{problem} holds a NUL character (U+0000), which no text takes"
                errors = [GraphQLError(message)]
        context.pre_execution_errors = errors
        yield


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

    def complete_object_value(
        self,
        return_type: GraphQLObjectType,
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        """An object whose selection is plain (app.flat_render: attributes, aliases,
        `__typename`, plain objects and lists below) completed in one call: a page of
        leaderboard entries was ~14% of a Redis-served read's CPU when completed field
        by field. Anything else, or a value the plan refuses (`Fallback`: a null in a
        non-null field, an object of another type, a leaf its scalar refuses), is
        completed by graphql-core, errors and all. So is every object while an extension
        with a `resolve` hook (graphql-core middleware) is installed: it must see each
        field."""
        manager = self.middleware_manager  # extensions with a `resolve` hook see every field
        if len(field_details_list) == 1 and (manager is None or not manager.middlewares):
            details = field_details_list[0]
            if details.defer_usage is None and details.fragment_variable_values is None:
                plan = _flat_plan(self.schema, return_type, details.node)
                if plan is not None:
                    try:
                        return plan(result)
                    except Fallback:
                        pass
        return super().complete_object_value(
            return_type, field_details_list, info, path, result, position_context
        )


FLAT_PLANS_MAX = 2048
# (schema id, field node id, type name) -> (schema, node, plan or None), least recently
# used first. Each entry holds its schema and node, so neither id can be reused while it
# is cached: ParserCache hands every request with the same text the same nodes.
_flat_plans: OrderedDict[tuple[int, int, str], tuple[Any, Any, Any]] = OrderedDict()


def _flat_plan(schema: GraphQLSchema, return_type: GraphQLObjectType, node: FieldNode) -> Any:
    if node.selection_set is None:
        return None
    key = (id(schema), id(node), return_type.name)
    found = _flat_plans.get(key)
    if found is not None and found[0] is schema and found[1] is node:
        _flat_plans.move_to_end(key)
        return found[2]
    names = schema._strawberry_schema.config.name_converter.get_graphql_name  # type: ignore[attr-defined]
    plan = object_plan(return_type, node.selection_set, names)
    _flat_plans[key] = (schema, node, plan)
    if len(_flat_plans) > FLAT_PLANS_MAX:
        _flat_plans.popitem(last=False)
    return plan


def _alive(executor: weakref.ref[ExecutionContext]) -> ExecutionContext:
    found = executor()
    if found is None:  # a resolver kept `info` beyond its operation
        raise RuntimeError("the GraphQL operation these helpers belong to has finished")
    return found


class _SecretStrings(Visitor):
    """The string literals inside SECRET_FIELDS of a document."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.depth = 0

    def enter_object_field(self, node: ObjectFieldNode, *_: Any) -> None:
        self.depth += node.name.value in SECRET_FIELDS

    def leave_object_field(self, node: ObjectFieldNode, *_: Any) -> None:
        self.depth -= node.name.value in SECRET_FIELDS

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        if self.depth:
            self.found.append(node.value)


def _leaves(value: Any, inside: bool, out: list[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _leaves(item, inside or key in SECRET_FIELDS, out)
    elif isinstance(value, list):
        for item in value:
            _leaves(item, inside, out)
    elif inside and isinstance(value, str | int | float) and not isinstance(value, bool):
        out.append(str(value))


def secrets_of(variables: dict[str, Any] | None, document: DocumentNode | None) -> list[str]:
    """The texts a request gave inside SECRET_FIELDS, longest first (so that a secret
    containing another is replaced whole)."""
    found: list[str] = []
    _leaves(variables or {}, False, found)
    if document is not None:
        visitor = _SecretStrings()
        visit(document, visitor)
        found += visitor.found
    # Under three characters a value would also match unrelated text of a message.
    return sorted({f for f in found if len(f) >= 3}, key=len, reverse=True)


class QuestlineSchema(strawberry.Schema):
    """Errors are logged and answered without the secrets a request carried: a
    malformed input's error quotes the value it was given (graphql-core's "found: {…}"
    and "got invalid value {…}"), and a logged error quotes the request's source line."""

    log = logging.getLogger("strawberry.execution")

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        secrets = (
            secrets_of(execution_context.variables, execution_context.graphql_document)
            if execution_context is not None
            else []
        )
        for error in errors:
            original = error.original_error
            for secret in secrets:
                for quoting in (error, original):
                    if isinstance(quoting, GraphQLError) and secret in quoting.message:
                        quoting.message = quoting.message.replace(secret, REDACTED)
            # The message, path and locations: not str(error), which prints the source.
            # The traceback only of an unexpected error (an input error's says nothing).
            where = ", ".join(f"{loc.line}:{loc.column}" for loc in error.locations or ())
            self.log.error(
                "%s (path %s, at %s)",
                error.message,
                error.path,
                where or "-",
                exc_info=None if isinstance(original, (GraphQLError, UserError)) else original,
            )


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
        ValidationByDocument,
        # The depth rule class is made once: validation is cached per rule classes,
        # and QueryDepthLimiter would make a new class per request (never a cache hit).
        lambda: AddValidationRules([DEPTH_LIMIT]),
    ]
    if mask_errors:
        extensions.append(lambda: MaskErrors(should_mask_error=_mask))
    return QuestlineSchema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        extensions=extensions,
        execution_context_class=ExecutionContext,
    )
