"""Another revision's code checked out beside this checkout, for an A/B in one bench run."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worktree(rev: str) -> Path:
    """The code of `rev` checked out beside this one, for an A/B in one run (`drop` it)."""
    path = Path(tempfile.mkdtemp(prefix="qlbase-"))
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(path), rev],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return path


def drop(path: Path) -> None:
    subprocess.run(
        ["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True
    )
    shutil.rmtree(path, ignore_errors=True)
