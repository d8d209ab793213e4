"""The training loop of every method (:mod:`sigdist.methods`: SIG, GAN, GAN-SI, WGAN-GP,
WGAN-GP-SI and the Table 1 baselines), which it serves as their training context.

It knows nothing of Ray, MLflow or the command line: callers pass a ``report`` callback that
receives each periodic evaluation and may save a checkpoint with :meth:`Trainer.save`.

Randomness: model initialisation draws from ``torch.manual_seed(cfg.seed)``; every training draw
(data batches, noise, gradient-penalty mixing) comes from one ``torch.Generator`` whose state is
checkpointed, so a resumed run continues exactly as the uninterrupted one. Evaluation draws from
its own generator, seeded afresh each time, so evaluating never changes the training trajectory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from sigdist.config import Config, ConfigError, from_flat, member_seeds
from sigdist.data import DataSet, sample_gamma
from sigdist.evaluation import Scorer, build_data, build_scorer
from sigdist.methods import Method, build_method
from sigdist.methods.base import adam
from sigdist.metrics.members import summarize_members
from sigdist.metrics.names import METRICS
from sigdist.models import build_generator, likelihood_params
from sigdist.models.population import Population
from sigdist.schedules import lr_factor

CHECKPOINT_FORMAT = 1
CHECKPOINT_FILE = "checkpoint.pt"  # a checkpoint's name in a study's folders and MLflow runs
EVAL_CHUNK = 1000  # samples generated at once for an evaluation
# Offset between the training and evaluation seeds, so that the two streams never coincide.
_EVAL_SEED_OFFSET = 1_000_003


class DivergenceError(RuntimeError):
    """A loss became NaN or infinite; the message names the loss, the step and, in a seed
    population, the member (its index and seed)."""

    def __init__(self, step: int, name: str, value: float,
                 member: tuple[int, int] | None = None) -> None:
        where = f"member {member[0]} (seed {member[1]}): " if member is not None else ""
        super().__init__(f"training diverged at step {step}: {where}{name} is {value}")
        self.step, self.name, self.value, self.member = step, name, value, member

    def __reduce__(self):  # picklable, so it crosses process boundaries (Ray) intact
        return type(self), (self.step, self.name, self.value, self.member)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config key 'run.device': got 'cuda' but no CUDA device is available; "
                          "allowed here: auto, cpu")
    return torch.device(name)


ReportFn = Callable[["Trainer", dict[str, float]], None]
StepFn = Callable[["Trainer", dict[str, float]], None]


class Trainer:
    """One run: the generator and its optimiser, the method (its own networks and step), the
    random stream and the step counter; the :class:`sigdist.methods.TrainingContext` of its
    method."""

    def __init__(self, cfg: Config, device: torch.device | str | None = None, *,
                 data: DataSet | None = None) -> None:
        """``data`` replaces the data set named by ``data.name`` (benchmarks use it)."""
        self.device = torch.device(device) if device is not None else resolve_device(
            cfg.run.device)
        if data is None:
            data, cfg = build_data(cfg, self.device)
        self.cfg = cfg
        self.data: DataSet = data
        self._scorer: Scorer | None = None
        self.data_shape: tuple[int, ...] = tuple(self.data.shape)
        self.seeds = member_seeds(cfg)  # one seed per member: (seed,) for a single run
        self.population = len(self.seeds) > 1
        kernels = cfg.run.member_kernels
        self._vmap = kernels == "vmap" or (kernels == "auto" and self.device.type == "cuda")
        # member i's weights draw from its seed as the single run's do: the generator first,
        # then the method's networks (each member's initialisation stream kept in between)
        self._init_states: list[torch.Tensor] = []
        self.generator = self.network(lambda: build_generator(cfg, self.data_shape), first=True)
        # run.channels_last: image tensors and convolution weights in NHWC, which tensor cores
        # prefer; run.bf16: the networks' forward passes under bf16 autocast (losses in fp32).
        self.channels_last = cfg.run.channels_last and len(self.data_shape) == 3
        layout = torch.channels_last if self.channels_last else torch.preserve_format
        self.generator.to(memory_format=layout)
        self.noise_dim: int = self.generator.noise_dim
        self.opt_g = adam(self, self.generator.parameters(), cfg.train.lr)
        # every training draw of member i comes from its own stream: a list of P for a population
        streams = [torch.Generator(self.device).manual_seed(seed) for seed in self.seeds]
        self.rng: torch.Generator | list[torch.Generator] = (
            streams if self.population else streams[0])
        self.step = 0
        # its networks are built after the generator: initialisation draws keep their order
        self.method: Method = build_method(self)
        self._window = LossWindow()

    # ----------------------------------------------------------------- the methods' context
    def network(self, build: Callable[[], nn.Module], *, first: bool = False) -> nn.Module:
        """A network of the run on its device: ``build()`` under each member's initialisation
        stream, stacked into a :class:`Population` when the run has several members."""
        if not self.population:
            if first:
                torch.manual_seed(self.seeds[0])
            return build().to(self.device)
        members = []
        for index, seed in enumerate(self.seeds):
            if first:
                torch.manual_seed(seed)
            else:
                torch.set_rng_state(self._init_states[index])
            members.append(build())
            state = torch.get_rng_state()
            if first:
                self._init_states.append(state)
            else:
                self._init_states[index] = state
        return Population(members, batched=self._vmap).to(self.device)

    def noise(self, n: int, rng: torch.Generator | list[torch.Generator]) -> torch.Tensor:
        """(n, noise_dim) from ``rng``; from a list of member streams, (P, n, noise_dim)."""
        if isinstance(rng, list):
            return torch.stack([self.noise(n, stream) for stream in rng])
        return torch.randn(n, self.noise_dim, generator=rng, device=self.device)

    def psi(self, noise: torch.Tensor, net: Callable | None = None) -> torch.Tensor:
        """Generator output shaped as the likelihood's parameters, (K, *data_shape[, 2]) (a
        population: (P, K, ...)); ``net`` replaces the generator (one member's)."""
        out = (net or self.generator)(noise)
        if likelihood_params(self.cfg.loss.likelihood) > 1:
            return out.view(*noise.shape[:-1], *self.data_shape, -1)
        return out

    def data_batch(self, n: int) -> torch.Tensor:
        """n data points from the training stream; a population: (P, n, ...), each member's
        from its own stream."""
        if self.population:
            return torch.stack([self.data.sample(n, stream, device=self.device)
                                for stream in self.rng])
        batch = self.data.sample(n, self.rng, device=self.device)
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch

    def per_member(self, loss: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        """``loss`` of one member's tensors, applied to each member's slice (P values) of a
        population's tensors (batched as the networks are: ``run.member_kernels``); the loss
        itself for a single run."""
        if not self.population:
            return loss
        if self._vmap:
            return torch.func.vmap(loss)
        return lambda *tensors: torch.stack(
            [loss(*member) for member in zip(*(t.unbind(0) for t in tensors), strict=True)])

    def autocast(self):
        """run.bf16: the networks' forward passes under bf16 autocast; else nothing."""
        if not self.cfg.run.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def g(self, noise: torch.Tensor) -> torch.Tensor:
        """The generator in training (run.bf16: under autocast; its output back in fp32)."""
        with self.autocast():
            return self.generator(noise).float()

    def generate(self, n: int, *, seed: int | None = None, batch_size: int = 10_000,
                 member: int = 0) -> torch.Tensor:
        """n generated samples on the CPU, from the generator in eval mode (batch norm on its
        running statistics: samples then do not depend on how they were batched, and drawing
        them leaves the training state untouched).

        For the Gaussian likelihood a sample is psi = T(eps) itself (the mean, as image models
        report theirs); for count likelihoods it is x ~ p(x | psi). A population's samples
        are those of ``member`` (the single run of its seed draws the same).
        """
        return torch.cat(list(self.iter_generate(n, seed=seed, batch_size=batch_size,
                                                 member=member)))

    @torch.no_grad()
    def iter_generate(self, n: int, *, seed: int | None = None, batch_size: int = 10_000,
                      member: int = 0):
        """The samples of :meth:`generate`, as CPU chunks of at most ``batch_size``: memory
        stays O(batch_size) for any n."""
        if not 0 <= member < len(self.seeds):
            raise ValueError(f"member {member}: this run has members 0 to {len(self.seeds) - 1}")
        rng = torch.Generator(self.device).manual_seed(
            self.seeds[member] + _EVAL_SEED_OFFSET if seed is None else seed)
        net = self.generator.member(member) if self.population else None
        was_training = self.generator.training
        self.generator.eval()
        try:
            for start in range(0, n, batch_size):
                psi = self.psi(self.noise(min(batch_size, n - start), rng), net)
                yield self._observe(psi, rng).cpu()
        finally:
            self.generator.train(was_training)

    def _observe(self, psi: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        likelihood = self.cfg.loss.likelihood
        if likelihood == "gaussian":
            return psi
        if likelihood == "poisson":
            return torch.poisson(psi.exp(), generator=rng)
        # Negative binomial as a Poisson-Gamma mixture: rate ~ Gamma(r, scale p / (1 - p)).
        r, logit_p = psi[..., 0].exp(), psi[..., 1]
        rate = sample_gamma(r, rng) * logit_p.exp()
        return torch.poisson(rate, generator=rng)

    # ----------------------------------------------------------------- one step
    def train_step(self) -> dict[str, torch.Tensor]:
        """One optimisation step of the method, every learning rate on the schedule; returns
        the step's losses as 0-d tensors (not yet synced)."""
        factor = lr_factor(self.cfg, self.step)
        for optimiser, base in ((self.opt_g, self.cfg.train.lr), *self.method.optimisers()):
            for group in optimiser.param_groups:
                group["lr"] = base * factor
        return self.method.step()

    # ----------------------------------------------------------------- the loop
    def evaluate(self, *, final: bool = True) -> dict[str, float]:
        """The data set's metrics on ``run.eval_samples`` generated samples (Tables 1-3), or
        on ``run.eval_samples_intermediate`` (where set) for an evaluation before the last.
        A population scores every member: each metric's mean over the members, its standard
        error, its worst member and each member's value (:func:`summarize_members`)."""
        if self._scorer is None:  # built on first use: mnist3 loads (or trains) its classifier
            self._scorer = build_scorer(self.cfg, self.data, self.device)
        run = self.cfg.run
        n = run.eval_samples if final or not run.eval_samples_intermediate else (
            run.eval_samples_intermediate)
        score_chunks = getattr(self._scorer, "score_chunks", None)  # a streaming scorer

        def score(member: int) -> dict[str, float]:
            # generated 1,000 at a time: on a CPU 1.8 x faster than 10,000 (the layers' outputs
            # stay in cache) and the same samples (docs/results/populations.md)
            if score_chunks is not None:
                return score_chunks(self.iter_generate(n, batch_size=EVAL_CHUNK, member=member),
                                    n)
            return self._scorer(self.generate(n, batch_size=EVAL_CHUNK, member=member))

        if not self.population:
            return score(0)
        # the registry's metrics in full; by-products (entropies, sample counts): the mean
        return summarize_members([score(member) for member in range(len(self.seeds))],
                                 self.seeds, spread=METRICS.__contains__,
                                 per_seed=METRICS.__contains__)

    def fit(self, report: ReportFn | None = None, on_step: StepFn | None = None
            ) -> dict[str, float]:
        """Train up to ``train.steps``; evaluate every ``run.eval_every`` steps and at the end.

        ``report(trainer, metrics)`` receives each evaluation: the data set's metrics, the mean
        of each loss since the previous evaluation, and ``step``. Returns the last evaluation.
        The losses stay on the device between checks (``run.check_every`` steps, and before
        each evaluation); ``on_step(trainer, losses)`` takes them as floats every step, at the
        cost of a wait for the device each time. A divergence raises :class:`DivergenceError`
        at the next check, naming the step where it began.
        """
        cfg = self.cfg
        metrics: dict[str, float] = {}
        self.generator.train()
        while self.step < cfg.train.steps:
            step_losses = self.train_step()
            self.step += 1
            self._window.add(self.step, step_losses, self.seeds)
            if on_step is not None:
                self._window.raise_if_diverged()
                # a population's: each loss's mean over the members
                on_step(self, {k: float(v.mean()) for k, v in step_losses.items()})
            evaluating = self.step % cfg.run.eval_every == 0 or self.step == cfg.train.steps
            if evaluating or self.step % cfg.run.check_every == 0:
                self._window.raise_if_diverged()
            if evaluating:
                losses = self._window.means()
                if self.population:
                    # each seed's curve; no spread (fewer rows in MLflow's views)
                    losses = summarize_members(losses, self.seeds, spread=lambda name: False)
                metrics = {**self.evaluate(final=self.step == cfg.train.steps),
                           **(losses if self.population else losses[0]), "step": self.step}
                if report is not None:
                    report(self, metrics)
        return metrics

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.cfg.to_flat(),
            "step": self.step,
            "generator": self.generator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            # a population: (P, L), member i's stream in row i
            "rng": (torch.stack([stream.get_state() for stream in self.rng])
                    if self.population else self.rng.get_state()),
            **self.method.state_dict(),  # its networks and optimisers, under their own names
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint's state; one whose weights do not fit this run's networks (or
        lack the discriminator of an adversarial method) raises :class:`CheckpointError`."""
        try:
            self.generator.load_state_dict(state["generator"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.method.load_state_dict(state)
            if self.population:
                if tuple(state["rng"].shape[:1]) != (len(self.rng),):
                    raise ValueError(f"random streams for {len(state['rng'])} members, this "
                                     f"run has {len(self.rng)}")
                for stream, saved in zip(self.rng, state["rng"], strict=True):
                    stream.set_state(saved.clone())  # a row of its own storage
            else:
                self.rng.set_state(state["rng"])
            self.step = int(state["step"])
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            raise CheckpointError(
                f"the checkpoint does not fit a {self.cfg.method} run on {self.cfg.data.name}"
                f" ({type(err).__name__}: {str(err).splitlines()[0][:300]})") from None

    def save(self, path: str) -> None:
        """Write the checkpoint atomically (a crash mid-write leaves the previous one intact)."""
        tmp = f"{path}.{os.getpid()}.tmp"  # one temp file per writer
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)

    @classmethod
    def from_checkpoint(cls, path: str, *, device: torch.device | str | None = None,
                        overrides: dict[str, Any] | None = None) -> Trainer:
        """Rebuild a run from its checkpoint; ``overrides`` may change e.g. ``train.steps``.
        An unusable checkpoint raises :class:`CheckpointError`, a bad override ConfigError."""
        state = load_checkpoint(path)
        try:
            cfg = from_flat(state["config"])
        except ConfigError as err:
            raise CheckpointError(f"{path} holds an invalid config ({err})") from None
        trainer = cls(cfg.replace(**(overrides or {})), device=device)
        trainer.load_state_dict(state)
        return trainer


class LossWindow:
    """The losses of the steps since the last evaluation, kept on their device: their sums,
    and the first step (with its value) at which each became NaN or infinite, per member of a
    seed population (a loss of P values). Adding a step never waits for the device;
    :meth:`raise_if_diverged` and :meth:`means` do, once."""

    def __init__(self) -> None:
        self.names: tuple[str, ...] = ()
        self.seeds: tuple[int, ...] = ()
        self.count = 0

    def add(self, step: int, losses: dict[str, torch.Tensor],
            seeds: tuple[int, ...] = (0,)) -> None:
        """One step's losses: 0-d tensors, or (P,) for the members of ``seeds``."""
        values = torch.stack([v.detach().double().reshape(-1) for v in losses.values()])
        if tuple(losses) != self.names:  # the first step (a method's losses never change)
            self.raise_if_diverged()
            self.names, self.seeds, self.count = tuple(losses), tuple(seeds), 0
            self.sums = torch.zeros_like(values)
            self.bad_step = torch.zeros_like(values)  # 0: finite so far
            self.bad_value = torch.zeros_like(values)
        newly = ~torch.isfinite(values) & (self.bad_step == 0)
        self.bad_step = torch.where(newly, torch.full_like(values, step), self.bad_step)
        self.bad_value = torch.where(newly, values, self.bad_value)
        self.sums += values
        self.count += 1

    def raise_if_diverged(self) -> None:
        if not self.names:
            return
        steps, values = self.bad_step.tolist(), self.bad_value.tolist()
        diverged = [(int(step), name, value, member)
                    for name, member_steps, member_values in zip(self.names, steps, values,
                                                                 strict=True)
                    for member, (step, value) in enumerate(zip(member_steps, member_values,
                                                               strict=True)) if step]
        if diverged:
            step, name, value, member = min(diverged, key=lambda item: (item[0], item[3]))
            where = (member, self.seeds[member]) if len(self.seeds) > 1 else None
            raise DivergenceError(step, name, value, where)

    def means(self) -> list[dict[str, float]]:
        """Each member's mean of each loss over the window, which then starts afresh."""
        if not self.names:
            return [{}]
        means = (self.sums / max(1, self.count)).T.tolist()
        self.sums.zero_()
        self.count = 0
        return [dict(zip(self.names, member, strict=True)) for member in means]


class CheckpointError(ValueError):
    """A file that is no usable sigdist checkpoint: unreadable, of another format, missing a
    part, or holding weights that do not fit its own config."""


def remove_stale_temps(path: str) -> list[str]:
    """Remove the temp files ``<path>.<pid>.tmp`` that writers killed mid-save left behind;
    call only while holding the run's lock. Returns the removed paths."""
    import glob

    stale = glob.glob(glob.escape(path) + ".*.tmp")
    for tmp in stale:
        os.remove(tmp)
    return stale


_CHECKPOINT_PARTS = ("config", "step", "generator", "opt_g", "rng")


def load_checkpoint(path: str) -> dict[str, Any]:
    """The checkpoint at ``path`` (weights only: no pickled code runs), checked for its parts."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # empty, truncated, not a torch file, or unsafe pickle content
        # not torch's text: it can advise weights_only=False, which would run the file's code
        raise CheckpointError(f"{path} is not a sigdist checkpoint (not a file torch.save "
                              f"wrote, a torn one, or one holding more than weights: "
                              f"{type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a sigdist checkpoint (format {CHECKPOINT_FORMAT})")
    missing = [part for part in _CHECKPOINT_PARTS if part not in state]
    if missing or not isinstance(state["config"], dict):
        raise CheckpointError(f"{path} lacks {', '.join(missing) or 'a config'}; it is no "
                              "complete sigdist checkpoint")
    step = state["step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path} holds step {step!r}; a sigdist checkpoint's step is a "
                              "whole number >= 0 (the file is malformed)")
    return state
