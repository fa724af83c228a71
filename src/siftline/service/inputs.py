"""Retriever inputs checked against the input schema before any stage runs."""

from __future__ import annotations

from typing import Any

from siftline.errors import ValidationError

_CHECKS: dict[str, tuple[str, Any]] = {
    "string": ("a string", lambda v: isinstance(v, str)),
    "text": ("a string", lambda v: isinstance(v, str)),
    "date": ("a date string", lambda v: isinstance(v, str)),
    "datetime": ("a datetime string", lambda v: isinstance(v, str)),
    "integer": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "number": ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    "float": ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    "boolean": ("true or false", lambda v: isinstance(v, bool)),
    "array": ("a list", lambda v: isinstance(v, list)),
    "object": ("an object", lambda v: isinstance(v, dict)),
    "document_reference": (
        "an object with document_id",
        lambda v: isinstance(v, dict) and "document_id" in v,
    ),
}


def validate_inputs(schema: dict[str, dict[str, Any]], inputs: Any) -> dict[str, Any]:
    """The inputs with defaults applied; a missing required input or a wrong type is a 422 naming it."""
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        raise ValidationError.at(["body", "inputs"], "inputs is an object of input name → value")
    out = dict(inputs)
    errors: list[dict[str, Any]] = []
    for name, spec in schema.items():
        loc: list[str | int] = ["body", "inputs", name]
        value = out.get(name)
        if value is None:
            if spec.get("default") is not None:
                out[name] = spec["default"]
            elif spec.get("required"):
                errors.append({"loc": loc, "msg": f"input '{name}' is required", "type": "missing"})
            continue
        kind = str(spec.get("type", "string"))
        expected, check = _CHECKS.get(kind, ("", lambda v: True))
        if not check(value):
            errors.append(
                {"loc": loc, "msg": f"input '{name}' must be {expected} (type {kind})", "type": "type_error"}
            )
        elif spec.get("enum") and value not in spec["enum"]:
            errors.append(
                {"loc": loc, "msg": f"input '{name}' must be one of {spec['enum']}", "type": "enum"}
            )
    if errors:
        listed = "; ".join(str(e["msg"]) for e in errors)
        raise ValidationError(f"Invalid inputs: {listed}", errors)
    return out
