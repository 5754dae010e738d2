"""Shared GraphQL types: errors, page info, scalars."""

from __future__ import annotations

import strawberry

from app.errors import ErrorCode as DomainErrorCode
from app.errors import UserError as DomainUserError

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
