"""Domain errors: expected failures with a stable code, and auth failures.

Services raise `UserError`s; resolvers turn them into the payload's `errors` list in
one place (`resolvers.common.payload_errors`). Auth failures are `AuthError`s, which
surface as top-level GraphQL errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from graphql import GraphQLError


class ErrorCode(StrEnum):
    NOT_FOUND = "NOT_FOUND"
    INVALID = "INVALID"
    INSUFFICIENT_POINTS = "INSUFFICIENT_POINTS"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    LIMIT_REACHED = "LIMIT_REACHED"
    CONFLICT = "CONFLICT"
    ALREADY_AWARDED = "ALREADY_AWARDED"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    FORBIDDEN = "FORBIDDEN"


class UserError(Exception):
    """An expected business failure; nothing was written."""

    def __init__(
        self, code: ErrorCode, message: str, field: Sequence[str] | str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        if isinstance(field, str):
            field = [field]
        self.field = list(field) if field is not None else None

    @property
    def extensions(self) -> dict[str, object]:
        """What a top-level GraphQL error made from it carries (graphql-core copies an
        original error's `extensions`): a query's bad argument, e.g. `first` above the
        page size, answers with its code and field as a mutation's payload would."""
        return {"code": self.code.value, "field": self.field}

    def at(self, *prefix: str) -> UserError:
        """The same error with its field path prefixed (e.g. a batch index)."""
        return UserError(self.code, self.message, [*prefix, *(self.field or [])])


class AuthError(GraphQLError):
    """Missing, invalid or insufficient credentials: a top-level GraphQL error."""

    def __init__(self, message: str, code: str = "UNAUTHENTICATED") -> None:
        super().__init__(message, extensions={"code": code})


class Forbidden(AuthError):
    def __init__(self, message: str = "not allowed") -> None:
        super().__init__(message, code="FORBIDDEN")


class SubscriberTooSlow(Exception):
    """The subscriber's queue overflowed; it must re-query and subscribe again."""


def shown_to_clients(error: GraphQLError) -> bool:
    """An error whose message the client gets as it is: GraphQL's own (no original),
    auth, a domain error (UserError: a query's bad argument), input (ValueError) and a
    subscription dropped for falling behind. Anything else is unexpected: masked, its
    internals kept out of the answer."""
    original = error.original_error
    return original is None or isinstance(
        original, (AuthError, UserError, ValueError, SubscriberTooSlow)
    )
