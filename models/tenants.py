"""Tenants and their API keys."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class Role(StrEnum):
    ADMIN = "admin"
    INTEGRATOR = "integrator"
    VIEWER = "viewer"


class Tenant(Model):
    id = fields.IntField(primary_key=True)
    slug = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=200)
    preset = fields.CharField(max_length=32)
    # The preset's rules, levels, badges... copied at creation: an admin may change them.
    config = fields.JSONField(default=dict)
    # Bumped on every change to `config`: services cache the parsed rules by it.
    config_version = fields.IntField(default=1)
    timezone = fields.CharField(max_length=64, default="UTC")
    # Signs this tenant's player tokens; rotating it invalidates them all.
    signing_secret = fields.CharField(max_length=128)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "tenant"

    def __str__(self) -> str:
        return self.slug


class ApiKey(Model):
    id = fields.IntField(primary_key=True)
    tenant = fields.ForeignKeyField("models.Tenant", related_name="api_keys", db_index=True)
    name = fields.CharField(max_length=100, default="")
    # Shown to operators to tell keys apart; the key itself is only stored hashed.
    prefix = fields.CharField(max_length=16, unique=True)
    key_hash = fields.CharField(max_length=64)
    role = fields.CharEnumField(Role, max_length=16)
    revoked = fields.BooleanField(default=False)
    last_used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "api_key"
