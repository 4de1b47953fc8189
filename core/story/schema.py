"""The runtime export's JSON Schema (resources/story/story.schema.json) and a small validator for the
part of JSON Schema it uses: type, const, enum, required, properties, additionalProperties: false,
items, minItems, minimum, minLength, maxLength, pattern and local ``$ref``s. (PixSim does not depend on
the ``jsonschema`` package; games may validate with any JSON Schema 2020-12 validator.)"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from resources import resource_path

SCHEMA_PATH = resource_path("story", "story.schema.json")

_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


@functools.cache
def story_schema() -> dict[str, Any]:
    with SCHEMA_PATH.open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


def schema_errors(document: Any, schema: dict[str, Any] | None = None) -> list[str]:
    """Every place ``document`` breaks the schema, as "path: problem" (empty when it is valid)."""
    root = schema if schema is not None else story_schema()
    errors: list[str] = []
    _check(document, root, root, "$", errors)
    return errors


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported, got {ref!r}")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _check(value: Any, node: dict[str, Any], root: dict[str, Any], path: str, errors: list[str]) -> None:
    node = _resolve(root, node)
    if "const" in node and not _equal(value, node["const"]):
        errors.append(f"{path}: must be {json.dumps(node['const'])}")
        return
    if "enum" in node and not any(_equal(value, option) for option in node["enum"]):
        errors.append(f"{path}: must be one of {', '.join(json.dumps(o) for o in node['enum'])}")
        return
    if "type" in node:
        wanted = node["type"] if isinstance(node["type"], list) else [node["type"]]
        if not any(_TYPES[t](value) for t in wanted):
            errors.append(f"{path}: must be {' or '.join(wanted)}, not {_kind(value)}")
            return
    if isinstance(value, dict):
        for name in node.get("required", ()):
            if name not in value:
                errors.append(f"{path}: '{name}' is missing")
        properties = node.get("properties", {})
        for name, item in value.items():
            if name in properties:
                _check(item, properties[name], root, f"{path}.{name}", errors)
            elif node.get("additionalProperties") is False:
                errors.append(f"{path}: unknown property '{name}'")
    elif isinstance(value, list):
        if len(value) < node.get("minItems", 0):
            errors.append(f"{path}: needs at least {node['minItems']} item(s)")
        if "items" in node:
            for index, item in enumerate(value):
                _check(item, node["items"], root, f"{path}[{index}]", errors)
    elif isinstance(value, str):
        if len(value) < node.get("minLength", 0):
            errors.append(f"{path}: must not be empty" if node["minLength"] == 1 else f"{path}: too short")
        if "maxLength" in node and len(value) > node["maxLength"]:
            errors.append(f"{path}: longer than {node['maxLength']} characters")
        if "pattern" in node and not re.search(node["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {node['pattern']}")
    elif _TYPES["number"](value) and "minimum" in node and value < node["minimum"]:
        errors.append(f"{path}: must be at least {node['minimum']}")


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    return bool(a == b)


def _kind(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](value):
            return name
    return type(value).__name__
