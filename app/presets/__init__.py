"""Presets are data: one YAML file per preset, copied into a tenant's config."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from app.engine.simulation import SimulationSpec, parse_simulation

PRESET_DIR = Path(__file__).parent


def available() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


@cache
def _load(name: str) -> dict[str, Any]:
    with (PRESET_DIR / f"{name}.yaml").open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"preset {name} is not a mapping")
    if data.get("simulation") is not None:
        _simulation(name, data)  # a bad section is refused here, not mid-simulation
    return data


def _simulation(name: str, data: dict[str, Any]) -> SimulationSpec:
    rules = data.get("rules") or []
    types = [r.get("event_type") for r in rules if isinstance(r, dict)]
    try:
        return parse_simulation(data["simulation"], types, data.get("categories") or {})
    except ValueError as exc:
        raise ValueError(f"preset {name}: {exc}") from None


def load(name: str) -> dict[str, Any]:
    """A fresh copy of the preset's data; raises KeyError for an unknown preset."""
    if name not in available():
        raise KeyError(name)
    import copy

    return copy.deepcopy(_load(name))


def simulation(name: str) -> SimulationSpec | None:
    """The preset's simulation mix (`questline simulate`), or None when it has none;
    raises KeyError for an unknown preset."""
    data = load(name)
    return _simulation(name, data) if data.get("simulation") is not None else None
