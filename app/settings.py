"""Runtime settings, read from the environment (and an optional .env file)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SECRET = "questline-dev-secret-change-me"
DEFAULT_DATABASE_URL = "sqlite://data/questline.sqlite3"


class Settings(BaseSettings):
    """Every knob the server reads. Names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = ""
    questline_env: Literal["dev", "production"] = "dev"
    questline_secret: SecretStr = SecretStr(DEFAULT_SECRET)
    # 20, not 10: under 50 concurrent leaderboard reads (each a few short queries) a pool
    # of 10 is contended, and asyncio hands a freed connection to whichever request asks
    # next, not to the longest waiter: the p99 doubled (bench/leaderboard.py, 2026-11-21).
    db_pool_size: int = Field(20, ge=1, le=500)
    allowed_origins: Annotated[list[str], NoDecode] = []
    # GraphiQL and introspection: on in dev, off in production unless enabled.
    graphql_ide: bool | None = None
    # Keys and channels in Redis are namespaced so several deployments (or test runs)
    # can share one server.
    redis_prefix: str = "questline"
    player_token_ttl_seconds: int = Field(3600, ge=60, le=7 * 24 * 3600)
    default_timezone: str = "UTC"
    # Redis leaderboard sets of a closed period are kept this many days after it ends
    # (previous-period ranks read them); the record and snapshots keep the history.
    leaderboard_retention_days: int = Field(40, ge=1, le=3650)
    # An HTTP request's body is refused (413) past this size (app.body_limit); the
    # largest legitimate one, 1,000 events with 16 KB of metadata each, is about 17 MB.
    max_request_bytes: int = Field(32 * 1024 * 1024, ge=64 * 1024)
    # `questline worker`: how long the database work of one batch may take before the
    # worker gives up on it and retries the batch later. A database that stops answering
    # (a stalled connection) must not hold the worker, and its stop, for ever. A batch of
    # 1,000 takes well under a second; applied one event at a time (a batch the database
    # refused) a few seconds.
    worker_db_timeout_seconds: float = Field(30.0, gt=0, le=3600)
    # `questline serve`: every WebSocket is pinged at the protocol level this often, and
    # closed (1011) when the pong does not come within the timeout: a subscriber whose
    # network went away is let go, and proxies see traffic on quiet connections.
    ws_ping_interval_seconds: float = Field(20.0, gt=0, le=3600)
    ws_ping_timeout_seconds: float = Field(20.0, gt=0, le=3600)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _production_needs_a_secret(self) -> Settings:
        if self.production and self.questline_secret.get_secret_value() in ("", DEFAULT_SECRET):
            raise ValueError(
                "QUESTLINE_ENV=production needs QUESTLINE_SECRET set to a non-default value"
            )
        if self.production and len(self.questline_secret.get_secret_value()) < 16:
            raise ValueError("QUESTLINE_SECRET must be at least 16 characters in production")
        return self

    @property
    def production(self) -> bool:
        return self.questline_env == "production"

    @property
    def ide_enabled(self) -> bool:
        return (not self.production) if self.graphql_ide is None else self.graphql_ide

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgres://", "postgresql://", "asyncpg://"))
