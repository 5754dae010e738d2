"""Text holding a NUL character (U+0000) is refused before any resolver runs.

PostgreSQL stores no NUL in text or jsonb: a display name, a reward's description or a
source's mapping holding one failed at the database, and the client saw its
"unsupported Unicode escape sequence", on PostgreSQL only. Now every request is
refused the same way on both backends, with a top-level error naming the variable.

The event mutations' inputs are left to `check_event`, which refuses such an event
alone (INVALID at its index): one bad item does not sink the rest of a batch.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    StringValueNode,
    VariableDefinitionNode,
    VariableNode,
    Visitor,
    visit,
)

from app.services.common import holds_nul

# (field, argument) whose values the service checks item by item.
ITEM_CHECKED = frozenset(
    {
        ("recordEvent", "input"),
        ("recordEvents", "input"),
        ("previewEvent", "input"),
        ("normalizeEvent", "record"),
    }
)
PLANS_MAX = 512


@dataclass(frozen=True, slots=True)
class _Plan:
    item_checked: frozenset[str]  # variables used only where the service checks items
    literal: bool  # a string literal elsewhere in the document holds a NUL


class _Scan(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.used: set[str] = set()  # variables used outside the item-checked arguments
        self.item_checked: set[str] = set()
        self.literal = False

    def enter_variable_definition(self, node: VariableDefinitionNode, *_: Any) -> Any:
        return self.SKIP  # `$input: [RecordEventInput!]!` is a declaration, not a use

    def enter_argument(
        self, node: ArgumentNode, _key: Any, _parent: Any, _path: Any, ancestors: Any
    ) -> Any:
        field = next((a for a in reversed(ancestors) if isinstance(a, FieldNode)), None)
        if field is not None and (field.name.value, node.name.value) in ITEM_CHECKED:
            inner = _Scan()
            visit(node.value, inner)
            self.item_checked |= inner.used
            return self.SKIP
        return None

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        self.used.add(node.name.value)

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        self.literal = self.literal or "\x00" in node.value


# Document id -> (document, plan); least recently used first (ParserCache hands every
# request with the same text the same document object).
_plans: OrderedDict[int, tuple[DocumentNode, _Plan]] = OrderedDict()


def _plan(document: DocumentNode) -> _Plan:
    found = _plans.get(id(document))
    if found is not None and found[0] is document:
        _plans.move_to_end(id(document))
        return found[1]
    scan = _Scan()
    visit(document, scan)
    plan = _Plan(frozenset(scan.item_checked - scan.used), scan.literal)
    _plans[id(document)] = (document, plan)
    if len(_plans) > PLANS_MAX:
        _plans.popitem(last=False)
    return plan


def nul_problem(document: DocumentNode, variables: dict[str, Any] | None) -> str | None:
    """Where the request holds a NUL outside the item-checked inputs, or None (checked
    with the document's validation: schema.build.ValidationByDocument)."""
    plan = _plan(document)
    if plan.literal:
        return "a string in the query"
    for name, value in (variables or {}).items():
        if name not in plan.item_checked and holds_nul(value):
            return f"variable ${name}"
    return None
