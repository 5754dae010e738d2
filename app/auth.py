"""Credentials: API keys (stored hashed) and signed, expiring player tokens.

API keys look like `ql_<prefix>_<secret>`. They carry 256 bits of randomness, so a
single SHA-256 is the right hash (a slow password hash buys nothing against
brute force of a random key and costs every request). Player tokens are JWTs (HS256)
signed with the tenant's own secret mixed with the deployment secret, scoped to one
player and read-only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import jwt

KEY_PREFIX = "ql_"
TOKEN_AUDIENCE = "questline:player"


class Access(StrEnum):
    """What a credential may do, from least to most."""

    PLAYER = "player"  # one player's own data, read-only
    VIEWER = "viewer"  # read anything in the tenant
    INTEGRATOR = "integrator"  # + send events, adjust points, redeem
    ADMIN = "admin"  # + configuration


_RANK = {Access.PLAYER: 0, Access.VIEWER: 1, Access.INTEGRATOR: 2, Access.ADMIN: 3}


def allows(held: Access, needed: Access) -> bool:
    return _RANK[held] >= _RANK[needed]


@dataclass(frozen=True, slots=True)
class NewApiKey:
    prefix: str
    key: str
    key_hash: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_api_key() -> NewApiKey:
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return NewApiKey(prefix=prefix, key=key, key_hash=hash_key(key))


def split_api_key(key: str) -> str | None:
    """The prefix of a well-formed API key, or None."""
    if not key.startswith(KEY_PREFIX):
        return None
    prefix, sep, rest = key[len(KEY_PREFIX) :].partition("_")
    if not sep or not rest or len(prefix) != 12:
        return None
    return prefix


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)


def _signing_key(deployment_secret: str, tenant_secret: str) -> str:
    return hmac.new(deployment_secret.encode(), tenant_secret.encode(), "sha256").hexdigest()


def mint_player_token(
    *,
    tenant_slug: str,
    player_id: str,
    tenant_secret: str,
    deployment_secret: str,
    ttl: timedelta,
    now: datetime | None = None,
) -> str:
    issued = now or datetime.now(UTC)
    claims = {
        "aud": TOKEN_AUDIENCE,
        "ten": tenant_slug,
        "sub": player_id,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    return jwt.encode(claims, _signing_key(deployment_secret, tenant_secret), algorithm="HS256")


def token_tenant(token: str) -> str | None:
    """The tenant a token claims to belong to (unverified: only to find the key)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    tenant = claims.get("ten")
    return tenant if isinstance(tenant, str) else None


def verify_player_token(token: str, *, tenant_secret: str, deployment_secret: str) -> str:
    """The player id the token is scoped to; raises jwt.PyJWTError when invalid or expired."""
    claims = jwt.decode(
        token,
        _signing_key(deployment_secret, tenant_secret),
        algorithms=["HS256"],
        audience=TOKEN_AUDIENCE,
        options={"require": ["exp", "sub", "ten"]},
    )
    return str(claims["sub"])
