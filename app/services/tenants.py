"""Tenants: creation from a preset, lookup."""

from __future__ import annotations

import secrets

from tortoise.transactions import in_transaction

from app import presets
from app.errors import ErrorCode, UserError
from app.services.common import check_slug, check_timezone
from models import Tenant

DEFAULT_TENANT = "default"
DEFAULT_PRESET = "telco"


async def create_tenant(
    slug: str, *, preset: str, name: str | None = None, timezone: str | None = None
) -> Tenant:
    check_slug(slug)
    try:
        config = presets.load(preset)
    except KeyError:
        raise UserError(
            ErrorCode.INVALID,
            f"unknown preset {preset!r}; choose one of {', '.join(presets.available())}",
            "preset",
        ) from None
    tz = check_timezone(timezone or config.get("timezone", "UTC"))
    if await Tenant.filter(slug=slug).exists():
        raise UserError(ErrorCode.CONFLICT, f"tenant {slug!r} exists already", "slug")
    from app.services.rules import rules_for
    from app.services.sources import create_preset_sources

    async with in_transaction():
        tenant = await Tenant.create(
            slug=slug,
            name=name or config.get("name", slug),
            preset=preset,
            config=config,
            timezone=tz,
            signing_secret=secrets.token_urlsafe(32),
        )
        rules_for(tenant)  # a preset whose rules do not parse creates nothing
        await create_preset_sources(tenant)
    return tenant


async def get_tenant(slug: str) -> Tenant:
    tenant = await Tenant.get_or_none(slug=slug)
    if tenant is None:
        raise UserError(ErrorCode.NOT_FOUND, f"no tenant {slug!r}", "tenant")
    return tenant


async def ensure_tenant(slug: str = DEFAULT_TENANT, preset: str = DEFAULT_PRESET) -> Tenant:
    tenant = await Tenant.get_or_none(slug=slug)
    return tenant or await create_tenant(slug, preset=preset, name="Default tenant")
