"""`questline expire`, run as an operator runs it (a subprocess; the loop keeps running)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.services import rewards
from app.services.tenants import create_tenant
from models import Redemption
from tests.service.rewards_helpers import fund, item
from tests.service.test_cli import questline


async def test_expire_marks_expired_codes_once_and_names_a_missing_tenant(app, rt, settings):
    tenant = await create_tenant("exp", preset="callcenter")
    await fund(rt, tenant, "p", 100)
    voucher = await item(tenant, 10, expiry_days=1)
    forever = await item(tenant, 10)
    old = datetime.now(UTC) - timedelta(days=3)
    stale = (await rewards.redeem(rt, tenant, "p", voucher.id, now=old)).redemption
    kept = (await rewards.redeem(rt, tenant, "p", voucher.id)).redemption
    timeless = (await rewards.redeem(rt, tenant, "p", forever.id, now=old)).redemption

    first = await questline(settings, "expire")
    assert first.returncode == 0, first.stderr
    assert "expired 1 redemption codes" in first.stderr
    second = await questline(settings, "expire", "--tenant", "exp")
    assert second.returncode == 0 and "expired 0 redemption codes of tenant exp" in second.stderr
    statuses = dict(await Redemption.all().values_list("id", "status"))
    assert statuses == {stale.id: "EXPIRED", kept.id: "FULFILLED", timeless.id: "FULFILLED"}
    missing = await questline(settings, "expire", "--tenant", "nope")
    assert missing.returncode == 1 and "no tenant 'nope'" in missing.stderr
