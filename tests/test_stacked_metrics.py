"""Stacked-MNIST evaluation (Section 5.3, Table 2): the digit classifiers, their cache, and
the single-classifier and ensemble metrics on hand-made probabilities, real stacked digits, a
collapsed sampler and noise images.

The ensemble's classifiers are trained once per test session (mnist-5k, ~30 s on 2 CPU cores)
into a temporary cache; every other test reuses them or stubs training out.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

import sigdist.metrics.classifier as classifier_module
from sigdist.data.mnist import MnistDigits, load_mnist
from sigdist.data.stacked import StackedMNIST
from sigdist.metrics.classifier import (
    ENSEMBLE,
    LeNet,
    classifier_accuracy,
    classifier_cache_path,
    classify_channels,
    load_or_train_classifier,
    load_or_train_ensemble,
    train_classifier,
)
from sigdist.metrics.stacked import ensemble_metrics, evaluate_stacked_mnist, stacked_mnist_metrics

PLACE_VALUES = torch.tensor([100, 10, 1])


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> MnistDigits:
    return load_mnist(str(tmp_path_factory.mktemp("mnist")), "mnist-5k")


@pytest.fixture(scope="module")
def trained(digits: MnistDigits, mnist_root: str) -> tuple[torch.nn.Module, float, str]:
    """(classifier, held-out accuracy, cache root) after one real training run (the session's)."""
    classifier, accuracy = load_or_train_classifier(digits, mnist_root, seed=0)
    print(f"\nclassifier: held-out accuracy {accuracy:.4f}")
    return classifier, accuracy, mnist_root


@pytest.fixture(scope="module")
def held_out_stacked(digits: MnistDigits) -> StackedMNIST:
    # Held-out digits: 100 per class, so their triples are uniform over the 1,000 modes.
    return StackedMNIST.from_digits(digits.test_images, digits.test_labels, "cpu")


@pytest.fixture(scope="module")
def real_samples(held_out_stacked: StackedMNIST) -> tuple[torch.Tensor, torch.Tensor]:
    return held_out_stacked.sample_with_labels(26_000, torch.Generator().manual_seed(2024))


@pytest.fixture(scope="module")
def real_probs(trained, real_samples) -> torch.Tensor:
    return classify_channels(trained[0], real_samples[0])


# --- classifier and its cache -------------------------------------------------------------


def test_classifier_held_out_accuracy(trained, digits: MnistDigits) -> None:
    classifier, accuracy, _ = trained
    assert not classifier.training
    assert accuracy >= 0.97
    assert accuracy == classifier_accuracy(classifier, digits.test_images, digits.test_labels)


def test_cache_is_reused_without_training(trained, digits, monkeypatch) -> None:
    classifier, accuracy, root = trained
    path = classifier_cache_path(root, "mnist-5k", 0)
    before = os.stat(path)

    def no_training(*args, **kwargs):
        raise AssertionError("a valid cache must not be retrained")

    monkeypatch.setattr(classifier_module, "train_classifier", no_training)
    reloaded, reloaded_accuracy = load_or_train_classifier(digits, root, seed=0)
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert reloaded_accuracy == accuracy and not reloaded.training
    for (name, value), (_, loaded) in zip(classifier.state_dict().items(),
                                          reloaded.state_dict().items(), strict=True):
        assert torch.equal(value, loaded), name
    state = torch.load(path, weights_only=True)
    assert (state["format_version"], state["source"], state["seed"]) == (1, "mnist-5k", 0)


@pytest.mark.parametrize("bad_file", ["garbage", "wrong_version", "wrong_seed", "bad_weights",
                                      "wrong_arch"])
def test_unusable_cache_is_retrained(bad_file, digits, tmp_path, monkeypatch) -> None:
    path = classifier_cache_path(str(tmp_path), "mnist-5k", 0)
    os.makedirs(os.path.dirname(path))
    good = {"format_version": 1, "source": "mnist-5k", "seed": 0, "accuracy": 0.5,
            "state_dict": LeNet().state_dict()}
    if bad_file == "garbage":
        with open(path, "wb") as file:
            file.write(b"\x00not a torch file")
    else:
        changes = {"wrong_version": {"format_version": 999}, "wrong_seed": {"seed": 7},
                   "bad_weights": {"state_dict": {"fc2.weight": torch.zeros(3, 3)}},
                   "wrong_arch": {"arch": "mlp"}}[bad_file]
        torch.save({**good, **changes}, path)
    calls = []

    def quick_training(images, labels, *, seed, device, arch):  # stands in for the training
        calls.append(seed)
        torch.manual_seed(seed)
        return LeNet().eval()

    monkeypatch.setattr(classifier_module, "train_classifier", quick_training)
    classifier, accuracy = load_or_train_classifier(digits, str(tmp_path), seed=0)
    assert calls == [0] and 0 <= accuracy <= 1
    state = torch.load(path, weights_only=True)  # rewritten in the valid format
    assert state["format_version"] == 1 and state["accuracy"] == accuracy
    assert torch.equal(state["state_dict"]["fc2.weight"], classifier.fc2.weight)
    assert [name for name in os.listdir(os.path.dirname(path))] == [os.path.basename(path)]


def test_training_is_deterministic(digits, monkeypatch) -> None:
    monkeypatch.setattr(classifier_module, "MIN_STEPS", 10)  # a short run shows the same
    monkeypatch.setattr(classifier_module, "MIN_EPOCHS", 1)
    images, labels = digits.train_images[:640], digits.train_labels[:640]
    first = train_classifier(images, labels, seed=3)
    second = train_classifier(images, labels, seed=3)
    other = train_classifier(images, labels, seed=4)
    pairs = zip(first.parameters(), second.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert not torch.equal(first.fc2.weight, other.fc2.weight)


def test_classify_channels_ignores_batch_size(trained, real_samples) -> None:
    images = real_samples[0][:300]
    reference = classify_channels(trained[0], images, batch_size=4096)
    assert reference.shape == (300, 3, 10) and reference.dtype == torch.float64
    assert torch.allclose(reference.sum(dim=2), torch.ones(300, 3, dtype=torch.float64))
    for batch_size in (1, 2, 7, 64, 299):  # tiny batches take other CPU kernels unless padded
        assert torch.equal(classify_channels(trained[0], images, batch_size=batch_size),
                           reference), batch_size


# --- metrics on hand-made probabilities ---------------------------------------------------


def _one_hot_probs(triples: list[int]) -> np.ndarray:
    probs = np.zeros((len(triples), 3, 10))
    for row, triple in enumerate(triples):
        for channel, digit in enumerate((triple // 100, triple // 10 % 10, triple % 10)):
            probs[row, channel, digit] = 1.0
    return probs


def test_one_hot_probs_have_zero_entropy_and_is_equal_to_used_triples() -> None:
    result = stacked_mnist_metrics(_one_hot_probs([12, 345, 678, 901] * 3))
    assert result["modes"] == 4 and result["high_quality"] == 1.0
    assert result["h_y_given_x"] == 0.0
    assert result["h_y"] == pytest.approx(math.log(4), abs=1e-12)
    assert result["h_y_bits"] == pytest.approx(2.0, abs=1e-12)
    assert result["inception_score"] == pytest.approx(4.0, abs=1e-12)
    assert result["inception_score_digit"] == pytest.approx(4.0, abs=1e-12)  # 4 digits/channel
    assert result["kl"] == pytest.approx(math.log(1000 / 4), abs=1e-12)


def test_uniform_probs() -> None:
    result = stacked_mnist_metrics(torch.full((50, 3, 10), 0.1, dtype=torch.float64))
    assert result["h_y_given_x"] == pytest.approx(3 * math.log(10), abs=1e-12)
    assert result["h_y"] == pytest.approx(3 * math.log(10), abs=1e-12)
    assert result["inception_score"] == pytest.approx(1.0, abs=1e-12)
    assert result["inception_score_digit"] == pytest.approx(1.0, abs=1e-12)
    assert result["high_quality"] == 0.0
    assert result["modes"] == 1  # argmax ties go to digit 0: every sample predicts triple 000
    assert result["kl"] == pytest.approx(math.log(1000), abs=1e-12)


def test_mixed_probs_by_hand() -> None:
    probs = _one_hot_probs([0, 200])
    probs[0, 0, :2] = 0.5  # sample 0's R channel: 0 or 1, so p(y | x0) = 1/2 on 000 and 100
    result = stacked_mnist_metrics(probs)
    # p(y) = 1/4 on 000, 1/4 on 100, 1/2 on 200; H(y | x) = (log 2 + 0) / 2.
    assert result["h_y_given_x"] == pytest.approx(math.log(2) / 2, abs=1e-12)
    assert result["h_y_bits"] == pytest.approx(1.5, abs=1e-12)
    assert result["inception_score"] == pytest.approx(2.0, abs=1e-12)
    assert result["high_quality"] == 0.5  # 0.5 is not > 0.7
    assert result["modes"] == 2 and result["kl"] == pytest.approx(math.log(500), abs=1e-12)


def test_marginal_chunking_matches_one_shot() -> None:
    logits = torch.randn(9000, 3, 10, generator=torch.Generator().manual_seed(0))
    probs = torch.softmax(3 * logits.double(), dim=2).numpy()
    marginal = np.einsum("na,nb,nc->abc", probs[:, 0], probs[:, 1], probs[:, 2]).ravel() / 9000
    expected = -(marginal * np.log(marginal)).sum()
    assert stacked_mnist_metrics(probs)["h_y"] == pytest.approx(expected, abs=1e-12)
    for bad in (np.zeros((0, 3, 10)), np.zeros((4, 3, 9)), np.zeros((4, 30))):
        with pytest.raises(ValueError):
            stacked_mnist_metrics(bad)


# --- real stacked digits and a collapsed sampler ------------------------------------------


def test_real_stacked_digits_cover_all_modes(real_probs) -> None:
    result = stacked_mnist_metrics(real_probs)
    print(f"\nreal stacked digits: {result}")
    assert result["num_samples"] == 26_000
    assert result["modes"] >= 990
    assert result["kl"] < 0.05  # multinomial floor 999 / 52,000 = 0.019 plus classifier errors
    assert result["high_quality"] > 0.9
    assert result["inception_score"] > 500 and result["inception_score_digit"] > 9


def test_collapsed_sampler(real_samples, real_probs) -> None:
    labels = real_samples[1]
    predicted = (real_probs.argmax(dim=2) * PLACE_VALUES).sum(dim=1)
    correct = torch.nonzero(predicted == labels).flatten()
    picks = correct[np.unique(labels[correct].numpy(), return_index=True)[1][:5]]  # 5 triples
    # 26,000 copies of 5 images; classify_channels scores each image alone (batch-free, tested
    # above), so tiling their probabilities equals classifying the copies, without 9 s of CNN.
    result = stacked_mnist_metrics(real_probs[picks].repeat(26_000 // 5, 1, 1))
    print(f"\ncollapsed onto 5 images: {result}")
    assert result["modes"] == 5
    assert result["kl"] == pytest.approx(math.log(1000 / 5), abs=1e-9)  # 5.298
    assert 1 <= result["inception_score"] <= 5 + 1e-9  # mutual information <= log 5
    assert result["inception_score_digit"] <= 5 + 1e-9


def test_evaluation_ignores_batch_size(trained, real_samples) -> None:
    samples = real_samples[0][:5000]
    reference = evaluate_stacked_mnist(samples, trained[0], batch_size=1000,
                                       classifier_accuracy=trained[1])
    assert reference["num_samples"] == 5000 and reference["classifier_accuracy"] == trained[1]
    assert reference == evaluate_stacked_mnist(samples.numpy(), trained[0], n=5000,
                                               classifier_accuracy=trained[1])
    for batch_size in (4096, 777, 5000):
        other = evaluate_stacked_mnist(samples, trained[0], batch_size=batch_size,
                                       classifier_accuracy=trained[1])
        assert other.keys() == reference.keys()
        assert all(abs(other[key] - reference[key]) <= 1e-12 for key in reference), batch_size


def test_sampler_evaluation_is_deterministic(trained, held_out_stacked) -> None:
    def generate(count: int, generator: torch.Generator) -> torch.Tensor:
        return held_out_stacked.sample(count, generator)

    first = evaluate_stacked_mnist(generate, trained[0], n=3000, batch_size=1000, seed=5)
    again = evaluate_stacked_mnist(generate, trained[0], n=3000, batch_size=4096, seed=5)
    assert first == again and first["num_samples"] == 3000
    assert evaluate_stacked_mnist(generate, trained[0], n=3000, seed=6) != first
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluate_stacked_mnist(generate(4, torch.Generator()) * 2 - 1, trained[0])
    with pytest.raises(ValueError, match="returned"):
        evaluate_stacked_mnist(lambda count, g: generate(count + 1, g), trained[0], n=10)


# --- the ensemble -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ensemble(digits, mnist_root) -> list[torch.nn.Module]:
    (reference, _), members = load_or_train_ensemble(digits, mnist_root)
    assert members[0] is reference  # the reference classifier runs once in an evaluation
    return members


@pytest.fixture(scope="module")
def real_ensemble_probs(ensemble, real_samples) -> list[torch.Tensor]:
    return [classify_channels(c, real_samples[0]) for c in ensemble]


def test_ensemble_is_trained_once_and_loaded_weights_only(digits, mnist_root, ensemble,
                                                          monkeypatch) -> None:
    paths = [classifier_cache_path(mnist_root, "mnist-5k", seed, arch) for arch, seed in ENSEMBLE]
    assert len(set(paths)) == len(ENSEMBLE) and all(map(os.path.isfile, paths))
    before = [os.stat(path).st_mtime_ns for path in paths]

    def no_training(*args, **kwargs):
        raise AssertionError("a cached classifier must not be retrained")

    loads = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        loads.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(classifier_module, "train_classifier", no_training)
    monkeypatch.setattr(torch, "load", recording_load)
    (_, accuracy), reloaded = load_or_train_ensemble(digits, mnist_root)
    assert loads == [True] * len(ENSEMBLE) and accuracy >= 0.97
    assert [os.stat(path).st_mtime_ns for path in paths] == before
    for member, again in zip(ensemble, reloaded, strict=True):
        assert type(member) is type(again) and not again.training
        assert all(torch.equal(a, b) for a, b in zip(member.state_dict().values(),
                                                       again.state_dict().values(), strict=True))
    for path in paths:
        state = real_load(path, weights_only=True)
        assert state["accuracy"] >= 0.96, path  # each one reads real digits well


def test_ensemble_metrics_by_hand() -> None:
    agree = _one_hot_probs([12, 345, 678, 901])
    result = ensemble_metrics([agree, agree, agree])
    assert (result["ensemble_modes"], result["confident_modes"]) == (4, 4)
    assert result["ensemble_kl"] == pytest.approx(math.log(1000 / 4), abs=1e-12)
    assert result["confident_share"] == 1.0 and result["ensemble_high_quality"] == 1.0
    assert result["classifier_spread_kl"] == 0.0 and result["classifier_spread_modes"] == 0.0
    # a second classifier reads sample 0's last digit as 3, not 2: the mean is 0.5 / 0.5, so
    # sample 0 is neither confident nor of high quality, and the classifiers' modes differ
    other = _one_hot_probs([13, 345, 678, 678])
    result = ensemble_metrics([agree, other])
    assert result["confident_modes"] == 2  # 345 and 678, where both read the same digits
    assert result["confident_share"] == 0.5 and result["ensemble_high_quality"] == 0.5
    assert result["ensemble_modes"] == 4  # ties go to the lower digit: 012, 345, 678, 601
    assert result["classifier_spread_modes"] == 1.0
    # KL: log 250 for the first; 1/4, 1/4, 1/2 on 013, 345, 678: log 250 + log(2) / 2
    assert result["classifier_spread_kl"] == pytest.approx(0.5 * math.log(2), abs=1e-12)
    with pytest.raises(ValueError):
        ensemble_metrics([agree, agree[:3]])


def test_ensemble_on_real_stacked_digits(real_ensemble_probs) -> None:
    result = ensemble_metrics(real_ensemble_probs)
    print(f"\nreal stacked digits, ensemble: {result}")
    assert result["ensemble_modes"] >= 990 and result["confident_modes"] >= 990
    assert result["ensemble_kl"] < 0.05  # the sampling floor 0.019 plus the ensemble's errors
    assert result["confident_share"] > 0.85 and result["classifier_spread_kl"] < 0.03


def test_ensemble_on_collapsed_sampler(real_samples, real_ensemble_probs) -> None:
    labels = real_samples[1]
    predicted = [(p.argmax(dim=2) * PLACE_VALUES).sum(dim=1) for p in real_ensemble_probs]
    correct = torch.nonzero(torch.stack([p == labels for p in predicted]).all(0)).flatten()
    picks = correct[np.unique(labels[correct].numpy(), return_index=True)[1][:5]]
    result = ensemble_metrics([p[picks].repeat(26_000 // 5, 1, 1) for p in real_ensemble_probs])
    assert result["ensemble_modes"] == 5 and result["confident_modes"] <= 5
    assert result["ensemble_kl"] == pytest.approx(math.log(1000 / 5), abs=1e-9)


def test_noise_images_are_not_confident(ensemble) -> None:
    # smooth random blobs: one classifier reads hundreds of digit triples into 2,000 of them,
    # the classifiers read different ones, and almost none is a triple they all read alike
    coarse = torch.rand(2000, 3, 7, 7, generator=torch.Generator().manual_seed(0))
    blobs = torch.nn.functional.interpolate(coarse, size=28, mode="bilinear").clamp(0, 1) ** 3
    probs = [classify_channels(c, blobs) for c in ensemble]
    single = stacked_mnist_metrics(probs[0])
    result = ensemble_metrics(probs)
    print(f"\nblobs: single {single['modes']} modes, ensemble {result}")
    assert single["modes"] > 300 and result["classifier_spread_modes"] > 100
    assert result["confident_share"] < 0.01 and result["confident_modes"] < 20
    assert result["ensemble_high_quality"] < 0.01


def test_ensemble_evaluation_ignores_batch_size(ensemble, real_samples) -> None:
    samples = real_samples[0][:3000]
    reference = evaluate_stacked_mnist(samples, ensemble[0], ensemble=ensemble,
                                       batch_size=3000)
    assert {"ensemble_kl", "confident_modes", "kl"} <= reference.keys()
    assert reference["kl"] == evaluate_stacked_mnist(samples, ensemble[0])["kl"]
    for batch_size in (1, 77, 1000):
        assert evaluate_stacked_mnist(samples, ensemble[0], ensemble=ensemble,
                                      batch_size=batch_size) == reference, batch_size

    def generate(count: int, generator: torch.Generator) -> torch.Tensor:
        return torch.rand(count, 3, 28, 28, generator=generator)

    first = evaluate_stacked_mnist(generate, ensemble[0], ensemble=ensemble, n=1500, seed=3,
                                   generate_batch_size=500)
    assert first == evaluate_stacked_mnist(generate, ensemble[0], ensemble=ensemble, n=1500,
                                           seed=3, generate_batch_size=1500)
