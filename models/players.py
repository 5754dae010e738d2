"""Players (customers or agents) and the teams they belong to."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class PlayerKind(StrEnum):
    CUSTOMER = "CUSTOMER"
    AGENT = "AGENT"


class Team(Model):
    id = fields.IntField(primary_key=True)
    tenant = fields.ForeignKeyField("models.Tenant", related_name="teams", db_index=True)
    external_id = fields.CharField(max_length=128)
    name = fields.CharField(max_length=200)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "team"
        unique_together = (("tenant", "external_id"),)


class Player(Model):
    id = fields.IntField(primary_key=True)
    tenant = fields.ForeignKeyField("models.Tenant", related_name="players", db_index=True)
    # The integrator's own id for the player, unique per tenant.
    external_id = fields.CharField(max_length=128)
    kind = fields.CharEnumField(PlayerKind, max_length=16, default=PlayerKind.CUSTOMER)
    display_name = fields.CharField(max_length=200, null=True)
    segment = fields.CharField(max_length=64, null=True)
    team = fields.ForeignKeyField(
        "models.Team", related_name="members", null=True, on_delete=fields.SET_NULL, db_index=True
    )
    # None: the tenant's timezone applies.
    timezone = fields.CharField(max_length=64, null=True)
    attributes = fields.JSONField(default=dict)
    # Privacy: left out of public leaderboard pages; the player still sees their rank.
    hidden_from_boards = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "player"
        unique_together = (("tenant", "external_id"),)
        indexes = (("tenant_id", "segment"),)
