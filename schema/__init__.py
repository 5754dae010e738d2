"""Strawberry types, inputs, enums and payloads; `build_schema` assembles them."""

from schema.build import build_schema

__all__ = ["build_schema"]
