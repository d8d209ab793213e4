"""CIFAR-10 for Table 3 of the paper, read through torchvision's own ``CIFAR10`` class.

The training split's 50,000 images live as uint8 (n, 3, 32, 32) tensors on the training device,
and a batch is one ``randint``, one gather and one conversion to float in [0, 1], as for Stacked
MNIST: no DataLoader, no per-sample Python.

Where the files are: torchvision's layout under ``data.root``, the folder ``cifar-10-batches-py``
(``data_batch_1`` ... ``data_batch_5``, ``test_batch``, ``batches.meta``: the "python version"
of CIFAR-10), checked against torchvision's checksums; or its archive ``cifar-10-python.tar.gz``
there, extracted on first use; or, with ``data.download``, downloaded there. Otherwise
:class:`Cifar10Unavailable` (a :class:`ConfigError`: the command line exits with status 2) says
where to put them, before anything else happens.

The stand-in (``data.stand_in``, smoke tests only): a few hundred small synthetic images written
in the same pickle layout into its own folder, ``cifar-10-stand-in-batches-py``, and read by the
same torchvision class, which checks every file against the digests of the files the stand-in's
generator writes (so nothing but the stand-in is unpickled). It never takes the real folder's
place: a run records which it used (``data.stand_in``).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass, field

import numpy as np
import torch
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import check_integrity, extract_archive

from sigdist.config import ConfigError
from sigdist.data.mnist import DOWNLOAD_SOCKET_TIMEOUT_S, _short_reason, _socket_timeout

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
STAND_IN_FOLDER = "cifar-10-stand-in-batches-py"
STAND_IN_PER_BATCH = 100  # images per data batch of the stand-in: 500 training, 100 test
STAND_IN_SEED = 10  # the stand-in's pixels are fixed by this seed, independent of any run


class Cifar10Unavailable(ConfigError):
    """The CIFAR-10 files are neither under ``data.root`` nor downloadable; says where to put
    them."""


class Cifar10StandIn(CIFAR10):
    """torchvision's CIFAR-10 reader pointed at the stand-in's folder, every file checked
    against :func:`stand_in_digests` before it is read (the reader unpickles them: a planted
    file must never reach it); nothing to download."""

    base_folder = STAND_IN_FOLDER
    url = ""

    def __init__(self, root: str, **kwargs) -> None:
        digests = stand_in_digests()
        self.train_list = [[name, digests[name]] for name, _ in CIFAR10.train_list]
        self.test_list = [[name, digests[name]] for name, _ in CIFAR10.test_list]
        self.meta = {**CIFAR10.meta, "md5": digests["batches.meta"]}
        super().__init__(root, **kwargs)

    def download(self) -> None:
        raise RuntimeError("the CIFAR-10 stand-in is written by write_stand_in, not downloaded")


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no single truth value to compare
class Cifar10:
    """CIFAR-10's training images on the training device; Table 3 of the paper."""

    name: str = "cifar10"
    kind: str = "continuous"
    shape: tuple[int, ...] = (3, 32, 32)
    images: torch.Tensor = field(kw_only=True, repr=False)  # uint8 (n, 3, 32, 32) on `device`
    labels: torch.Tensor = field(kw_only=True, repr=False)  # int64 (n,) classes 0..9
    stand_in: bool = field(kw_only=True, default=False)

    @classmethod
    def from_arrays(cls, images: torch.Tensor, labels: torch.Tensor, device: torch.device | str,
                    *, stand_in: bool = False) -> Cifar10:
        if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != (
                3, 32, 32) or len(images) == 0:
            raise ValueError(f"images: want uint8 (n, 3, 32, 32) with n > 0, got {images.dtype} "
                             f"{tuple(images.shape)}")
        if labels.shape != images.shape[:1]:
            raise ValueError(f"labels: want ({len(images)},), got {tuple(labels.shape)}")
        return cls(images=images.to(device).contiguous(),
                   labels=labels.to(device, torch.int64).contiguous(), stand_in=stand_in)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, n: int, generator: torch.Generator,
               device: torch.device | str | None = None) -> torch.Tensor:
        """``n`` training images drawn uniformly with replacement, float32 (n, 3, 32, 32) in
        [0, 1]; fixed by the generator's state."""
        indices = torch.randint(len(self.images), (int(n),), generator=generator,
                                device=generator.device).to(self.device)
        batch = self.images.index_select(0, indices).float().div_(255.0)
        return batch if device is None else batch.to(device)


def cifar10_folder(root: str) -> str:
    return os.path.join(root, CIFAR10.base_folder)


def cifar10_archive(root: str) -> str:
    return os.path.join(root, CIFAR10.filename)


def cifar10_present(root: str) -> bool:
    """The python version's folder is under ``root`` and matches torchvision's checksums."""
    folder = cifar10_folder(root)
    files = CIFAR10.train_list + CIFAR10.test_list + [[CIFAR10.meta["filename"],
                                                       CIFAR10.meta["md5"]]]
    return all(check_integrity(os.path.join(folder, name), md5) for name, md5 in files)


def where_to_put_it(root: str) -> str:
    return (f"Download the python version of CIFAR-10 ({CIFAR10.url}, md5 {CIFAR10.tgz_md5}) "
            f"and put the archive at {os.path.abspath(cifar10_archive(root))} or its extracted "
            f"folder at {os.path.abspath(cifar10_folder(root))} (data_batch_1 ... data_batch_5, "
            "test_batch, batches.meta), or set data.root to the folder that holds either")


def ensure_cifar10(root: str, download: bool) -> None:
    """Make the verified python-version folder exist under ``root``: already there, extracted
    from a verified archive there, or (``download``) downloaded; else
    :class:`Cifar10Unavailable`. A failed download leaves nothing behind that it wrote."""
    if cifar10_present(root):
        return
    archive = cifar10_archive(root)
    if check_integrity(archive, CIFAR10.tgz_md5):
        extract_archive(archive, root)
        if cifar10_present(root):
            return
    if not download:
        raise Cifar10Unavailable(f"CIFAR-10 is not under data.root={root!r} and "
                                 f"data.download is false. {where_to_put_it(root)}.")
    root_existed, archive_existed = os.path.isdir(root), os.path.exists(archive)
    try:
        with _socket_timeout(DOWNLOAD_SOCKET_TIMEOUT_S):
            CIFAR10(root, train=True, download=True)
    except Exception as error:  # the network, the disk or a corrupt download
        if not archive_existed and os.path.exists(archive):
            os.remove(archive)  # a partial download
        if not root_existed and os.path.isdir(root) and not os.listdir(root):
            os.rmdir(root)
        raise Cifar10Unavailable(
            f"CIFAR-10 is not under data.root={root!r} and could not be downloaded "
            f"({_short_reason(error)}). {where_to_put_it(root)}.") from None


def load_cifar10(root: str, *, download: bool = True, stand_in: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The training split as uint8 (50000, 3, 32, 32) images and int64 labels, through
    torchvision's ``CIFAR10`` (the stand-in's folder with ``stand_in``)."""
    if stand_in:
        if not os.path.isdir(os.path.join(root, STAND_IN_FOLDER)):
            raise Cifar10Unavailable(f"data.stand_in: no stand-in under data.root={root!r}; "
                                     "write it with sigdist.data.cifar10.write_stand_in(root)")
        reader: type[CIFAR10] = Cifar10StandIn
    else:
        ensure_cifar10(root, download)
        reader = CIFAR10
    try:
        train = reader(root, train=True, download=False)
    except RuntimeError as error:
        if stand_in:  # a file whose digest is not the generator's: never unpickled
            raise Cifar10Unavailable(
                f"data.stand_in: the files under {os.path.join(root, STAND_IN_FOLDER)} differ "
                "from the stand-in write_stand_in writes (planted, edited or from another "
                "numpy); delete the folder and write it again") from None
        raise Cifar10Unavailable(f"CIFAR-10 under data.root={root!r} cannot be read "
                                 f"({_short_reason(error)}). {where_to_put_it(root)}.") from None
    except (OSError, pickle.UnpicklingError, KeyError, ValueError) as error:
        raise Cifar10Unavailable(f"CIFAR-10 under data.root={root!r} cannot be read "
                                 f"({_short_reason(error)}). {where_to_put_it(root)}.") from None
    # .data is the whole split, (n, 32, 32, 3) HWC uint8: one transpose to CHW, no PIL loop.
    images = torch.from_numpy(np.ascontiguousarray(train.data.transpose(0, 3, 1, 2)))
    return images, torch.as_tensor(train.targets, dtype=torch.int64)


def build_cifar10(root: str, device: torch.device | str, *, download: bool = True,
                  stand_in: bool = False) -> Cifar10:
    images, labels = load_cifar10(root, download=download, stand_in=stand_in)
    return Cifar10.from_arrays(images, labels, device, stand_in=stand_in)


def python_batches(images: np.ndarray, labels: np.ndarray, per_batch: int) -> dict[str, bytes]:
    """The files of ``images`` (n, 3, 32, 32) uint8 and ``labels`` in CIFAR-10's python layout,
    by name: ``data_batch_1`` ... ``data_batch_5`` of ``per_batch`` images each, the rest as
    ``test_batch``, and ``batches.meta``; each a pickled dict, ``data`` rows of 3,072 bytes
    (1,024 red, then green, then blue, each row-major)."""
    if len(images) <= 5 * per_batch:
        raise ValueError(f"want more than {5 * per_batch} images (five batches and a test batch)")
    files = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        chunk = slice(i * per_batch, (i + 1) * per_batch if i < 5 else len(images))
        entry = {"batch_label": f"{name} of a CIFAR-10 stand-in",
                 "labels": [int(v) for v in labels[chunk]],
                 "data": np.ascontiguousarray(images[chunk]).reshape(-1, 3072),
                 "filenames": [f"{name}_{j}.png" for j in range(len(images[chunk]))]}
        files[name] = pickle.dumps(entry, protocol=2)
    files["batches.meta"] = pickle.dumps({"label_names": list(CIFAR10_CLASSES),
                                          "num_cases_per_batch": per_batch, "num_vis": 3072},
                                         protocol=2)
    return files


def write_python_batches(folder: str, images: np.ndarray, labels: np.ndarray,
                         per_batch: int) -> None:
    """:func:`python_batches` written into ``folder``."""
    files = python_batches(images, labels, per_batch)
    os.makedirs(folder, exist_ok=True)
    for name, content in files.items():
        with open(os.path.join(folder, name), "wb") as fh:
            fh.write(content)


def stand_in_digests() -> dict[str, str]:
    """The MD5 of each file of the stand-in, computed from the generator that writes it: the
    stand-in is fixed by its seed, so no file that differs from it is ever unpickled."""
    images, labels = stand_in_images(6 * STAND_IN_PER_BATCH)
    return {name: hashlib.md5(content).hexdigest()
            for name, content in python_batches(images, labels, STAND_IN_PER_BATCH).items()}


def stand_in_images(count: int, seed: int = STAND_IN_SEED) -> tuple[np.ndarray, np.ndarray]:
    """``count`` synthetic 32 x 32 colour images in ten classes (uint8 (n, 3, 32, 32), labels):
    class c is a disc of hue c / 10 on a darker background at a random place and size, with
    pixel noise; visibly ten kinds of image, nothing like CIFAR-10's photographs."""
    rng = np.random.RandomState(seed)
    labels = np.arange(count) % 10
    rng.shuffle(labels)
    ys, xs = np.mgrid[0:32, 0:32]
    angle = 2 * np.pi * labels / 10.0
    colour = 0.5 + 0.45 * np.stack([np.cos(angle), np.cos(angle - 2.1), np.cos(angle + 2.1)], 1)
    centre = rng.uniform(9, 23, size=(count, 2))
    radius = rng.uniform(5, 11, size=count)
    inside = ((ys - centre[:, 0, None, None]) ** 2 + (xs - centre[:, 1, None, None]) ** 2
              <= radius[:, None, None] ** 2)
    pixels = np.where(inside[:, None], colour[:, :, None, None], 0.35 * colour[:, ::-1, None, None])
    pixels = pixels + rng.normal(0, 0.05, size=pixels.shape)
    return np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8), labels.astype(np.int64)


def write_stand_in(root: str) -> str:
    """The stand-in's folder under ``root``, written if missing (600 images); its path."""
    folder = os.path.join(root, STAND_IN_FOLDER)
    if not os.path.isfile(os.path.join(folder, "batches.meta")):
        images, labels = stand_in_images(6 * STAND_IN_PER_BATCH)
        write_python_batches(folder, images, labels, STAND_IN_PER_BATCH)
    return folder


__all__ = ["CIFAR10_CLASSES", "Cifar10", "Cifar10StandIn", "Cifar10Unavailable",
           "STAND_IN_FOLDER", "build_cifar10", "cifar10_present", "ensure_cifar10",
           "load_cifar10", "python_batches", "stand_in_digests", "stand_in_images",
           "write_python_batches", "write_stand_in"]
