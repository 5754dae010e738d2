"""A subscription's messages rendered without executing its document each time.

Executing a selection set with graphql-core costs ~45 µs for a message of five scalars,
and a per-subscriber payload (rankChanged: each follower its own rank) is executed once
per follower per change: thousands a second. Most live documents select plain fields
of the event object, with aliases perhaps, and nothing else. For such a document
`compile_render` builds, once, a function that reads the same attributes that
Strawberry's default resolvers read (or calls the type's synchronous resolvers that take
nothing but `self`), serializes leaves with the same scalar and enum `serialize`, and
encodes the same JSON as `{"data": ...}` of the execution.

Anything else in the document makes `compile_render` return None, and the caller
executes: fragments, directives, arguments below the root field, a field whose resolver
is async or takes arguments or `info`, permission classes or extensions, interfaces
and unions, the same response key twice, introspection fields other than `__typename`.
For a single message, a value the document cannot render as the execution would (a
null in a non-null field, an object of another type, a leaf its scalar refuses, a
resolver's error or awaitable) raises `Fallback`, and the execution then gives that
message its usual errors. A resolver may so run twice: the plans take only those that
read their object.

Queries and mutations use the same plans per object (`object_plan`): the schema's
execution context completes an object whose selection is plain in one call instead of
one resolution per field (schema.build.ExecutionContext).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLObjectType,
    GraphQLSchema,
    OperationType,
    SelectionSetNode,
    Undefined,
    get_nullable_type,
    get_operation_ast,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
)

DEFINITION = "strawberry-definition"  # Strawberry's back reference on a GraphQL type

_Plan = Callable[[Any], Any]


class Fallback(Exception):
    """This value needs the full execution (its errors, its nulls)."""


def compile_render(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    graphql_name: Callable[[Any], str],
) -> Callable[[Any], str] | None:
    """A function from the subscription field's value (the event object) to the JSON
    text of `{"data": ...}` that executing `document` gives, or None when the document
    is not of the plain kind (the module says which). `graphql_name` maps a Strawberry
    field to its GraphQL name (the schema's name converter)."""
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation != OperationType.SUBSCRIPTION:
        return None
    if operation.directives or schema.subscription_type is None:
        return None
    (root, *others) = operation.selection_set.selections
    if others or not isinstance(root, FieldNode) or root.directives:
        return None
    field = schema.subscription_type.fields.get(root.name.value)
    if field is None:
        return None
    plan = _plan(field.type, root.selection_set, graphql_name)
    if plan is None:
        return None
    key = root.alias.value if root.alias else root.name.value

    def render(value: Any) -> str:
        return json.dumps({"data": {key: plan(value)}})

    return render


def object_plan(
    graphql_type: GraphQLObjectType,
    selection_set: SelectionSetNode,
    graphql_name: Callable[[Any], str],
) -> Callable[[Any], dict[str, Any]] | None:
    """For an executor (schema.build.ExecutionContext): a function from a value of
    `graphql_type` to the dict that executing `selection_set` on it gives, or None when
    the selection is not of the plain kind. It raises `Fallback` where `compile_render`'s
    renderer does."""
    return _object(graphql_type, selection_set, False, graphql_name)


def _plan(
    graphql_type: Any, selection_set: SelectionSetNode | None, graphql_name: Callable[[Any], str]
) -> _Plan | None:
    nullable = not is_non_null_type(graphql_type)
    inner = get_nullable_type(graphql_type)
    if is_leaf_type(inner):
        return None if selection_set else _leaf(inner.serialize, nullable)
    if is_list_type(inner):
        item = _plan(inner.of_type, selection_set, graphql_name)
        return None if item is None else _list(item, nullable)
    if is_object_type(inner) and selection_set is not None:
        return _object(inner, selection_set, nullable, graphql_name)
    return None


def _leaf(serialize: Callable[[Any], Any], nullable: bool) -> _Plan:
    def leaf(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise Fallback
        try:
            out = serialize(value)
        except Exception as exc:  # the execution reports it as the field's error
            raise Fallback from exc
        if out is None or out is Undefined:
            raise Fallback
        return out

    return leaf


def _list(item: _Plan, nullable: bool) -> _Plan:
    def items(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise Fallback
        if isinstance(value, str | bytes | dict) or not hasattr(value, "__iter__"):
            raise Fallback  # graphql-core refuses these as lists
        return [item(v) for v in value]

    return items


def _object(
    graphql_type: GraphQLObjectType,
    selection_set: SelectionSetNode,
    nullable: bool,
    graphql_name: Callable[[Any], str],
) -> _Plan | None:
    definition = (graphql_type.extensions or {}).get(DEFINITION)
    if definition is None or graphql_type.is_type_of is not None:
        return None
    by_name = {graphql_name(f): f for f in definition.fields}
    parts: list[tuple[str, _Plan, _Plan]] = []  # response key, getter, plan
    for node in selection_set.selections:
        if not isinstance(node, FieldNode) or node.directives or node.arguments:
            return None
        name = node.name.value
        key = node.alias.value if node.alias else name
        if name == "__typename":
            parts.append((key, _constant(graphql_type.name), _same))
            continue
        field, graphql_field = by_name.get(name), graphql_type.fields.get(name)
        getter = None if field is None or graphql_field is None else _getter(field)
        if getter is None:
            return None
        plan = _plan(graphql_field.type, node.selection_set, graphql_name)
        if plan is None:
            return None
        parts.append((key, getter, plan))
    if len({key for key, _, _ in parts}) != len(parts):
        return None  # the same key twice: the execution merges the fields
    origin = definition.origin

    def obj(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise Fallback
        if not isinstance(value, origin):
            raise Fallback
        try:
            return {key: plan(get(value)) for key, get, plan in parts}
        except Fallback:
            raise
        except Exception as exc:  # a resolver's error: the execution reports it
            raise Fallback from exc

    return obj


def _getter(field: Any) -> _Plan | None:
    """How Strawberry resolves `field` on a value, when it takes nothing but the value:
    its default resolver (the attribute), or a synchronous method of the type that takes
    only `self` (no arguments, no info). None for anything else: an async resolver,
    permission classes, field extensions, a subscription."""
    if field.permission_classes or field.extensions or getattr(field, "is_subscription", False):
        return None
    resolver = field.base_resolver
    if resolver is None:
        return attrgetter(field.python_name)
    if resolver.is_async or resolver.arguments or resolver.self_parameter is None:
        return None
    function = resolver.wrapped_func
    if not inspect.isfunction(function) or (
        inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function)
    ):
        return None
    if len(inspect.signature(function).parameters) != 1:
        return None  # info, root, parent or anything else beside `self`

    def call(value: Any) -> Any:
        out = function(value)
        if inspect.isawaitable(out):  # the execution awaits it
            if inspect.iscoroutine(out):
                out.close()
            raise Fallback
        return out

    return call


def _same(value: Any) -> Any:
    return value


def _constant(value: str) -> _Plan:
    return lambda _: value


__all__ = ["Fallback", "compile_render", "object_plan"]
