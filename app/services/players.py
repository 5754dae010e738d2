"""Players and teams: upsert, lookup, listing; the first event creates a player."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.errors import ErrorCode, UserError
from app.runtime import Runtime
from app.services.board_cache import player_rows
from app.services.common import check_external_id, check_timezone, fits_external_id
from models import Player, PlayerKind, Team, Tenant

MAX_PAGE = 100
MAX_ATTRIBUTES_BYTES = 16 * 1024


def player_channel(tenant_id: int, player_id: str, topic: str) -> str:
    return f"t{tenant_id}:player:{player_id}:{topic}"


def boards_channel(tenant_id: int) -> str:
    """Scores of the tenant changed (one message per committed batch)."""
    return f"t{tenant_id}:boards"


def _validate(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The fields an upsert sets, checked; absent keys are left as they are."""
    out = dict(changes)
    if out.get("timezone") is not None:
        check_timezone(out["timezone"])
    if "kind" in out and out["kind"] is None:
        out.pop("kind")
    if "hidden_from_boards" in out and out["hidden_from_boards"] is None:
        out.pop("hidden_from_boards")
    if "attributes" in out:
        attributes = out["attributes"] if out["attributes"] is not None else {}
        if not isinstance(attributes, dict):
            raise UserError(ErrorCode.INVALID, "attributes must be a JSON object", "attributes")
        if len(json.dumps(attributes)) > MAX_ATTRIBUTES_BYTES:
            raise UserError(ErrorCode.INVALID, "attributes exceed 16 KB", "attributes")
        out["attributes"] = attributes
    for name in ("display_name", "segment"):
        if out.get(name) is not None and len(out[name]) > (200 if name == "display_name" else 64):
            raise UserError(ErrorCode.INVALID, f"{name} is too long", name)
    return out


async def _team(tenant: Tenant, team_id: str | None) -> Team | None:
    if team_id is None:
        return None
    check_external_id(team_id, "teamId")
    team = await Team.get_or_none(tenant=tenant, external_id=team_id)
    if team is None:
        try:
            async with in_transaction():
                team = await Team.create(tenant=tenant, external_id=team_id, name=team_id)
        except IntegrityError:  # created concurrently
            team = await Team.get(tenant=tenant, external_id=team_id)
    return team


async def upsert_team(tenant: Tenant, team_id: str, name: str) -> Team:
    check_external_id(team_id, "id")
    if not name.strip():
        raise UserError(ErrorCode.INVALID, "a team needs a name", "name")
    team = await _team(tenant, team_id)
    assert team is not None
    if team.name != name:
        await Team.filter(id=team.id).update(name=name)
        team.name = name
    return team


async def upsert_player(
    rt: Runtime, tenant: Tenant, player_id: str, changes: Mapping[str, Any]
) -> Player:
    check_external_id(player_id)
    values = _validate(changes)
    team_given = "team_id" in values
    team = await _team(tenant, values.pop("team_id", None))
    if team_given:
        values["team"] = team
    player = await Player.get_or_none(tenant=tenant, external_id=player_id)
    hidden_before = player.hidden_from_boards if player else False
    if player is None:
        try:
            async with in_transaction():
                player = await Player.create(tenant=tenant, external_id=player_id, **values)
        except IntegrityError:
            player = await Player.get(tenant=tenant, external_id=player_id)
            hidden_before = player.hidden_from_boards
            await _apply(player, values)
    else:
        await _apply(player, values)
    if player.hidden_from_boards != hidden_before:
        await _privacy_changed(rt, tenant, player)
    await rt.hub.publish(player_channel(tenant.id, player_id, "profile"), {"playerId": player_id})
    return player


async def _privacy_changed(rt: Runtime, tenant: Tenant, player: Player) -> None:
    """The player left (or came back to) the public boards."""
    if rt.boards is not None:  # the Redis copies take the record's rows, hidden or not
        rows = await player_rows(tenant.id, player.id, player.hidden_from_boards)
        await rt.boards.apply(rows, tenant.timezone)
    await rt.hub.publish(boards_channel(tenant.id), {"changed": True})


async def _apply(player: Player, values: Mapping[str, Any]) -> None:
    if not values:
        return
    for key, value in values.items():
        setattr(player, key, value)
    await player.save(update_fields=[("team_id" if k == "team" else k) for k in values])


async def get_player(tenant: Tenant, player_id: str) -> Player | None:
    if not fits_external_id(player_id):
        return None
    return await Player.get_or_none(tenant=tenant, external_id=player_id)


async def require_player(tenant: Tenant, player_id: str) -> Player:
    player = await get_player(tenant, player_id)
    if player is None:
        raise UserError(ErrorCode.NOT_FOUND, f"no player {player_id!r}", "playerId")
    return player


async def list_players(
    tenant: Tenant,
    *,
    first: int = 20,
    after: str | None = None,
    segment: str | None = None,
    kind: PlayerKind | None = None,
) -> list[Player]:
    """Keyset pagination by the integrator's id: `after` is the last id seen."""
    if first < 0 or first > MAX_PAGE:
        raise UserError(ErrorCode.INVALID, f"first must be between 0 and {MAX_PAGE}", "first")
    query = Player.filter(tenant=tenant)
    if segment is not None:
        query = query.filter(segment=segment)
    if kind is not None:
        query = query.filter(kind=kind)
    if after is not None:
        query = query.filter(external_id__gt=after)
    return await query.order_by("external_id").limit(first)


async def players_by_ids(tenant_id: int, ids: Iterable[int]) -> dict[int, Player]:
    return {p.id: p for p in await Player.filter(tenant_id=tenant_id, id__in=list(ids))}


async def teams_by_ids(ids: Iterable[int]) -> dict[int, Team]:
    return {t.id: t for t in await Team.filter(id__in=list(ids))}


async def team_members(team_ids: Iterable[int]) -> dict[int, list[Player]]:
    out: dict[int, list[Player]] = {}
    for player in await Player.filter(team_id__in=list(team_ids)).order_by("external_id"):
        out.setdefault(player.team_id, []).append(player)  # type: ignore[attr-defined]
    return out
