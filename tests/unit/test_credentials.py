"""API key and player token primitives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import auth


def test_generated_keys_split_back_to_their_prefix_and_match_their_hash():
    new = auth.generate_api_key()
    assert auth.split_api_key(new.key) == new.prefix
    assert auth.key_matches(new.key, new.key_hash)
    assert not auth.key_matches(new.key + "x", new.key_hash)
    assert new.key_hash != new.key and len(new.key) > 50


@given(st.text(max_size=80))
def test_split_never_accepts_garbage(text):
    prefix = auth.split_api_key(text)
    assert prefix is None or (text.startswith("ql_") and len(prefix) == 12)


def test_access_ordering():
    assert auth.allows(auth.Access.ADMIN, auth.Access.INTEGRATOR)
    assert auth.allows(auth.Access.INTEGRATOR, auth.Access.VIEWER)
    assert not auth.allows(auth.Access.VIEWER, auth.Access.INTEGRATOR)
    assert not auth.allows(auth.Access.PLAYER, auth.Access.VIEWER)


def _mint(**kw):
    args = {
        "tenant_slug": "t",
        "player_id": "p",
        "tenant_secret": "ts",
        "deployment_secret": "ds",
        "ttl": timedelta(minutes=5),
    }
    args.update(kw)
    return auth.mint_player_token(**args)


def test_player_token_round_trip_and_scoping():
    token = _mint()
    assert auth.token_tenant(token) == "t"
    assert auth.verify_player_token(token, tenant_secret="ts", deployment_secret="ds") == "p"
    with pytest.raises(jwt.InvalidSignatureError):
        auth.verify_player_token(token, tenant_secret="other", deployment_secret="ds")
    with pytest.raises(jwt.InvalidSignatureError):
        auth.verify_player_token(token, tenant_secret="ts", deployment_secret="other")


def test_player_token_expires():
    old = _mint(now=datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(jwt.ExpiredSignatureError):
        auth.verify_player_token(old, tenant_secret="ts", deployment_secret="ds")


def test_an_unsigned_token_is_refused():
    forged = jwt.encode(
        {"aud": auth.TOKEN_AUDIENCE, "ten": "t", "sub": "p", "exp": 9999999999},
        key="",
        algorithm="none",
    )
    with pytest.raises(jwt.PyJWTError):
        auth.verify_player_token(forged, tenant_secret="ts", deployment_secret="ds")
