"""Settings read from the environment and refuse unsafe production values."""

from __future__ import annotations

import pytest

from app.settings import Settings


def test_defaults_are_the_embedded_dev_setup(monkeypatch):
    for name in ("DATABASE_URL", "REDIS_URL", "QUESTLINE_ENV", "QUESTLINE_SECRET"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)
    assert settings.database_url.startswith("sqlite://data/")
    assert settings.redis_url == "" and not settings.production and settings.ide_enabled


def test_environment_variables_are_read(monkeypatch):
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("DB_POOL_SIZE", "33")
    monkeypatch.setenv("WORKER_DB_TIMEOUT_SECONDS", "2.5")
    settings = Settings(_env_file=None)
    assert settings.allowed_origins == ["https://a.example", "https://b.example"]
    assert settings.db_pool_size == 33
    assert settings.worker_db_timeout_seconds == 2.5


@pytest.mark.parametrize("seconds", ["0", "-1", "3601", "soon"])
def test_the_worker_database_timeout_is_a_positive_number_of_seconds(monkeypatch, seconds):
    monkeypatch.setenv("WORKER_DB_TIMEOUT_SECONDS", seconds)
    with pytest.raises(ValueError, match="worker_db_timeout_seconds"):
        Settings(_env_file=None)


@pytest.mark.parametrize("secret", [None, "questline-dev-secret-change-me", "short"])
def test_production_refuses_a_missing_default_or_short_secret(monkeypatch, secret):
    monkeypatch.setenv("QUESTLINE_ENV", "production")
    if secret is None:
        monkeypatch.delenv("QUESTLINE_SECRET", raising=False)
    else:
        monkeypatch.setenv("QUESTLINE_SECRET", secret)
    with pytest.raises(ValueError, match="QUESTLINE_SECRET"):
        Settings(_env_file=None)


def test_production_turns_graphiql_off_unless_enabled():
    prod = {"questline_env": "production", "questline_secret": "x" * 32}
    assert not Settings(_env_file=None, **prod).ide_enabled
    assert Settings(_env_file=None, graphql_ide=True, **prod).ide_enabled
