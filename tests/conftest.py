"""Shared fixtures: one data root per test session, holding the mnist-5k digits' classifiers, so
that they are trained once (about 30 s on two cores) for every test that scores Stacked MNIST."""

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    from sigdist.data.mnist import load_mnist
    from sigdist.metrics.classifier import load_or_train_ensemble

    root = str(tmp_path_factory.mktemp("data"))
    load_or_train_ensemble(load_mnist(root, "mnist-5k"), root)
    return root


@pytest.fixture(scope="session")
def gmm25_smoke(tmp_path_factory: pytest.TempPathFactory):
    """One finished `studies/gmm25_sweep.py --smoke-test` on local Ray, tracked in a sqlite
    MLflow store: (the finished process, its tracking URI, its directory)."""
    from studyrun import smoke_study

    return smoke_study(tmp_path_factory.mktemp("gmm25_smoke"), "gmm25_sweep.py")
