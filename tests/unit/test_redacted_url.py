"""Database URLs in logs and messages carry no password."""

from __future__ import annotations

from app.db import redacted_url


def test_the_password_and_only_the_password_is_hidden():
    assert redacted_url("postgres://app:s3cret@db:5432/questline") == (
        "postgres://app:***@db:5432/questline"
    )
    # A password equal to the user name, or found in the host, hides nothing else.
    assert redacted_url("postgres://postgres:postgres@postgres/postgres?sslmode=require") == (
        "postgres://postgres:***@postgres/postgres?sslmode=require"
    )
    assert redacted_url("postgres://app@db/questline") == "postgres://app@db/questline"
    assert redacted_url("sqlite://data/questline.sqlite3") == "sqlite://data/questline.sqlite3"
