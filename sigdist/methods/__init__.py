"""The training methods, one class each, registered by the ``method`` values they train:
the paper's (:mod:`sigdist.methods.paper`) and its Table 1 baselines
(:mod:`sigdist.methods.baselines`). A new method is one :class:`Method` subclass listed here."""

from __future__ import annotations

from sigdist.methods.base import Method, TrainingContext
from sigdist.methods.baselines import VAE, VEEGAN, UnrolledGAN
from sigdist.methods.paper import GAN, SIG, WGANGP

METHOD_CLASSES: dict[str, type[Method]] = {
    name: cls for cls in (SIG, GAN, WGANGP, VAE, VEEGAN, UnrolledGAN) for name in cls.names}


def build_method(ctx: TrainingContext) -> Method:
    """The method ``ctx.cfg.method`` names, built on the run's context."""
    return METHOD_CLASSES[ctx.cfg.method](ctx)


__all__ = ["GAN", "METHOD_CLASSES", "SIG", "VAE", "VEEGAN", "WGANGP", "Method",
           "TrainingContext", "UnrolledGAN", "build_method"]
