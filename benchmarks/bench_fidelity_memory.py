"""Peak memory of a 50,000-sample CIFAR-10 evaluation (inception score + FID): sigdist's
streaming path against torch-fidelity's own collect-then-compute path, in one run.

Each measurement runs in a fresh process that builds the same generator (the CIFAR DCGAN at
width 1, random weights: the cost does not depend on what it learned) and reports its peak
resident memory (ru_maxrss) before and after the evaluation:

* ``streaming``: ``FidelityScorer.score_chunks(Trainer.iter_generate(n), n)``, the path every
  evaluation of a run takes;
* ``library``: torch-fidelity's ``get_featuresdict_from_generative_model`` (what
  ``calculate_metrics`` does with a generator), then its ``isc_featuresdict_to_metric``,
  ``fid_featuresdict_to_statistics`` and ``fid_statistics_to_metric`` on the collected
  features;
* ``inception``: the streaming path through torch-fidelity's real Inception network (random
  weights written to a temporary file; the numbers are meaningless, the memory is the
  network's) on ``--inception-samples`` samples: what one batch of the network adds.

The first two use an extractor with Inception's output widths (2,048 pool features, 1,008
logits) and almost no cost (a fixed linear map of 4 x 4 average-pooled pixels), so that 50,000
samples take seconds on a CPU and the difference is the features' storage alone: torch-fidelity
keeps n x 2,048 float32 features and n x 1,008 logits, then a float64 copy of the features for
``np.cov`` and three float64 n x 1,008 arrays for the score.

    python benchmarks/bench_fidelity_memory.py [--samples 50000] [--inception-samples 128]
        [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def shaped_extractor_class():
    """A torch-fidelity feature extractor with Inception's output widths and a trivial cost."""
    import torch
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

    class Shaped(FeatureExtractorBase):
        def __init__(self, name="shaped-2048", features_list=("2048", "logits_unbiased"),
                     **kwargs):
            super().__init__(name, list(features_list))
            generator = torch.Generator().manual_seed(0)
            self.to_features = torch.randn(48, 2048, generator=generator)
            self.to_logits = torch.randn(2048, 1008, generator=generator) / 45

        @staticmethod
        def get_provided_features_list():
            return "2048", "logits_unbiased"

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return {"isc": "logits_unbiased", "fid": "2048"}[metric]

        @staticmethod
        def can_be_compiled():
            return False

        def forward(self, images):
            pooled = torch.nn.functional.avg_pool2d(images.float() / 255, 8).flatten(1)
            features = pooled @ self.to_features
            outputs = {"2048": features, "logits_unbiased": features @ self.to_logits}
            return tuple(outputs[name] for name in self.features_list)

    return Shaped


def child(mode: str, samples: int) -> dict:
    import numpy as np
    import torch

    from sigdist.config import from_flat
    from sigdist.data.cifar10 import Cifar10
    from sigdist.metrics.fidelity import FidelityScorer
    from sigdist.train import Trainer

    torch.set_num_threads(1)
    cfg = from_flat({"data.name": "cifar10", "method": "gan", "run.device": "cpu",
                     "metrics.extractor": "stand-in"})
    data = Cifar10.from_arrays(torch.zeros(10, 3, 32, 32, dtype=torch.uint8),
                               torch.zeros(10, dtype=torch.int64), "cpu")
    trainer = Trainer(cfg, data=data)
    if mode == "inception":
        from unittest import mock

        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        with mock.patch.object(FeatureExtractorInceptionV3, "load_state_dict",
                               lambda self, state: None), mock.patch(
                "torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url",
                lambda *a, **k: {}):
            random_net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
        weights = tempfile.NamedTemporaryFile(suffix=".pth", delete=False).name
        torch.save(random_net.state_dict(), weights)
        del random_net
        extractor = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048", "logits_unbiased"],
            feature_extractor_weights_path=weights)
        Path(weights).unlink()
    else:
        extractor = shaped_extractor_class()()
    reference = {"mu": np.zeros(2048), "sigma": np.eye(2048)}
    before = peak_mb()
    start = time.perf_counter()
    if mode == "library":
        from torch_fidelity import GenerativeModelModuleWrapper
        from torch_fidelity.metric_fid import (
            fid_featuresdict_to_statistics,
            fid_statistics_to_metric,
        )
        from torch_fidelity.metric_isc import isc_featuresdict_to_metric
        from torch_fidelity.utils import get_featuresdict_from_generative_model

        class Uint8Generator(torch.nn.Module):
            def __init__(self, generator):
                super().__init__()
                self.generator = generator.eval()

            def forward(self, noise):
                return self.generator(noise).mul(255).round().clamp(0, 255).to(torch.uint8)

        wrapped = GenerativeModelModuleWrapper(Uint8Generator(trainer.generator),
                                               trainer.noise_dim, "normal", 0)
        features = get_featuresdict_from_generative_model(wrapped, extractor, samples, 64,
                                                          False, 2020, False)
        isc_featuresdict_to_metric(features, "logits_unbiased", isc_splits=10,
                                   samples_shuffle=True, rng_seed=2020, verbose=False)
        stats = fid_featuresdict_to_statistics(features, "2048")
        fid_statistics_to_metric({key: np.asarray(value, np.float64) for key, value in
                                  stats.items()}, reference, False)
    else:
        scorer = FidelityScorer(extractor, reference, device="cpu", batch_size=64)
        scorer.score_chunks(trainer.iter_generate(samples, batch_size=1000), samples)
    return {"mode": mode, "samples": samples, "seconds": time.perf_counter() - start,
            "peak_mb_before": before, "peak_mb": peak_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--inception-samples", type=int, default=128)
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return
    rows = []
    for mode, samples in (("streaming", args.samples), ("library", args.samples),
                          ("inception", args.inception_samples)):
        out = subprocess.run([sys.executable, __file__, "--child", mode, str(samples)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'path':>10s} {'samples':>8s} {'seconds':>8s} {'peak MB before':>15s} "
          f"{'peak MB':>8s} {'added MB':>9s}")
    for row in rows:
        print(f"{row['mode']:>10s} {row['samples']:8d} {row['seconds']:8.1f} "
              f"{row['peak_mb_before']:15.0f} {row['peak_mb']:8.0f} "
              f"{row['peak_mb'] - row['peak_mb_before']:9.0f}")
    added = [row["peak_mb"] - row["peak_mb_before"] for row in rows]
    print(f"added peak memory, streaming / library at {args.samples} samples: "
          f"{added[0] / max(1.0, added[1]):.3f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
