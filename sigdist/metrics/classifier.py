"""The MNIST digit classifiers behind the Stacked-MNIST metrics (Section 5.3, Table 2).

The paper scores MNIST-3 samples with "a trained classifier applied to each channel". Each
architecture here (:data:`ARCHITECTURES`) is trained once per (architecture, MNIST source,
seed) with Adam and random +-2 px shifts, then cached as a weights-only file so that every
evaluation reuses the same classifier. On real digits they agree to about 99 %; on generated
digits they do not, which is why the metrics score with several (docs/classifiers.md).
"""

from __future__ import annotations

import math
import os
import tempfile

import torch
import torch.nn.functional as F
from torch import nn

from sigdist.data.mnist import MnistDigits

CLASSIFIER_FORMAT_VERSION = 1  # bump when the network or the training recipe changes
MAX_SHIFT_PX = 2  # augmentation: uniform integer shifts in [-2, 2] pixels along each axis
BATCH_SIZE = 64
LEARNING_RATE = 2e-3
MIN_EPOCHS = 3  # full MNIST: 3 epochs (~2,800 Adam steps)
MIN_STEPS = 1000  # small sources (mnist-5k: 4,000 digits) get more epochs: 16
_MIN_FORWARD_DIGITS = 64  # see classify_channels
# MNIST's pixel mean and std, so the network sees roughly standardised inputs from [0, 1] images.
_PIXEL_MEAN, _PIXEL_STD = 0.1307, 0.3081


def max_pool2(images: torch.Tensor) -> torch.Tensor:
    """2 x 2 max pooling with stride 2, the values of ``F.max_pool2d(images, 2)`` bit for bit
    (a max is exact), as the maximum of four strided views: on a CPU ~9 x faster than that,
    which spends its time on the argmax indices that inference never reads."""
    return torch.maximum(torch.maximum(images[..., 0::2, 0::2], images[..., 0::2, 1::2]),
                         torch.maximum(images[..., 1::2, 0::2], images[..., 1::2, 1::2]))


class LeNet(nn.Module):
    """LeNet-style CNN: (B, 1, 28, 28) images in [0, 1] -> (B, 10) digit logits.

    Two 5x5 conv + max-pool stages and two fully connected layers; no batch norm, so eval-mode
    outputs of one image never depend on the other images of its batch. Kept small (~0.5 M
    multiply-adds per digit) because Table 2 classifies 3 x 26,000 digits per evaluation.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)  # -> 10 x 24 x 24, pooled to 12 x 12
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)  # -> 20 x 8 x 8, pooled to 4 x 4
        self.fc1 = nn.Linear(20 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)
        self.dropout = nn.Dropout(0.25)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hidden = (images - _PIXEL_MEAN) / _PIXEL_STD
        hidden = max_pool2(F.relu(self.conv1(hidden)))
        hidden = max_pool2(F.relu(self.conv2(hidden)))
        hidden = self.dropout(F.relu(self.fc1(hidden.flatten(1))))
        return self.fc2(hidden)


class WideCNN(nn.Module):
    """VGG-style CNN: two stages of two 3x3 convs (32, then 64 channels) with max pooling,
    then 256 hidden units; ~40 x LeNet's multiply-adds. No batch norm (see :class:`LeNet`)."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
                                    nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                                    nn.Conv2d(64, 64, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU(),
                                  nn.Dropout(0.4), nn.Linear(256, 10))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hidden = max_pool2(self.stage1((images - _PIXEL_MEAN) / _PIXEL_STD))  # 32 x 14 x 14
        return self.head(max_pool2(self.stage2(hidden)))  # from 64 x 7 x 7


class DigitMLP(nn.Module):
    """Two hidden layers of 512 units on the raw pixels: no convolution, so it errs unlike the
    CNNs on digits that are not digits; ~0.7 M multiply-adds."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 512), nn.ReLU(), nn.Dropout(0.3),
                                 nn.Linear(512, 512), nn.ReLU(), nn.Dropout(0.3),
                                 nn.Linear(512, 10))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images - _PIXEL_MEAN) / _PIXEL_STD)



ARCHITECTURES: dict[str, type[nn.Module]] = {"lenet": LeNet, "wide": WideCNN, "mlp": DigitMLP}


# The classifier of the single-classifier metrics (modes, kl, ...: their names since Table 2's
# first runs) and the ensemble of the ensemble metrics (docs/classifiers.md says why these).
REFERENCE = ("lenet", 0)
ENSEMBLE = (("lenet", 0), ("lenet", 1), ("mlp", 0))


def classifier_cache_path(root: str, source: str, seed: int, arch: str = "lenet") -> str:
    """Where :func:`load_or_train_classifier` keeps the classifier of ``arch``, ``source`` and
    ``seed`` (LeNet's files keep the name they had before there were other architectures)."""
    name = f"{source}-seed{seed}" if arch == "lenet" else f"{arch}-{source}-seed{seed}"
    return os.path.join(root, "classifiers", f"mnist-classifier-{name}.pt")


def load_or_train_classifier(
    digits: MnistDigits, root: str, *, seed: int = 0, device: torch.device | str | None = None,
    arch: str = "lenet",
) -> tuple[nn.Module, float]:
    """A digit classifier of Section 5.3 (eval mode, on ``device``) and its held-out accuracy.

    Loaded from :func:`classifier_cache_path` when that holds a valid file for the same
    architecture, source and seed; otherwise (missing, corrupted, other format) trained on
    ``digits.train_images``, scored on ``digits.test_images`` and written there atomically.
    Training is deterministic for a seed (on a given machine and thread count).
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"classifier architecture {arch!r}; allowed: {sorted(ARCHITECTURES)}")
    device = torch.device(device or "cpu")
    path = classifier_cache_path(root, digits.source, seed, arch)
    cached = _load_cache(path, digits.source, seed, arch)
    if cached is not None:
        return cached[0].to(device).eval(), cached[1]
    classifier = train_classifier(digits.train_images, digits.train_labels, seed=seed,
                                  device=device, arch=arch)
    accuracy = classifier_accuracy(classifier, digits.test_images, digits.test_labels)
    weights = {name: value.cpu() for name, value in classifier.state_dict().items()}
    _save_cache(path, {"format_version": CLASSIFIER_FORMAT_VERSION, "source": digits.source,
                       "seed": int(seed), "arch": arch, "accuracy": float(accuracy),
                       "state_dict": weights})
    return classifier, accuracy


def load_or_train_ensemble(digits: MnistDigits, root: str, *,
                           device: torch.device | str | None = None
                           ) -> tuple[tuple[nn.Module, float], list[nn.Module]]:
    """(:data:`REFERENCE` and its held-out accuracy, the :data:`ENSEMBLE`'s classifiers), each
    trained once per source and cached (:func:`load_or_train_classifier`); the reference is
    the same module in both where the ensemble holds it."""
    reference = load_or_train_classifier(digits, root, arch=REFERENCE[0], seed=REFERENCE[1],
                                         device=device)
    ensemble = [reference[0] if member == REFERENCE else
                load_or_train_classifier(digits, root, arch=member[0], seed=member[1],
                                         device=device)[0] for member in ENSEMBLE]
    return reference, ensemble


def train_classifier(images: torch.Tensor, labels: torch.Tensor, *, seed: int = 0,
                     device: torch.device | str | None = None, arch: str = "lenet"
                     ) -> nn.Module:
    """A classifier of ``arch`` trained on uint8 (n, 28, 28) ``images``; in eval mode.

    Adam with a cosine-decayed learning rate, batches of 64 and +-2 px random shifts, for
    max(3 epochs, 1,000 steps). Initialisation, dropout, order and shifts all follow ``seed``.
    """
    device = torch.device(device or "cpu")
    generator = torch.Generator().manual_seed(seed)  # data order and shifts (CPU, any device)
    inputs = images.to(device=device, dtype=torch.float32).div(255.0).unsqueeze(1)
    targets = labels.to(device=device, dtype=torch.int64)
    steps_per_epoch = math.ceil(len(inputs) / BATCH_SIZE)
    epochs = max(MIN_EPOCHS, math.ceil(MIN_STEPS / steps_per_epoch))
    total_steps = epochs * steps_per_epoch
    # fork_rng: seed the global RNG (weight init, dropout) without disturbing the caller's.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        classifier = ARCHITECTURES[arch]().to(device).train()
        optimizer = torch.optim.Adam(classifier.parameters(), lr=LEARNING_RATE)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        for _ in range(epochs):
            order = torch.randperm(len(inputs), generator=generator).to(device)
            for start in range(0, len(inputs), BATCH_SIZE):
                batch = order[start : start + BATCH_SIZE]
                shifted = random_shifts(inputs[batch], MAX_SHIFT_PX, generator)
                loss = F.cross_entropy(classifier(shifted), targets[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    return classifier.eval()


def random_shifts(images: torch.Tensor, max_shift: int, generator: torch.Generator
                  ) -> torch.Tensor:
    """``images`` (B, 1, H, W), each shifted by its own integer (dy, dx) in [-max_shift,
    max_shift] (drawn on the CPU from ``generator``), zero-filled like MNIST's background."""
    count, _, height, width = images.shape
    shifts = torch.randint(0, 2 * max_shift + 1, (2, count), generator=generator).to(images.device)
    padded = F.pad(images, (max_shift,) * 4)
    rows = torch.arange(height, device=images.device)[None, :] + shifts[0][:, None]  # (B, H)
    cols = torch.arange(width, device=images.device)[None, :] + shifts[1][:, None]  # (B, W)
    samples = torch.arange(count, device=images.device)[:, None, None]
    return padded[samples, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


@torch.no_grad()
def classifier_accuracy(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                        batch_size: int = 4096) -> float:
    """Share of uint8 (n, 28, 28) ``images`` whose argmax digit equals ``labels``."""
    device = next(classifier.parameters()).device
    correct = 0
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device=device, dtype=torch.float32)
        predicted = classifier(batch.div(255.0).unsqueeze(1)).argmax(dim=1).cpu()
        correct += int((predicted == labels[start : start + batch_size]).sum())
    return correct / max(len(images), 1)


# Stacked images per classifier pass: 128 (384 digits) keeps the first layer's output in
# cache and scored 26,000 images twice as fast as 2,048 on one CPU thread, with the same bits
# (docs/results/populations.md).
CLASSIFY_BATCH = 128


@torch.no_grad()
def classify_channels(classifier: nn.Module, images: torch.Tensor,
                      batch_size: int = CLASSIFY_BATCH) -> torch.Tensor:
    """Digit probabilities of each channel: float (n, 3, 28, 28) in [0, 1] -> float64
    (n, 3, 10) softmax, on the CPU. ``batch_size`` counts stacked images per forward pass and
    only bounds memory: eval mode and no batch norm keep each image's output batch-free."""
    if images.dim() != 4 or tuple(images.shape[1:]) != (3, 28, 28):
        raise ValueError(f"images: want (n, 3, 28, 28), got {tuple(images.shape)}")
    if classifier.training:
        raise ValueError("classifier must be in eval mode (dropout off)")
    device = next(classifier.parameters()).device
    probs = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device=device, dtype=torch.float32)
        digits = batch.reshape(-1, 1, 28, 28)  # one digit per channel
        # CPU kernels (oneDNN / BLAS) switch to other code paths, with other float32 rounding,
        # for batches of a handful of rows; padding with blank digits keeps one path for all.
        padding = _MIN_FORWARD_DIGITS - len(digits)
        if padding > 0:
            digits = torch.cat([digits, digits.new_zeros(padding, 1, 28, 28)])
        logits = classifier(digits)[: 3 * len(batch)]
        # Softmax in float64: the entropies and the 0.7 threshold see no float32 rounding.
        probs.append(torch.softmax(logits.double(), dim=1).cpu().reshape(-1, 3, 10))
    return torch.cat(probs) if probs else torch.zeros(0, 3, 10, dtype=torch.float64)


def _load_cache(path: str, source: str, seed: int, arch: str
                ) -> tuple[nn.Module, float] | None:
    """The cached (classifier, accuracy), or None when the file is missing or unusable."""
    if not os.path.exists(path):
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        # files written before other architectures existed hold a LeNet and no "arch"
        if (state.get("format_version"), state.get("source"), state.get("seed"),
                state.get("arch", "lenet")) != (CLASSIFIER_FORMAT_VERSION, source, int(seed),
                                                arch):
            return None
        classifier = ARCHITECTURES[arch]()
        classifier.load_state_dict(state["state_dict"])  # raises on missing / misshapen weights
        return classifier, float(state["accuracy"])
    except Exception:  # a torn, foreign or corrupted file (or not a dict): retrain, not crash
        return None


def _save_cache(path: str, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (temp file in the same folder, then os.replace):
    a concurrent reader sees the old file or the new one, never half of one."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle, tmp_path = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".pt")
    try:
        with os.fdopen(handle, "wb") as tmp_file:
            torch.save(state, tmp_file)
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
