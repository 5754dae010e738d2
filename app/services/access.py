"""Who is asking: API keys, player tokens and the dev-mode fallback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from app import auth
from app.auth import Access, allows
from app.errors import AuthError, ErrorCode, Forbidden, UserError
from app.services.tenants import DEFAULT_TENANT, get_tenant
from app.settings import Settings
from models import ApiKey, Role, Tenant

# Writing last_used_at on every request would cost a write per call.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Viewer:
    tenant: Tenant
    access: Access
    player_id: str | None = None  # set for player tokens: the only player they may read
    api_key_id: int | None = None
    dev_fallback: bool = False

    def require(self, needed: Access) -> None:
        if not allows(self.access, needed):
            raise Forbidden(f"this credential ({self.access}) cannot do that: {needed} needed")

    def require_player(self, player_id: str) -> None:
        """Player tokens read only their own player; other credentials read any."""
        if self.access is Access.PLAYER and player_id != self.player_id:
            raise Forbidden("a player token reads only its own player")


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthError("Authorization must be 'Bearer <api key or player token>'")
    return value.strip()


async def authenticate(settings: Settings, credential: str | None) -> Viewer:
    if credential is None:
        if settings.production:
            raise AuthError("credentials required: send 'Authorization: Bearer <key>'")
        tenant = await Tenant.get_or_none(slug=DEFAULT_TENANT)
        if tenant is None:
            raise AuthError("dev mode: tenant 'default' does not exist; run `questline seed`")
        return Viewer(tenant=tenant, access=Access.ADMIN, dev_fallback=True)
    if credential.startswith(auth.KEY_PREFIX):
        return await _api_key_viewer(credential)
    return await _player_token_viewer(settings, credential)


async def _api_key_viewer(key: str) -> Viewer:
    prefix = auth.split_api_key(key)
    row = await ApiKey.get_or_none(prefix=prefix).select_related("tenant") if prefix else None
    if row is None or not auth.key_matches(key, row.key_hash):
        raise AuthError("invalid API key")
    if row.revoked:
        raise AuthError("this API key has been revoked")
    now = datetime.now(UTC)
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        await ApiKey.filter(id=row.id).update(last_used_at=now)
    return Viewer(tenant=row.tenant, access=Access(row.role.value), api_key_id=row.id)


async def _player_token_viewer(settings: Settings, token: str) -> Viewer:
    slug = auth.token_tenant(token)
    tenant = await Tenant.get_or_none(slug=slug) if slug else None
    if tenant is None:
        raise AuthError("invalid credential")
    try:
        player_id = auth.verify_player_token(
            token,
            tenant_secret=tenant.signing_secret,
            deployment_secret=settings.questline_secret.get_secret_value(),
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("player token expired") from None
    except jwt.PyJWTError:
        raise AuthError("invalid player token") from None
    return Viewer(tenant=tenant, access=Access.PLAYER, player_id=player_id)


def parse_role(role: str) -> Role:
    try:
        return Role(role.lower())
    except ValueError:
        raise UserError(
            ErrorCode.INVALID,
            f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}",
            "role",
        ) from None


async def create_api_key(tenant_slug: str, role: str, name: str = "") -> tuple[ApiKey, str]:
    """The stored row and the key itself, which is shown once and never again."""
    parsed = parse_role(role)
    tenant = await get_tenant(tenant_slug)
    new = auth.generate_api_key()
    row = await ApiKey.create(
        tenant=tenant, name=name, prefix=new.prefix, key_hash=new.key_hash, role=parsed
    )
    return row, new.key


async def revoke_api_key(prefix_or_key: str) -> ApiKey:
    prefix = auth.split_api_key(prefix_or_key) or prefix_or_key
    row = await ApiKey.get_or_none(prefix=prefix)
    if row is None:
        raise UserError(ErrorCode.NOT_FOUND, f"no API key with prefix {prefix!r}", "key")
    await ApiKey.filter(id=row.id).update(revoked=True)
    row.revoked = True
    return row


async def mint_player_token(
    settings: Settings, tenant: Tenant, player_id: str, ttl: timedelta | None = None
) -> str:
    return auth.mint_player_token(
        tenant_slug=tenant.slug,
        player_id=player_id,
        tenant_secret=tenant.signing_secret,
        deployment_secret=settings.questline_secret.get_secret_value(),
        ttl=ttl or timedelta(seconds=settings.player_token_ttl_seconds),
    )
