"""The rewards shop's items: created with their code pools, listed, looked up, and their
terms as the engine (app.engine.rewards) reads them."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tortoise.transactions import in_transaction

from app.engine import rewards as rules
from app.errors import ErrorCode, UserError
from app.services.common import MAX_INT_ID, id_number
from app.services.ledger import parse_amount
from models import RewardCategory, RewardCode, RewardItem, Tenant

MAX_LIST = 500  # items per page
MAX_CODES = 10_000
MAX_DETAILS_BYTES = 16 * 1024
_PREFIX = re.compile(r"^[A-Z0-9]{1,16}$")


def _when(value: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def create_item(
    tenant: Tenant,
    *,
    name: str,
    category: RewardCategory | str,
    points_cost: float | Decimal,
    description: str | None = None,
    stock: int | None = None,
    featured: bool = False,
    requires_approval: bool = False,
    per_player_limit: int | None = None,
    available_from: datetime | None = None,
    available_until: datetime | None = None,
    min_level: int = 1,
    expiry_days: int | None = None,
    code_prefix: str | None = None,
    codes: Sequence[str] | None = None,
    details: dict[str, Any] | None = None,
) -> RewardItem:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise UserError(ErrorCode.INVALID, "a reward needs a name of 1-200 characters", "name")
    cost = parse_amount(points_cost, "pointsCost")
    if cost < 0:
        raise UserError(ErrorCode.INVALID, "pointsCost is 0 or more", "pointsCost")
    if stock is not None and stock < 0:
        raise UserError(ErrorCode.INVALID, "stock is 0 or more (null: unlimited)", "stock")
    if per_player_limit is not None and per_player_limit < 1:
        raise UserError(ErrorCode.INVALID, "perPlayerLimit is 1 or more", "perPlayerLimit")
    start, end = _when(available_from), _when(available_until)
    if start and end and start >= end:
        raise UserError(
            ErrorCode.INVALID, "availableFrom is before availableUntil", "availableUntil"
        )
    if min_level < 1:
        raise UserError(ErrorCode.INVALID, "minLevel is 1 or more", "minLevel")
    if expiry_days is not None and not 1 <= expiry_days <= 3650:
        raise UserError(ErrorCode.INVALID, "expiryDays is between 1 and 3650", "expiryDays")
    prefix = code_prefix if code_prefix is not None else "REWARD"
    if not _PREFIX.match(prefix):
        raise UserError(
            ErrorCode.INVALID, "codePrefix is 1-16 capital letters or digits", "codePrefix"
        )
    details = details if details is not None else {}
    if not isinstance(details, dict) or len(json.dumps(details)) > MAX_DETAILS_BYTES:
        raise UserError(ErrorCode.INVALID, "details is a JSON object up to 16 KB", "details")
    pool = _check_codes(codes) if codes is not None else None
    if pool is not None:
        if stock is None:
            stock = len(pool)
        elif stock > len(pool):
            raise UserError(
                ErrorCode.INVALID, f"stock {stock} exceeds the {len(pool)} codes given", "stock"
            )
    async with in_transaction() as conn:
        item = await RewardItem.create(
            tenant=tenant,
            name=name,
            description=description,
            category=RewardCategory(category),
            points_cost=cost,
            stock=stock,
            featured=featured,
            requires_approval=requires_approval,
            per_player_limit=per_player_limit,
            available_from=start,
            available_until=end,
            min_level=min_level,
            code_prefix=prefix,
            uses_code_pool=pool is not None,
            expiry_days=expiry_days,
            details=details,
            using_db=conn,
        )
        if pool:
            await RewardCode.bulk_create(
                [RewardCode(reward_id=item.id, code=code) for code in pool], using_db=conn
            )
    return item


def _check_codes(codes: Sequence[str]) -> list[str]:
    cleaned = [c.strip() for c in codes]
    if not cleaned or len(cleaned) > MAX_CODES:
        raise UserError(ErrorCode.INVALID, f"give 1-{MAX_CODES} codes", "codes")
    if any(not 1 <= len(c) <= 128 for c in cleaned):
        raise UserError(ErrorCode.INVALID, "a code is 1-128 characters", "codes")
    if len(set(cleaned)) != len(cleaned):
        raise UserError(ErrorCode.INVALID, "the codes repeat", "codes")
    return cleaned


async def list_items(
    tenant: Tenant,
    category: RewardCategory | None = None,
    featured_only: bool = False,
    first: int = MAX_LIST,
    offset: int = 0,
) -> list[RewardItem]:
    """Featured first, then by cost; a page of at most 500."""
    if not 0 <= first <= MAX_LIST or offset < 0:
        raise UserError(
            ErrorCode.INVALID, f"first is between 0 and {MAX_LIST}; offset is 0 or more", "first"
        )
    query = RewardItem.filter(tenant_id=tenant.id, active=True)
    if category is not None:
        query = query.filter(category=category)
    if featured_only:
        query = query.filter(featured=True)
    return await query.order_by("-featured", "points_cost", "id").offset(offset).limit(first)


async def items_by_ids(tenant_id: int, ids: Sequence[int]) -> dict[int, RewardItem]:
    return {r.id: r for r in await RewardItem.filter(tenant_id=tenant_id, id__in=list(ids))}


async def require_item(tenant: Tenant, reward_id: str | int, field: str = "rewardId") -> RewardItem:
    item = None
    number = id_number(reward_id, MAX_INT_ID)
    if number is not None:
        item = await RewardItem.get_or_none(id=number, tenant_id=tenant.id)
    if item is None:
        raise UserError(ErrorCode.NOT_FOUND, f"no reward {reward_id!r}", field)
    return item


def terms(item: RewardItem, *, with_stock: bool = True) -> rules.ItemTerms:
    return rules.ItemTerms(
        points_cost=item.points_cost,
        stock=item.stock if with_stock else None,
        per_player_limit=item.per_player_limit,
        available_from=item.available_from,
        available_until=item.available_until,
        min_level=item.min_level,
        uses_code_pool=item.uses_code_pool,
        active=item.active,
    )
