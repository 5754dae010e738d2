"""JSONLogic conditions and amounts, evaluated by a safe evaluator (never eval)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from json_logic import jsonLogic


def truthy(condition: dict[str, Any] | None, facts: dict[str, Any]) -> bool:
    if condition is None:
        return True
    try:
        return bool(jsonLogic(condition, facts))
    except (TypeError, ValueError, ArithmeticError, KeyError, IndexError):
        return False  # a condition over a missing or mistyped fact does not hold


def number(value: Decimal | dict[str, Any], facts: dict[str, Any]) -> Decimal:
    if isinstance(value, Decimal):
        return value
    try:
        result = jsonLogic(value, facts)
        return Decimal(str(result)) if result is not None else Decimal(0)
    except (TypeError, ValueError, ArithmeticError, KeyError, IndexError, InvalidOperation):
        return Decimal(0)
