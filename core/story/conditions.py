"""The condition language of conditional branch variants: small JSON predicates over a game-state dict.

    {}                                            always holds
    {"var": "has_key", "eq": true}                a test of one variable
    {"all": [cond, ...]}                          every one holds (an empty list holds)
    {"any": [cond, ...]}                          at least one holds (an empty list does not)
    {"not": cond}                                 the condition does not hold

A test names a variable (``"var"``; dots reach into nested dicts: ``"inventory.keys"``) and one or more
operators, all of which must hold: ``eq``, ``ne``, ``lt``, ``lte``, ``gt``, ``gte``, ``in`` (the value
is one of a list), ``contains`` (a list or string variable contains the value) and ``exists`` (true or
false). A variable missing from the state only satisfies ``ne`` and ``exists: false``. Comparisons
(``lt`` …) hold only between two numbers or two strings; ``true`` is not the number 1.

The same rules are written down for game developers in docs/STORY_FORMAT.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from core.story.model import StoryError


class InvalidCondition(StoryError):
    """A variant's conditions are not in the condition language."""


_MISSING = object()
_ORDER_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}
OPERATORS = ("eq", "ne", *_ORDER_OPS, "in", "contains", "exists")
_COMBINATORS = ("all", "any", "not")


def check_condition(condition: Any, where: str = "conditions") -> None:
    """Raise ``InvalidCondition`` naming the first problem (and where it is) unless ``condition`` is valid."""
    if not isinstance(condition, Mapping):
        raise InvalidCondition(f'{where} must be an object like {{"var": "has_key", "eq": true}}.')
    if not condition:
        return
    keys = set(condition)
    combinators = keys & set(_COMBINATORS)
    if combinators:
        if len(keys) != 1:
            raise InvalidCondition(
                f"{where}: '{sorted(combinators)[0]}' must be the only key of its object, found {sorted(keys)}."
            )
        (key,) = keys
        value = condition[key]
        if key == "not":
            check_condition(value, f"{where}.not")
            return
        if not isinstance(value, list):
            raise InvalidCondition(f"{where}.{key} must be a list of conditions.")
        for index, item in enumerate(value):
            check_condition(item, f"{where}.{key}[{index}]")
        return
    if "var" not in keys:
        raise InvalidCondition(
            f"{where}: expected 'var' with an operator, or one of all/any/not; found {sorted(keys)}."
        )
    name = condition["var"]
    if not isinstance(name, str) or not name.strip():
        raise InvalidCondition(f"{where}.var must be a variable name (a non-empty string).")
    ops = keys - {"var"}
    if not ops:
        raise InvalidCondition(f"{where}: '{name}' needs an operator ({', '.join(OPERATORS)}).")
    unknown = sorted(ops - set(OPERATORS))
    if unknown:
        raise InvalidCondition(
            f"{where}: unknown operator '{unknown[0]}' (use one of {', '.join(OPERATORS)})."
        )
    if "in" in ops and not isinstance(condition["in"], list):
        raise InvalidCondition(f"{where}.in must be a list of values.")
    if "exists" in ops and not isinstance(condition["exists"], bool):
        raise InvalidCondition(f"{where}.exists must be true or false.")
    for op in ops & set(_ORDER_OPS):
        if not _comparable(condition[op]):
            raise InvalidCondition(f"{where}.{op} must be a number or a string.")


def holds(condition: Mapping[str, Any], state: Mapping[str, Any]) -> bool:
    """Whether ``condition`` (already checked) holds on the game state."""
    if not condition:
        return True
    if "all" in condition:
        return all(holds(c, state) for c in condition["all"])
    if "any" in condition:
        return any(holds(c, state) for c in condition["any"])
    if "not" in condition:
        return not holds(condition["not"], state)
    value = _lookup(state, condition["var"])
    return all(_test(op, value, expected) for op, expected in condition.items() if op != "var")


def _lookup(state: Mapping[str, Any], name: str) -> Any:
    value: Any = state
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _test(op: str, value: Any, expected: Any) -> bool:
    if op == "exists":
        return (value is not _MISSING) is expected
    if value is _MISSING:
        return op == "ne"
    if op == "eq":
        return _same(value, expected)
    if op == "ne":
        return not _same(value, expected)
    if op == "in":
        return any(_same(value, item) for item in expected)
    if op == "contains":
        if isinstance(value, str):
            return isinstance(expected, str) and expected in value
        return isinstance(value, list) and any(_same(item, expected) for item in value)
    compare = _ORDER_OPS[op]
    if (_number(value) and _number(expected)) or (isinstance(value, str) and isinstance(expected, str)):
        return compare(value, expected)
    return False


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1`` (Python says it is)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    return bool(a == b)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _comparable(value: Any) -> bool:
    return _number(value) or isinstance(value, str)
