"""Inception score and FID (Table 3): the streaming path against known answers and against
torch-fidelity's own functions, with small feature extractors built here and handed to the same
code; torch-fidelity's real Inception where its weights are present; the missing-weights error."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn
from torch_fidelity.metric_fid import fid_features_to_statistics
from torch_fidelity.metric_isc import isc_features_to_metric

from sigdist.config import from_flat
from sigdist.data.cifar10 import load_cifar10, write_stand_in
from sigdist.metrics.fidelity import (
    FidelityScorer,
    InceptionWeightsUnavailable,
    build_extractor,
    extract_streaming,
    frechet_distance,
    inception_cache_path,
    reference_statistics,
    resolve_inception_weights,
)

CLASSES = 10


class ClassOfFirstPixel(nn.Module):
    """Confident predictions: class = the red value of pixel (0, 0) mod 10; features = each
    channel's mean intensity (a linear function of the image)."""

    def forward(self, images):
        floats = images.float()
        logits = torch.full((len(images), CLASSES), -30.0)
        logits[torch.arange(len(images)), images[:, 0, 0, 0].long() % CLASSES] = 30.0
        return floats.mean(dim=(2, 3)), logits


def images_of_classes(classes: np.ndarray, level: int = 100) -> torch.Tensor:
    images = torch.full((len(classes), 3, 32, 32), level, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.as_tensor(classes, dtype=torch.uint8)
    return images


def inception_score(images, splits=10, batch_size=64):
    _, score = extract_streaming([images], ClassOfFirstPixel(), count=len(images),
                                 batch_size=batch_size, device="cpu", splits=splits)
    return score.result()[0]


def test_one_class_scores_one_and_every_class_equally_scores_the_class_count():
    assert inception_score(images_of_classes(np.full(1000, 3))) == pytest.approx(1.0, abs=1e-9)
    balanced = images_of_classes(np.arange(1000) % CLASSES)
    assert inception_score(balanced, splits=1) == pytest.approx(CLASSES, rel=1e-9)
    # ten random splits of 100 are balanced only roughly: a little below 10
    assert 9.0 < inception_score(balanced) < CLASSES


def test_inception_score_is_torch_fidelitys_and_independent_of_batching():
    logits = torch.randn(1003, 1008, generator=torch.Generator().manual_seed(0)) * 4

    class Logits(nn.Module):  # each image carries its own row of logits, by index
        def forward(self, images):
            rows = images[:, 0, 0, 0].long() * 256 + images[:, 0, 0, 1].long()
            return logits[rows, :8], logits[rows]

    index = torch.arange(1003)
    images = torch.zeros(1003, 3, 32, 32, dtype=torch.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = index // 256, index % 256
    expected = isc_features_to_metric(logits, splits=10, shuffle=True, rng_seed=2020)
    for batch_size in (7, 64, 1003):
        _, score = extract_streaming([images[:500], images[500:]], Logits(), count=1003,
                                     batch_size=batch_size, device="cpu")
        mean, std = score.result()
        assert mean == pytest.approx(expected["inception_score_mean"], rel=1e-12)
        assert std == pytest.approx(expected["inception_score_std"], rel=1e-9)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(40, 200, (600, 3, 32, 32), dtype=torch.uint8, generator=generator)
    extractor = ClassOfFirstPixel()
    reference = extract_streaming([images], extractor, count=None, batch_size=64,
                                  device="cpu")[0].statistics()
    scorer = FidelityScorer(extractor, reference, device="cpu", batch_size=50)
    assert scorer(images)["fid"] == pytest.approx(0.0, abs=1e-9)
    distances = [scorer(images + shift)["fid"] for shift in (1, 5, 20)]
    # features are channel means, so a shift s moves the mean by s per channel: FID = 3 s^2
    assert distances == pytest.approx([3.0, 75.0, 1200.0], rel=1e-6)
    # the same with the images in [0, 1] floats, as the generator gives them
    assert scorer(images.float() / 255)["fid"] == pytest.approx(0.0, abs=1e-9)


def test_streamed_statistics_are_torch_fidelitys():
    features = torch.randn(700, 32, generator=torch.Generator().manual_seed(2)) * 3 + 50

    class Rows(nn.Module):
        def forward(self, images):
            return features[images[:, 0, 0, 0].long() + 256 * images[:, 0, 0, 1].long()], \
                torch.zeros(len(images), 2)

    index = torch.arange(700)
    images = torch.zeros(700, 3, 32, 32, dtype=torch.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = index % 256, index // 256
    moments, _ = extract_streaming([images], Rows(), count=None, batch_size=33, device="cpu")
    streamed, library = moments.statistics(), fid_features_to_statistics(features)
    np.testing.assert_allclose(streamed["sigma"], library["sigma"], rtol=1e-9, atol=1e-9)
    # their mean is summed in float32 (to about 1e-6), ours in float64
    np.testing.assert_allclose(streamed["mu"], library["mu"], rtol=1e-5)
    np.testing.assert_allclose(streamed["mu"], features.double().mean(0).numpy(), rtol=1e-12)
    assert frechet_distance(streamed, library) == pytest.approx(0.0, abs=1e-6)


def test_reference_statistics_are_cached_once(tmp_path):
    images = torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(4))
    calls = []

    class Counting(ClassOfFirstPixel):
        def forward(self, batch):
            calls.append(len(batch))
            return super().forward(batch)

    path = str(tmp_path / "stats" / "reference.npz")
    first = reference_statistics(images, Counting(), path, batch_size=100, device="cpu")
    second = reference_statistics(images, Counting(), path, batch_size=100, device="cpu")
    assert calls == [100, 100, 100]  # the second call read the file
    np.testing.assert_array_equal(first["sigma"], second["sigma"])
    assert sorted(os.listdir(tmp_path / "stats")) == ["reference.npz", "reference.npz.lock"]


# ----------------------------------------------------------------- the Inception weights
def test_missing_weights_say_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(InceptionWeightsUnavailable) as error:
        resolve_inception_weights("", download=False)
    message = str(error.value)
    assert inception_cache_path() in message and "metrics.inception_weights=PATH" in message
    assert "https://github.com/toshas/torch-fidelity" in message
    with pytest.raises(InceptionWeightsUnavailable, match="no file at"):
        resolve_inception_weights(str(tmp_path / "absent.pth"))
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(10, 64)}, wrong)
    with pytest.raises(InceptionWeightsUnavailable, match="not the Inception weights"):
        resolve_inception_weights(str(wrong))
    assert not (tmp_path / "torch_home").exists()


def test_cli_train_without_weights_exits_2_before_training(tmp_path):
    root = tmp_path / "data"
    write_stand_in(str(root))
    out = tmp_path / "run"
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch_home")}
    result = subprocess.run(
        [sys.executable, "-m", "sigdist", "train", "--set", "data.name=cifar10",
         "--set", f"data.root={root}", "--set", "data.stand_in=true",
         "--set", "data.download=false", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2, result.stderr
    assert "metrics.inception_weights=PATH" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["data"]
    assert sorted(os.listdir(root)) == ["cifar-10-stand-in-batches-py"]


REAL_WEIGHTS = os.path.isfile(inception_cache_path())


@pytest.mark.skipif(not REAL_WEIGHTS, reason=f"torch-fidelity's Inception weights are not at "
                    f"{inception_cache_path()} (offline; see README, CIFAR-10)")
def test_real_inception_scores_the_stand_in_through_the_same_path(tmp_path):
    root = str(tmp_path)
    write_stand_in(root)
    cfg = from_flat({"data.name": "cifar10", "data.root": root, "data.stand_in": True})
    extractor, name = build_extractor(cfg, "cpu")
    assert name.startswith("inception-v3-compat-2048")
    images, _ = load_cifar10(root, stand_in=True)
    images = images[:40]
    reference = extract_streaming([images], extractor, count=None, batch_size=20,
                                  device="cpu")[0].statistics()
    scorer = FidelityScorer(extractor, reference, device="cpu", batch_size=20)
    metrics = scorer(images)
    assert metrics["fid"] == pytest.approx(0.0, abs=1e-3)
    assert 1.0 < metrics["inception_score"] < 1008
    collapsed = scorer(images[:1].repeat(40, 1, 1, 1))
    assert collapsed["inception_score"] == pytest.approx(1.0, abs=1e-6)
    assert collapsed["fid"] > 10
