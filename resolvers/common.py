"""What every resolver needs: the viewer, input conversion, error mapping."""

from __future__ import annotations

from typing import Any

import strawberry

from app.auth import Access
from app.context import Info
from app.services.access import Viewer


def viewer(info: Info, needed: Access = Access.PLAYER) -> Viewer:
    who = info.context.viewer
    who.require(needed)
    return who


def given(**fields: Any) -> dict[str, Any]:
    """The input fields the client actually sent (UNSET ones are left out)."""
    return {k: v for k, v in fields.items() if v is not strawberry.UNSET}
