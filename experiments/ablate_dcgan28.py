"""Why a Stacked-MNIST DCGAN pair collapses: walk from one architecture to another a difference
at a time, each a short seeded DCGAN run (the project's own GAN step, data and Table 2 metrics,
26,000 samples), and print the table that docs/stacked_mnist.md reports.

    python experiments/ablate_dcgan28.py [--steps 800] [--seeds 0] [--workers 2] [--json OUT]
        [--only NAME ...]

Every variant is described by the switches of :class:`Arch`; the walk starts at the pair the
project first used (Appendix C's shape at (Kg, Kd) = (1, 1)) and ends at a textbook DCGAN
(generator z(100) -> 7x7x256 -> 14x14x128 -> 28x28x3, discriminator 64 -> 128 -> 1, batch norm).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Arch:
    """One generator / discriminator pair on 28 x 28 x 3, by its differences."""

    width_g: float = 1.0  # multiplies the generator widths 64, 32, 8 (Appendix C)
    width_d: float = 1.0  # multiplies the discriminator widths 8, 16, 32 (Appendix C)
    fc_bottleneck: bool = True  # z -> FC 4x4x64 -> TConv k4 s1 -> 7x7 (else z -> 7x7 directly)
    extra_layers: bool = True  # G: TConv 8*Kg + Conv k4 'same' at 28x28; D: a third conv, s1
    d_batchnorm: bool = False  # batch norm after the discriminator's inner convolutions
    noise_dim: int = 256
    scaled_tanh: bool = False  # output (tanh(u) + 1) / 2 instead of sigmoid(u)


def _w(base: int, mult: float) -> int:
    return max(1, int(round(base * mult)))


def build_pair(arch: Arch):
    import torch
    from torch import nn

    class Generator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.noise_dim = arch.noise_dim
            w1, w2, w3 = _w(64, arch.width_g), _w(32, arch.width_g), _w(8, arch.width_g)
            layers: list[nn.Module] = []
            if arch.fc_bottleneck:
                layers += [nn.Linear(arch.noise_dim, 4 * 4 * 64), nn.ReLU(),
                           nn.Unflatten(1, (64, 4, 4)),
                           nn.ConvTranspose2d(64, w1, 4, stride=1, padding=0)]
            else:
                layers += [nn.Unflatten(1, (arch.noise_dim, 1, 1)),
                           nn.ConvTranspose2d(arch.noise_dim, w1, 7, stride=1, padding=0)]
            layers += [nn.BatchNorm2d(w1), nn.ReLU(),
                       nn.ConvTranspose2d(w1, w2, 4, stride=2, padding=1), nn.BatchNorm2d(w2),
                       nn.ReLU()]
            if arch.extra_layers:
                layers += [nn.ConvTranspose2d(w2, w3, 4, stride=2, padding=1), nn.BatchNorm2d(w3),
                           nn.ReLU(), nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(w3, 3, 4)]
            else:
                layers += [nn.ConvTranspose2d(w2, 3, 4, stride=2, padding=1)]
            self.net = nn.Sequential(*layers)

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            u = self.net(z)
            return (torch.tanh(u) + 1) / 2 if arch.scaled_tanh else torch.sigmoid(u)

    class Discriminator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            w1, w2, w3 = _w(8, arch.width_d), _w(16, arch.width_d), _w(32, arch.width_d)
            norm = (lambda c: nn.BatchNorm2d(c)) if arch.d_batchnorm else (lambda c: nn.Identity())
            layers: list[nn.Module] = [nn.Conv2d(3, w1, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
                                       nn.Conv2d(w1, w2, 4, stride=2, padding=1), norm(w2),
                                       nn.LeakyReLU(0.2)]
            last = w2
            if arch.extra_layers:
                layers += [nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(w2, w3, 4), norm(w3),
                           nn.LeakyReLU(0.2)]
                last = w3
            layers += [nn.Flatten(), nn.Linear(last * 7 * 7, 1)]
            self.net = nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x).squeeze(-1)

    return Generator(), Discriminator()


LANDED = Arch()
TEXTBOOK = Arch(width_g=4, width_d=8, fc_bottleneck=False, extra_layers=False, d_batchnorm=True,
                noise_dim=100, scaled_tanh=True)


def variants() -> list[tuple[str, Arch]]:
    """Two walks: landed -> textbook adding one difference at a time (widths last, so that each
    shape change is seen at the small widths), and textbook minus one difference at a time."""
    forward = [("landed M (Kg 1, Kd 1)", LANDED)]
    steps = [("- FC 4x4x64 bottleneck", dict(fc_bottleneck=False)),
             ("- extra stride-1 k4 layers", dict(extra_layers=False)),
             ("+ batch norm in D", dict(d_batchnorm=True)),
             ("noise 256 -> 100", dict(noise_dim=100)),
             ("sigmoid -> scaled tanh", dict(scaled_tanh=True)),
             ("widths x4 (G) / x8 (D): textbook", dict(width_g=4, width_d=8))]
    arch = LANDED
    for name, change in steps:
        arch = dataclasses.replace(arch, **change)
        forward.append((name, arch))
    assert arch == TEXTBOOK
    backward = [
        ("textbook + FC 4x4x64 bottleneck", dataclasses.replace(TEXTBOOK, fc_bottleneck=True)),
        ("textbook + extra stride-1 layers", dataclasses.replace(TEXTBOOK, extra_layers=True)),
        ("textbook - batch norm in D", dataclasses.replace(TEXTBOOK, d_batchnorm=False)),
        ("textbook, noise 256", dataclasses.replace(TEXTBOOK, noise_dim=256)),
        ("textbook, sigmoid", dataclasses.replace(TEXTBOOK, scaled_tanh=False)),
        ("textbook shape, D x1 (G x4)", dataclasses.replace(TEXTBOOK, width_d=1)),
        ("textbook shape, G x1 (D x8)", dataclasses.replace(TEXTBOOK, width_g=1)),
        ("textbook shape, G x1, D x1", dataclasses.replace(TEXTBOOK, width_g=1, width_d=1)),
        ("landed shape, G x4, D x8", dataclasses.replace(LANDED, width_g=4, width_d=8)),
    ]
    return forward + backward


def run_one(job: tuple[str, Arch, int, int, str]) -> dict:
    import torch

    from sigdist.config import from_assignments
    from sigdist.train import Trainer

    name, arch, seed, steps, method = job
    torch.set_num_threads(1)
    cfg = from_assignments(["data.name=mnist3", "data.source=mnist-5k", f"method={method}",
                            f"seed={seed}", f"train.steps={steps}", f"run.eval_every={steps}",
                            "run.device=cpu"])
    trainer = Trainer(cfg)
    torch.manual_seed(seed)
    trainer.generator, trainer.method.discriminator = build_pair(arch)
    trainer.noise_dim = arch.noise_dim
    adam = dict(lr=cfg.train.lr, betas=(cfg.train.beta1, cfg.train.beta2))
    trainer.opt_g = torch.optim.Adam(trainer.generator.parameters(), **adam)
    trainer.method.opt_d = torch.optim.Adam(trainer.method.discriminator.parameters(), **adam)
    last_step = {}
    start = time.perf_counter()
    metrics = trainer.fit(on_step=lambda t, _: last_step.update(t=time.perf_counter()))
    wall = last_step["t"] - start  # training only, not the evaluation
    return {"name": name, "arch": dataclasses.asdict(arch), "seed": seed, "method": method,
            "steps": steps, "wall_s": wall, **metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--method", default="gan", choices=["gan", "gan_si"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="+", default=None, help="variant names to run")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    chosen = [(n, a) for n, a in variants() if args.only is None or n in args.only]
    jobs = [(n, a, s, args.steps, args.method) for n, a in chosen for s in args.seeds]
    print(f"{len(jobs)} runs: {args.method}, {args.steps} steps, seeds {args.seeds}, mnist-5k, "
          "26,000 samples each", flush=True)
    print(f"{'variant':36s} {'seed':>4s} {'modes':>6s} {'KL':>6s} {'HQ':>6s} {'ms/step':>8s}")
    results = []
    with ProcessPoolExecutor(args.workers) as pool:
        for r in pool.map(run_one, jobs):
            results.append(r)
            print(f"{r['name']:36s} {r['seed']:4d} {r['modes']:6.0f} {r['kl']:6.2f} "
                  f"{r['high_quality']:6.3f} {1000 * r['wall_s'] / r['steps']:8.1f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
