"""Checking one config value against its field: the type, the choices, the range. Every
failure is a :class:`ConfigError` that names the key, the value given and what is allowed."""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any


class ConfigError(ValueError):
    """A configuration key was unknown, of the wrong type or out of range."""



def describe(f: dataclasses.Field, kind: type) -> str:
    meta = f.metadata
    if "choices" in meta:
        return "one of " + ", ".join(meta["choices"])
    text = {bool: "true or false", int: "an integer", float: "a finite number",
            str: "a string"}[kind]
    low, high = meta.get("low"), meta.get("high")
    if low is not None:
        text += (" > " if meta.get("low_open") else " >= ") + f"{low:g}"
    if high is not None:
        text += f" <= {high:g}"
    return text


def check_value(key: str, f: dataclasses.Field, kind: type, value: Any) -> Any:
    """Return ``value`` coerced to ``kind`` (int -> float only), or raise :class:`ConfigError`."""

    def fail() -> ConfigError:
        return ConfigError(f"config key '{key}': got {value!r}; allowed: {describe(f, kind)}")

    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        value = int(value) if ok else value
    elif kind is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        value = float(value) if ok else value
        ok = ok and math.isfinite(value)  # inf and NaN pass no range check
    else:
        ok = isinstance(value, str)
    if not ok:
        raise fail()
    meta = f.metadata
    if "choices" in meta and value not in meta["choices"]:
        raise fail()
    if kind in (int, float):
        low, high = meta.get("low"), meta.get("high")
        if value != value:  # NaN passes no range check
            raise fail()
        if low is not None and (value < low or (meta.get("low_open") and value == low)):
            raise fail()
        if high is not None and value > high:
            raise fail()
    return value
