"""Shared GraphQL types: errors, page info, scalars."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import strawberry
from strawberry.types.arguments import InputContext
from strawberry.types.base import StrawberryOptional, StrawberryType

from app.errors import ErrorCode as DomainErrorCode
from app.errors import UserError as DomainUserError

T = TypeVar("T")

ErrorCode = strawberry.enum(DomainErrorCode, name="ErrorCode")


@strawberry.type
class UserError:
    field: list[str] | None
    message: str
    code: ErrorCode

    @classmethod
    def from_domain(cls, error: DomainUserError) -> UserError:
        return cls(field=error.field, message=error.message, code=ErrorCode(error.code))


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


# ------------------------------------------------------------------ flat inputs


def _scalar(type_: Any, registry: Mapping[object, Any]) -> bool:
    while isinstance(type_, StrawberryOptional):
        type_ = type_.of_type
    return not isinstance(type_, StrawberryType) and type_ in registry


def flat_input(cls: type[T]) -> type[T]:
    """Builds instances of a Strawberry input type whose fields are all scalars straight
    from the coerced GraphQL value: graphql-core has parsed the scalars already, so the
    only work left is renaming fields. Strawberry's generic conversion re-resolves every
    field's annotation per value, which was a fifth of the server's time for a batch of
    500 events (profiled). Refuses, when first used, a type with a nested or enum field.
    """
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    plan: list[tuple[str, str]] = []

    def build(type_: type, value: Mapping[str, Any], context: InputContext) -> Any:
        if not plan:
            for f in definition.fields:
                if not _scalar(f.type, context.scalar_registry):
                    raise TypeError(f"{definition.name}.{f.python_name} is not a scalar")
            names = context.config.name_converter
            plan.extend((names.from_field(f), f.python_name) for f in definition.fields)
        return type_(**{py: value[name] for name, py in plan if name in value})

    definition.from_input = build
    return cls
