"""Checking ``sample()`` options against the JSON schemas a kind declares (``sample_options``).

The schemas are what the web UI renders its form from, so checking requests against the same
schemas keeps one source of truth: a generate request with ``{"alpha": "lots"}`` or
``{"k": -1}`` is refused when it is submitted, naming the option, instead of failing minutes
later inside a job. Only the small part of JSON Schema that pydantic writes for option fields
is understood (type, enum, bounds, anyOf); an option whose schema uses anything else passes.
"""
from __future__ import annotations

from typing import Any

_TYPES = {"boolean": (bool,), "integer": (int,), "number": (int, float), "string": (str,), "null": (type(None),)}


def schema_problem(value: Any, schema: dict[str, Any]) -> str | None:
    """Why ``value`` does not match ``schema`` (one sentence), or None when it does."""
    if "anyOf" in schema:
        problems = [schema_problem(value, option) for option in schema["anyOf"]]
        if all(problems):
            return " or ".join(dict.fromkeys(p for p in problems if p))
        return None
    expected = schema.get("type")
    if expected in _TYPES:
        # bool is an int in Python; JSON's true is not a number.
        if isinstance(value, bool) and expected in ("integer", "number"):
            return f"expected {'an integer' if expected == 'integer' else 'a number'}, got {value!r}"
        if not isinstance(value, _TYPES[expected]):
            article = "an" if expected[0] in "aeiou" else "a"
            return f"expected {article} {expected}, got {value!r}" if expected != "null" else "expected null"
    if "enum" in schema and value not in schema["enum"]:
        return f"expected one of {', '.join(map(repr, schema['enum']))}, got {value!r}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        bounds = (("minimum", lambda b: value >= b, ">="), ("maximum", lambda b: value <= b, "<="),
                  ("exclusiveMinimum", lambda b: value > b, ">"), ("exclusiveMaximum", lambda b: value < b, "<"))
        for key, holds, sign in bounds:
            if key in schema and not holds(schema[key]):
                return f"must be {sign} {schema[key]}, got {value!r}"
    return None


def check_sample_options(kind: str, declared: dict[str, dict[str, Any]], options: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming ``options.<name>`` for an unknown option or a value its schema refuses."""
    unknown = sorted(set(options) - set(declared))
    if unknown == ["filter"]:  # the option vae and tabular_vae had before the filter stage took it over
        raise ValueError("options.filter: the generative classifier is a filter now; ask for it with "
                         "filters: ['generative-classifier'] (a model trained with it applies it by default)")
    if unknown:
        raise ValueError(f"options: unknown option {', '.join(map(repr, unknown))} for kind '{kind}'; "
                         f"it takes {', '.join(sorted(declared)) or 'none'}")
    for name, value in options.items():
        problem = schema_problem(value, declared[name])
        if problem:
            raise ValueError(f"options.{name}: {problem}")
