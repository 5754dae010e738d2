"""What a bench result was measured on: the machine, the versions, the code (git and a
fingerprint of the server's source)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import platform
import re
import sqlite3
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from harness import PG_ADMIN_DSN, REDIS_URL, ROOT, SetupError


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = match.group(1).strip() if match else cpu
    ram = None
    with contextlib.suppress(OSError, AttributeError):
        match = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        ram = int(match.group(1)) * 1024
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(ram / 1024**3, 1) if ram else None,
        "kernel": platform.release(),
    }


SOURCE_DIRS = ("app", "models", "schema", "resolvers", "migrations")


def source_fingerprint() -> str:
    """A hash of the server's source, to tell whether the code changed during the bench."""
    digest = hashlib.sha256()
    for folder in SOURCE_DIRS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def git_state() -> str:
    """HEAD and the number of uncommitted paths (read-only git commands)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    dirty = len([line for line in status.splitlines() if line.strip()])
    return f"{head}" + (f" + {dirty} uncommitted paths" if dirty else "")


def versions(backends: list[str]) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in (
        "strawberry-graphql",
        "starlette",
        "uvicorn",
        "tortoise-orm",
        "asyncpg",
        "aiosqlite",
        "redis",
        "hiredis",
        "uvloop",
        "httptools",
        "httpx",
        "h11",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    out["sqlite (library)"] = sqlite3.sqlite_version

    async def pg_version() -> str:
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            return await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()

    try:
        out["PostgreSQL server"] = asyncio.run(pg_version())
    except Exception as exc:
        out["PostgreSQL server"] = f"unavailable ({type(exc).__name__})"
        if "postgres" in backends:
            raise SetupError(f"PostgreSQL unavailable at {PG_ADMIN_DSN}: {exc}") from exc
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            out["Redis server"] = str(client.info("server")["redis_version"])
        finally:
            client.close()
    except Exception as exc:
        out["Redis server"] = f"unavailable ({type(exc).__name__})"
        if "postgres" in backends:
            raise SetupError(f"Redis unavailable at {REDIS_URL}: {exc}") from exc
    return out
