"""Presets are data: one YAML file per preset, copied into a tenant's config."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

PRESET_DIR = Path(__file__).parent


def available() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


@cache
def _load(name: str) -> dict[str, Any]:
    with (PRESET_DIR / f"{name}.yaml").open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"preset {name} is not a mapping")
    return data


def load(name: str) -> dict[str, Any]:
    """A fresh copy of the preset's data; raises KeyError for an unknown preset."""
    if name not in available():
        raise KeyError(name)
    import copy

    return copy.deepcopy(_load(name))
