"""A tenant's parsed point rules, cached by (tenant, config version)."""

from __future__ import annotations

from pydantic import ValidationError

from app.engine.rules import PointRules, parse_rules
from app.errors import ErrorCode, UserError
from models import Tenant

_cache: dict[tuple[int, str, int], PointRules] = {}


def rules_for(tenant: Tenant) -> PointRules:
    # The signing secret is unique per tenant ever created: a recreated tenant that
    # reuses an id never sees another's rules.
    key = (tenant.id, tenant.signing_secret, tenant.config_version)
    rules = _cache.get(key)
    if rules is None:
        try:
            rules = parse_rules(tenant.config)
        except ValidationError as exc:
            raise UserError(
                ErrorCode.INVALID, f"tenant {tenant.slug} has invalid point rules: {exc}"
            ) from None
        if len(_cache) > 1024:
            _cache.clear()
        _cache[key] = rules
    return rules
