"""Who is asking: API keys, player tokens and the dev-mode fallback."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from tortoise import Tortoise

from app import auth
from app.auth import Access, allows
from app.errors import AuthError, ErrorCode, Forbidden, UserError
from app.realtime import Hub
from app.services.tenants import DEFAULT_TENANT, get_tenant
from app.settings import Settings
from app.singleflight import SingleFlight
from models import ApiKey, Role, Tenant

# Writing last_used_at on every request would cost a write per call.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# A verified key is remembered this long per process (a database round trip saved per
# request). Revocation drops it at once in every process that hears about it on the
# hub (all of them with Redis); the TTL bounds it otherwise.
KEY_CACHE_SECONDS = 5.0
KEYS_CHANNEL = "auth:keys"
_verified: dict[str, tuple[float, str, Viewer]] = {}  # prefix -> (expires, key hash, viewer)
_key_rows: SingleFlight[dict | None] = SingleFlight()  # prefix -> its row, being read
# Tenants of player tokens and of the dev fallback, by slug, remembered as long: a
# widget's every request names its tenant, whose row changes rarely (a verified key's
# tenant is as old as its cache entry too).
_tenants: dict[str, tuple[float, Tenant]] = {}  # slug -> (expires, tenant)
_tenant_rows: SingleFlight[Tenant | None] = SingleFlight()


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
        tenant = await _tenant(DEFAULT_TENANT)
        if tenant is None:
            raise AuthError("dev mode: tenant 'default' does not exist; run `questline seed`")
        return Viewer(tenant=tenant, access=Access.ADMIN, dev_fallback=True)
    if credential.startswith(auth.KEY_PREFIX):
        return await _api_key_viewer(credential)
    return await _player_token_viewer(settings, credential)


TENANT_COLUMNS = (
    "id",
    "slug",
    "name",
    "preset",
    "config",
    "config_version",
    "timezone",
    "signing_secret",
    "created_at",
)


async def _api_key_viewer(key: str) -> Viewer:
    prefix = auth.split_api_key(key)
    cached = _verified.get(prefix) if prefix else None
    if cached is not None and cached[0] > time.monotonic() and auth.key_matches(key, cached[1]):
        return cached[2]
    row = await _key_row(prefix) if prefix else None
    if row is None or not auth.key_matches(key, row["key_hash"]):
        raise AuthError("invalid API key")
    if row["revoked"]:
        raise AuthError("this API key has been revoked")
    cached = _verified.get(prefix)
    if cached is not None and cached[0] > time.monotonic() and cached[1] == row["key_hash"]:
        return cached[2]  # a caller that shared this read got here first
    tenant = Tenant._init_from_db(**{column: row[column] for column in TENANT_COLUMNS})
    viewer = Viewer(tenant=tenant, access=Access(row["role"]), api_key_id=row["key_id"])
    if len(_verified) > 10_000:
        _verified.clear()
    _verified[prefix] = (time.monotonic() + KEY_CACHE_SECONDS, row["key_hash"], viewer)
    now = datetime.now(UTC)
    last_used = row["last_used_at"]
    if isinstance(last_used, str):
        last_used = datetime.fromisoformat(last_used)
    if last_used is not None and last_used.tzinfo is None:
        last_used = last_used.replace(tzinfo=UTC)
    if last_used is None or now - last_used > LAST_USED_RESOLUTION:
        await ApiKey.filter(id=row["key_id"]).update(last_used_at=now)
    return viewer


async def _key_row(prefix: str) -> dict | None:
    """The key's row, read once for every caller that needs it at the same time: under
    load a busy key's cache entry expires with dozens of its requests in flight, and
    each read the row (and, for a key used for the first time, wrote last_used_at one
    after another on the row's lock)."""
    return await _key_rows.run(prefix, lambda: _key_with_tenant(prefix))


def forget_key(prefix: str) -> None:
    _verified.pop(prefix, None)
    _key_rows.forget(prefix)  # a read begun before the revocation is not shared on


async def listen_for_revocations(
    hub: Hub, then: Callable[[str], Awaitable[None]] | None = None
) -> None:
    """Runs for the server's lifetime: revoked keys stop working in this process at once
    (`then(prefix)`: what else must stop, e.g. the key's open sockets)."""
    async with hub.subscribe(KEYS_CHANNEL) as messages:
        async for message in messages:
            prefix = str(message.get("revoked", ""))
            forget_key(prefix)
            if then is not None:
                await then(prefix)


async def _key_with_tenant(prefix: str) -> dict | None:
    """Every authenticated request runs this: one prepared statement, no ORM building."""
    conn = Tortoise.get_connection("default")
    mark = "$1" if conn.capabilities.dialect == "postgres" else "?"
    columns = ", ".join(f"t.{c}" for c in TENANT_COLUMNS)
    rows = await conn.execute_query_dict(
        f"SELECT k.id AS key_id, k.key_hash, k.role, k.revoked, k.last_used_at, {columns} "
        f"FROM api_key k JOIN tenant t ON t.id = k.tenant_id WHERE k.prefix = {mark}",
        [prefix],
    )
    return rows[0] if rows else None


async def _tenant(slug: str) -> Tenant | None:
    """The tenant named `slug`, read once per KEY_CACHE_SECONDS per process (and once
    for every caller that misses at the same moment); an unknown slug is not kept."""
    cached = _tenants.get(slug)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    tenant = await _tenant_rows.run(slug, lambda: Tenant.get_or_none(slug=slug))
    if tenant is not None:
        if len(_tenants) > 10_000:
            _tenants.clear()
        _tenants[slug] = (time.monotonic() + KEY_CACHE_SECONDS, tenant)
    return tenant


def forget_tenants() -> None:
    """Tenants are read again (tests that empty the database)."""
    _tenants.clear()


async def _player_token_viewer(settings: Settings, token: str) -> Viewer:
    slug = auth.token_tenant(token)
    tenant = await _tenant(slug) if slug else None
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


async def revoke_api_key(prefix_or_key: str, hub: Hub | None = None) -> ApiKey:
    """Revokes at once here, and in every server that hears it on the hub."""
    prefix = auth.split_api_key(prefix_or_key) or prefix_or_key
    row = await ApiKey.get_or_none(prefix=prefix)
    if row is None:
        raise UserError(ErrorCode.NOT_FOUND, f"no API key with prefix {prefix!r}", "key")
    await ApiKey.filter(id=row.id).update(revoked=True)
    row.revoked = True
    forget_key(prefix)
    if hub is not None:
        await hub.publish(KEYS_CHANNEL, {"revoked": prefix})
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
