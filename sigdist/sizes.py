"""The image networks' size: named presets of (model.width_g, model.width_d), and how
``model.size`` and the two widths follow one another in a config's flat form."""

from __future__ import annotations

from typing import Any

from sigdist.validation import ConfigError

# Named width presets of the image networks: (model.width_g, model.width_d), multipliers of the
# generator widths (64, 32) and discriminator widths (16, 32) of Appendix C (1 = its scale, 4 =
# the textbook DCGAN). The paper's own (Kg, Kd) values for S, M and L are lost from its text;
# these are where the capacity x budget map (docs/stacked_mnist.md) shows plain DCGAN mostly
# collapsed (S), covering most modes (M) and nearly all (L); XL is the textbook DCGAN.
WIDTH_PRESETS = {"S": (0.125, 0.125), "M": (0.25, 0.25), "L": (1.0, 1.0), "XL": (4.0, 4.0)}
CUSTOM_SIZE = "custom"
SIZES = (*WIDTH_PRESETS, CUSTOM_SIZE)
MAX_WIDTH = 64.0  # 64 x Appendix C: a 4,096-channel generator layer
WIDTH_KEYS = ("model.width_g", "model.width_d")


def merge_flat(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``updates`` over it, where a key that follows an updated one is dropped
    from ``base`` so that it follows again: a new ``model.size`` brings its preset's widths, a
    new width makes the size "custom"."""
    merged = dict(base)
    if "model.size" in updates:
        for key in WIDTH_KEYS:
            merged.pop(key, None)
    if any(key in updates for key in WIDTH_KEYS):
        merged.pop("model.size", None)
    return {**merged, **updates}


def resolve_widths(flat: dict[str, Any], default_size: str = "M") -> dict[str, Any]:
    """``model.size`` and the two width keys made consistent (the preset fills missing widths;
    widths alone name their preset or "custom"), or :class:`ConfigError` where they disagree."""
    size = flat.get("model.size")
    given = {key: flat[key] for key in WIDTH_KEYS if key in flat}
    if size is None and not given:
        return flat
    if size is not None and not isinstance(size, str):
        return flat  # the type check reports it
    if size in WIDTH_PRESETS:
        preset = dict(zip(WIDTH_KEYS, WIDTH_PRESETS[size], strict=True))
        for key, value in given.items():
            if value != preset[key]:
                raise ConfigError(
                    f"config key '{key}': got {value!r} with model.size={size!r}, whose preset "
                    f"is {key}={preset[key]!r}; allowed: leave model.size out (or set it to "
                    f"'{CUSTOM_SIZE}') to choose widths, or leave {key} out")
        return {**flat, **preset}
    if size == CUSTOM_SIZE and len(given) < len(WIDTH_KEYS):
        missing = [key for key in WIDTH_KEYS if key not in given]
        raise ConfigError(f"config key 'model.size': got '{CUSTOM_SIZE}' without {missing[0]}; "
                          f"allowed: '{CUSTOM_SIZE}' with both {' and '.join(WIDTH_KEYS)}, or "
                          f"one of {', '.join(WIDTH_PRESETS)}")
    if size is None:
        widths = {**dict(zip(WIDTH_KEYS, WIDTH_PRESETS[default_size], strict=True)), **given}
        named = [name for name, pair in WIDTH_PRESETS.items()
                 if tuple(widths[key] for key in WIDTH_KEYS) == pair]
        return {**flat, **widths, "model.size": named[0] if named else CUSTOM_SIZE}
    return flat  # an unknown size: the choice check reports it


__all__ = ["CUSTOM_SIZE", "MAX_WIDTH", "SIZES", "WIDTH_KEYS", "WIDTH_PRESETS", "merge_flat",
           "resolve_widths"]
