"""A small JSON-schema validator for tool inputs: the subset the tool schemas use.

Supported: type (object, string, integer, number, boolean, array), properties,
required, additionalProperties: false, enum, minimum, maximum, items. Enough to turn
a bad tool call into one clear sentence Claude can act on.
"""

from __future__ import annotations

from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
}


def validate(value: Any, schema: dict, where: str = "input") -> list[str]:
    """Every way ``value`` breaks ``schema``, as sentences; empty when valid."""
    errors: list[str] = []
    _check(value, schema, where, errors)
    return errors


def _is_type(value: Any, type_name: str) -> bool:
    if type_name in ("integer", "number") and isinstance(value, bool):
        return False  # bool is an int in Python, never in JSON
    if type_name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES[type_name])


def _check(value: Any, schema: dict, where: str, errors: list[str]) -> None:
    type_name = schema.get("type")
    if type_name is not None and not _is_type(value, type_name):
        errors.append(f"{where} must be of type {type_name}, not {_json_type(value)}")
        return
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(repr(v) for v in schema["enum"])
        errors.append(f"{where} must be one of {allowed}, not {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where} must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where} must be at most {schema['maximum']}")
    if type_name == "object":
        props = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                errors.append(f"missing required parameter {name!r}")
        for name, item in value.items():
            if name in props:
                _check(item, props[name], f"parameter {name!r}", errors)
            elif schema.get("additionalProperties") is False:
                known = ", ".join(props)
                errors.append(f"unexpected parameter {name!r} (known: {known})")
    elif type_name == "array" and "items" in schema:
        for i, item in enumerate(value):
            _check(item, schema["items"], f"{where}[{i}]", errors)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for name in ("string", "integer", "number", "object", "array"):
        if isinstance(value, _TYPES[name]):
            return name
    return type(value).__name__
