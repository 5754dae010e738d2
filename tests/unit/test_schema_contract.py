"""The committed schema.graphql is the live schema, and the live schema keeps the contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
)
from graphql import (
    build_schema as build_sdl,
)

from schema import build_schema

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT.parent / "shared" / "docs" / "api-contract.graphql"


def test_committed_schema_matches_the_live_schema():
    committed = (ROOT / "schema.graphql").read_text(encoding="utf-8")
    live = build_schema().as_str() + "\n"
    assert committed == live, "schema.graphql is stale: run `questline export-schema`"


def _default(arg: object) -> str | None:
    """An argument's default as an SDL literal (`null` and no default are the same)."""
    from graphql import ast_from_value, print_ast
    from graphql.pyutils import Undefined

    node = getattr(arg, "ast_node", None)
    if node is not None and node.default_value is not None:
        literal = print_ast(node.default_value)
    elif arg.default_value is Undefined:  # type: ignore[attr-defined]
        return None
    else:
        value = ast_from_value(arg.default_value, arg.type)  # type: ignore[attr-defined]
        literal = print_ast(value) if value is not None else "null"
    return None if literal == "null" else literal


@pytest.mark.skipif(not CONTRACT.exists(), reason="the contract lives in ../shared/docs")
def test_every_contract_name_we_serve_has_the_contract_shape():
    contract = build_sdl(CONTRACT.read_text(encoding="utf-8"))
    live = build_schema()._schema
    problems: list[str] = []
    for name, expected in contract.type_map.items():
        if name.startswith("__") or name not in live.type_map:
            continue
        actual = live.type_map[name]
        if not isinstance(actual, type(expected)):
            problems.append(f"{name}: {type(actual).__name__} != {type(expected).__name__}")
            continue
        if isinstance(expected, GraphQLEnumType):
            missing = set(expected.values) - set(actual.values)
            if missing:
                problems.append(f"{name}: missing values {sorted(missing)}")
        if isinstance(expected, (GraphQLObjectType, GraphQLInterfaceType)):
            for field_name, field in expected.fields.items():
                ours = actual.fields.get(field_name)
                if ours is None:
                    continue  # not served yet
                if str(ours.type) != str(field.type):
                    problems.append(f"{name}.{field_name}: {ours.type} != {field.type}")
                for arg_name, arg in field.args.items():
                    mine = ours.args.get(arg_name)
                    if mine is None:
                        problems.append(f"{name}.{field_name}({arg_name}) missing")
                    elif str(mine.type) != str(arg.type):
                        problems.append(
                            f"{name}.{field_name}({arg_name}): {mine.type} != {arg.type}"
                        )
                    elif _default(mine) != _default(arg):
                        problems.append(f"{name}.{field_name}({arg_name}) default differs")
        if isinstance(expected, GraphQLInputObjectType):
            for field_name, field in expected.fields.items():
                ours = actual.fields.get(field_name)
                if ours is None:
                    problems.append(f"{name}.{field_name} missing")
                elif str(ours.type) != str(field.type):
                    problems.append(f"{name}.{field_name}: {ours.type} != {field.type}")
                elif _default(ours) != _default(field):
                    problems.append(f"{name}.{field_name} default differs")
    assert problems == [], "\n".join(problems)
