"""Strict value checks from a dataclass's field annotations, so a YAML study config, a
model's config.json and `--set KEY=VALUE` all refuse a value of the wrong type the same way.

The readers are loose where it matters: jsonschema's "integer" accepts 64.0, a Python bool
is an int, YAML reads `yes` as true and `{question}` as a mapping. The rules here are a
researcher's: bool is not an int, 64.0 is not an int, a float field takes an int, a list
field takes a list (never a scalar; null means the empty list), `X | None` takes null.
Annotations this module does not know are left unchecked (the dataclass's own checks run).
"""
from __future__ import annotations

import functools
import math
import re
import types
import typing
from typing import Any

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_NULL = {"null", "none", "~", ""}


@functools.lru_cache(maxsize=None)
def field_types(cls) -> dict[str, Any]:
    """{field name: resolved annotation} of a dataclass (string annotations resolved)."""
    return typing.get_type_hints(cls)


def _union_args(tp) -> tuple | None:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return typing.get_args(tp)
    return None


def expected(tp) -> str:
    """What a value of this annotation looks like, in words."""
    args = _union_args(tp)
    if args is not None:
        words = [expected(a) for a in args if a is not type(None)]
        return " or ".join(words) + (" or null" if type(None) in args else "")
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        inner = typing.get_args(tp)
        item = expected(inner[0]) if inner else "a value"
        return f"a list of {item.removeprefix('an ').removeprefix('a ')}s, e.g. [1] or [3, 4]"
    if origin is dict:
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _yaml_float_hint(value) -> str | None:
    """YAML 1.1 (PyYAML, Snakemake) reads 1e-3 as text (it wants a dot, as in 1.0e-3): say
    so, and how to write it, when a number was meant."""
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        return f"YAML reads {value.strip()} as text: write {float(value)!r}"
    return None


def check_value(value, tp):
    """`value` if it fits annotation `tp` (an int made float for a float field, a list made
    a tuple for a tuple field); ValueError(what was expected) if it does not."""
    args = _union_args(tp)
    if args is not None:
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return check_value(value, arg)
            except ValueError:
                pass
        hint = _yaml_float_hint(value) if float in args else None
        raise ValueError(f"{expected(tp)} ({hint})" if hint else expected(tp))
    origin = typing.get_origin(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if (isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isfinite(value)):
            return float(value)
        if isinstance(value, float):
            raise ValueError("a finite number")
        if hint := _yaml_float_hint(value):
            raise ValueError(f"a number ({hint})")
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin in (tuple, list):
        if value is None:
            return origin()
        if isinstance(value, (list, tuple)):
            inner = typing.get_args(tp)
            try:
                if len(inner) == 1 or len(inner) == 2 and inner[1] is Ellipsis:
                    items = [check_value(v, inner[0]) for v in value]
                elif len(value) == len(inner):
                    items = [check_value(v, t) for v, t in zip(value, inner)]
                else:
                    raise ValueError
            except ValueError:
                raise ValueError(expected(tp)) from None
            return origin(items)
    elif origin is dict:
        if isinstance(value, dict):
            k, v = typing.get_args(tp) or (Any, Any)
            return {check_value(a, k) if k is not Any else a: check_value(b, v) if v is not Any else b
                    for a, b in value.items()}
    else:
        return value  # an annotation we do not check here
    raise ValueError(expected(tp))


def parse_text(text: str, tp):
    """A command-line string read by the field's declared type: integers as digits only,
    numbers as decimals (no nan/inf), booleans only `true`/`false`, strings verbatim,
    lists as `[a, b]`, and `null` (or `none`, or nothing) for an optional field."""
    args = _union_args(tp)
    if args is not None:
        if type(None) in args and text.strip().lower() in _NULL:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return parse_text(text, arg)
            except ValueError:
                pass
        raise ValueError(expected(tp))
    stripped = text.strip()
    if tp is bool:
        if stripped.lower() in ("true", "false"):
            return stripped.lower() == "true"
    elif tp is int:
        if _INT.fullmatch(stripped):
            return int(stripped)
    elif tp is float:
        if _FLOAT.fullmatch(stripped):
            return check_value(float(stripped), float)
    elif tp is str:
        return text
    else:
        import yaml
        try:
            value = yaml.safe_load(stripped) if stripped else None
        except yaml.YAMLError:
            raise ValueError(expected(tp)) from None
        if typing.get_origin(tp) in (tuple, list) and not isinstance(value, list):
            raise ValueError(expected(tp))
        return check_value(value, tp)
    raise ValueError(expected(tp))
