"""CIFAR-10 (Table 3): files in CIFAR-10's own python-pickle layout, written here and read by
torchvision's CIFAR10 class; the networks; the defaults; training on it; missing files."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from sigdist.config import ConfigError, from_flat
from sigdist.data.cifar10 import (
    STAND_IN_FOLDER,
    Cifar10,
    Cifar10Unavailable,
    build_cifar10,
    load_cifar10,
    stand_in_images,
    write_stand_in,
)
from sigdist.models import DCGAN32Discriminator, DCGAN32Generator, build_discriminator
from sigdist.train import Trainer

PER_BATCH = 20


def write_pickle_batches(folder, images: np.ndarray, labels: np.ndarray) -> None:
    """CIFAR-10's layout, written without sigdist: five data batches, a test batch, the meta."""
    os.makedirs(folder)
    rows = images.reshape(len(images), -1)  # (n, 3072): the red plane, then green, then blue
    for i, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        part = slice(i * PER_BATCH, (i + 1) * PER_BATCH)
        with open(os.path.join(folder, name), "wb") as fh:
            pickle.dump({"batch_label": name, "labels": labels[part].tolist(),
                         "data": rows[part], "filenames": [f"{k}.png" for k in range(PER_BATCH)]},
                        fh)
    with open(os.path.join(folder, "batches.meta"), "wb") as fh:
        pickle.dump({"label_names": [f"class{c}" for c in range(10)]}, fh)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """(root, images, labels): 120 images whose every pixel says where it is."""
    root = tmp_path_factory.mktemp("cifar")
    count = 6 * PER_BATCH
    index = np.arange(count)[:, None, None, None]
    channel = np.arange(3)[None, :, None, None]
    row = np.arange(32)[None, None, :, None]
    column = np.arange(32)[None, None, None, :]
    images = ((index * 7 + channel * 80 + row * 3 + column) % 256).astype(np.uint8)
    labels = (np.arange(count) * 3) % 10
    write_pickle_batches(root / STAND_IN_FOLDER, images, labels)
    return str(root), images, labels


@pytest.fixture
def trusted(written, monkeypatch):
    """The fixture's files, whose digests the reader is told (in place of the stand-in's)."""
    import hashlib

    import sigdist.data.cifar10 as cifar10_module

    folder = os.path.join(written[0], STAND_IN_FOLDER)
    digests = {name: hashlib.md5(open(os.path.join(folder, name), "rb").read()).hexdigest()
               for name in os.listdir(folder)}
    monkeypatch.setattr(cifar10_module, "stand_in_digests", lambda: digests)
    return written


def test_torchvisions_class_reads_the_pickle_layout_channel_first(trusted):
    root, images, labels = trusted
    train_images, train_labels = load_cifar10(root, stand_in=True)
    assert train_images.dtype == torch.uint8 and train_images.shape == (100, 3, 32, 32)
    np.testing.assert_array_equal(train_images.numpy(), images[:100])  # not test_batch
    np.testing.assert_array_equal(train_labels.numpy(), labels[:100])


def test_sampling_gathers_training_images_as_floats(trusted):
    root, images, _ = trusted
    data = build_cifar10(root, "cpu", stand_in=True)
    assert data.images.dtype == torch.uint8 and data.shape == (3, 32, 32)
    batch = data.sample(50, torch.Generator().manual_seed(3))
    again = data.sample(50, torch.Generator().manual_seed(3))
    assert batch.dtype == torch.float32 and batch.shape == (50, 3, 32, 32)
    assert torch.equal(batch, again) and 0.0 <= batch.min() and batch.max() <= 1.0
    pool = {bytes(image) for image in images[:100]}
    drawn = (batch * 255).round().to(torch.uint8).numpy()
    assert all(bytes(image) in pool for image in drawn)
    assert len({bytes(image) for image in drawn}) > 25  # drawn with replacement, not one image


def test_the_stand_in_is_written_once_and_read_back(tmp_path):
    folder = write_stand_in(str(tmp_path))
    stamp = os.path.getmtime(os.path.join(folder, "data_batch_1"))
    assert write_stand_in(str(tmp_path)) == folder
    assert os.path.getmtime(os.path.join(folder, "data_batch_1")) == stamp
    images, labels = load_cifar10(str(tmp_path), stand_in=True)
    expected, expected_labels = stand_in_images(600)
    assert torch.equal(images, torch.from_numpy(expected[:500]))
    assert torch.equal(labels, torch.from_numpy(expected_labels[:500]))
    assert np.bincount(expected_labels).tolist() == [60] * 10


class Payload:
    """A pickle that, when loaded, creates the file ``path``: code from a data folder."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("name", ["data_batch_1", "batches.meta"])
def test_a_planted_pickle_in_the_stand_in_never_runs(tmp_path, name):
    folder = write_stand_in(str(tmp_path))
    marker = tmp_path / "payload_ran"
    with open(os.path.join(folder, name), "wb") as fh:
        pickle.dump({"data": Payload(str(marker)), "labels": []}, fh)
    with pytest.raises(Cifar10Unavailable, match="differ from the stand-in write_stand_in"):
        load_cifar10(str(tmp_path), stand_in=True)
    assert not marker.exists()
    # the same file through a plain pickle load does run: the check above is what stops it
    with open(os.path.join(folder, name), "rb") as fh:
        pickle.load(fh)
    assert marker.exists()


def test_files_failing_torchvisions_checksums_are_refused(written, tmp_path):
    """The stand-in's files under CIFAR-10's own folder name are not CIFAR-10: refused."""
    root, images, labels = written
    fake = tmp_path / "fake"
    write_pickle_batches(fake / "cifar-10-batches-py", images, labels)
    before = sorted(p.name for p in fake.rglob("*"))
    with pytest.raises(Cifar10Unavailable, match="data.download is false"):
        load_cifar10(str(fake), download=False)
    assert sorted(p.name for p in fake.rglob("*")) == before


def test_missing_data_says_where_to_put_it_and_writes_nothing(tmp_path):
    root = tmp_path / "nothing"
    with pytest.raises(Cifar10Unavailable) as error:
        build_cifar10(str(root), "cpu", download=False)
    message = str(error.value)
    assert str(root / "cifar-10-python.tar.gz") in message
    assert str(root / "cifar-10-batches-py") in message and "data.root" in message
    assert not root.exists()
    with pytest.raises(Cifar10Unavailable, match="stand-in"):
        build_cifar10(str(root), "cpu", stand_in=True)


def test_cli_train_without_the_data_exits_2_before_writing(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "sigdist", "train", "--set", "data.name=cifar10",
         "--set", f"data.root={tmp_path / 'data'}", "--set", "data.download=false",
         "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "cifar-10-python.tar.gz" in errors[0]  # one line says it all
    assert sorted(os.listdir(tmp_path)) == []


def test_cifar10_defaults_are_the_papers_full_run():
    cfg = from_flat({"data.name": "cifar10"})
    assert (cfg.train.steps, cfg.train.batch_size, cfg.train.lr, cfg.train.lr_d) == (
        100_000, 64, 2e-4, 2e-4)
    assert (cfg.train.beta1, cfg.train.beta2) == (0.5, 0.999)
    assert (cfg.run.eval_samples, cfg.run.eval_samples_intermediate) == (50_000, 10_000)
    assert (cfg.model.width_g, cfg.model.width_d, cfg.model.size) == (1.0, 1.0, "L")
    mnist3 = from_flat({"data.name": "mnist3"})
    assert (cfg.loss.lam, cfg.loss.k, cfg.loss.sigma) == (
        mnist3.loss.lam, mnist3.loss.k, mnist3.loss.sigma)
    assert (cfg.run.bf16, cfg.run.channels_last, cfg.data.download) == (False, False, True)
    # one width set keeps the other at the data set's default
    assert from_flat({"data.name": "cifar10", "model.width_g": 0.5}).model.width_d == 1.0
    with pytest.raises(ConfigError, match="data.stand_in"):
        from_flat({"data.name": "mnist3", "data.stand_in": True})


def _channels(module, kind):
    return [m.out_channels for m in module.modules() if isinstance(m, kind)]


def test_the_standard_cifar_dcgan_pair_and_its_critic():
    gen, disc = DCGAN32Generator(1.0), DCGAN32Discriminator(1.0)
    assert gen.fc[0].out_features == 4 * 4 * 256
    assert _channels(gen, torch.nn.ConvTranspose2d) == [128, 64, 3]
    assert _channels(disc, torch.nn.Conv2d) == [64, 128, 256]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in disc.modules()) == 2
    images = gen(torch.randn(5, 128))
    assert images.shape == (5, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    cfg = from_flat({"data.name": "cifar10", "model.width_g": 0.5, "model.width_d": 0.25,
                     "method": "wgan_gp_si"})
    critic = build_discriminator(cfg, (3, 32, 32))
    assert _channels(critic, torch.nn.Conv2d) == [16, 32, 64]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in critic.modules())
    assert critic(images).shape == (5,)


@pytest.mark.parametrize("method", ["gan", "gan_si", "wgan_gp", "wgan_gp_si"])
def test_each_method_trains_and_is_scored_on_cifar10(tmp_path_factory, method):
    root = str(tmp_path_factory.getbasetemp() / "stand_in_root")
    write_stand_in(root)
    cfg = from_flat({"data.name": "cifar10", "data.root": root, "data.stand_in": True,
                     "metrics.extractor": "stand-in", "method": method, "model.size": "S",
                     "train.steps": 4, "run.eval_every": 2, "run.eval_samples": 60,
                     "run.eval_samples_intermediate": 30, "train.batch_size": 16, "loss.k": 12,
                     "train.critic_steps": 2, "run.device": "cpu"})  # N != K, as Algorithm 1
    trainer = Trainer(cfg)
    assert isinstance(trainer.data, Cifar10)
    reports = []
    trainer.fit(report=lambda _, metrics: reports.append(metrics))
    assert [r["num_samples"] for r in reports] == [30, 60]  # fewer before the last evaluation
    for metrics in reports:
        assert 1.0 - 1e-9 <= metrics["inception_score"] <= 10.0 and metrics["fid"] > 0
    assert ("loss_sig" in reports[-1]) == method.endswith("_si")


def test_bf16_autocast_and_channels_last_train_the_same_networks(tmp_path_factory):
    root = str(tmp_path_factory.getbasetemp() / "stand_in_root")
    write_stand_in(root)
    base = {"data.name": "cifar10", "data.root": root, "data.stand_in": True,
            "metrics.extractor": "stand-in", "method": "wgan_gp_si", "model.size": "S",
            "train.batch_size": 16, "loss.k": 16, "train.critic_steps": 1, "run.device": "cpu"}
    plain = Trainer(from_flat(base))
    fast = Trainer(from_flat({**base, "run.bf16": True, "run.channels_last": True}))
    conv = fast.method.discriminator.net[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    for _ in range(2):
        losses_plain, losses_fast = plain.train_step(), fast.train_step()
    for name, value in losses_plain.items():
        # the same step in bf16: close, not equal (bf16 keeps 8 bits of mantissa)
        assert torch.isfinite(losses_fast[name])
        assert float(losses_fast[name]) == pytest.approx(float(value), rel=0.1, abs=0.05)


def _score(root, samples: np.ndarray, tmp_path, *extra: str, env=None):
    path, out = tmp_path / "samples.npy", tmp_path / "metrics.json"
    np.save(path, samples)
    result = subprocess.run(
        [sys.executable, "-m", "sigdist", "score", "--data", "cifar10", "--data-root", root,
         "--samples", str(path), "--out", str(out), "--set", "data.stand_in=true", *extra],
        capture_output=True, text=True, timeout=300, env=env)
    return result, out


def test_score_rates_the_training_images_perfect_and_one_repeated_image_badly(tmp_path):
    root = str(tmp_path / "data")
    write_stand_in(root)
    images, _ = load_cifar10(root, stand_in=True)
    as_stored = images.numpy().transpose(0, 2, 3, 1)  # (n, 32, 32, 3) uint8, CIFAR's own order
    result, out = _score(root, as_stored, tmp_path, "--set", "metrics.extractor=stand-in")
    assert result.returncode == 0, result.stderr
    real = json.loads(out.read_text())
    assert real["n"] == len(images) and real["fid"] == pytest.approx(0.0, abs=1e-6)
    assert real["inception_score"] > 1.1  # the stand-in extractor is a small fixed network
    floats = images[:1].repeat(len(images), 1, 1, 1).float().numpy() / 255  # (n, 3, 32, 32)
    result, out = _score(root, floats, tmp_path, "--set", "metrics.extractor=stand-in")
    assert result.returncode == 0, result.stderr
    collapsed = json.loads(out.read_text())
    assert collapsed["inception_score"] == pytest.approx(1.0, abs=1e-6)
    assert collapsed["fid"] > 1.0


def test_score_without_weights_or_with_a_training_key_exits_2_writing_nothing(tmp_path):
    root = str(tmp_path / "data")
    write_stand_in(root)
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch_home")}
    images = np.zeros((4, 3, 32, 32), dtype=np.uint8)
    result, out = _score(root, images, tmp_path, "--set", "data.download=false", env=env)
    assert result.returncode == 2 and "metrics.inception_weights=PATH" in result.stderr
    assert not out.exists() and not (tmp_path / "torch_home").exists()
    result, out = _score(root, images, tmp_path, "--set", "loss.k=4")
    assert result.returncode == 2 and "score takes only data.* and metrics.* keys" in result.stderr
    assert not out.exists()
