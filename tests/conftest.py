"""Shared fixtures: the real data folder CI also has (../shared/data from the repo root)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# LABELDISTILL_TEST_DATA: another folder with the same files (a lent GPU machine, where ../shared does not travel).
SHARED_DATA = Path(os.environ.get("LABELDISTILL_TEST_DATA") or REPO / ".." / "shared" / "data").resolve()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (device runs are logged in docs/benchmarks.md)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory):
    """Teachers and base-set selections that tests train go to a folder of the test session's, never the user's
    ``~/.cache/labeldistill`` (a test that wants its own sets LABELDISTILL_CACHE itself)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LABELDISTILL_CACHE", str(tmp_path_factory.mktemp("labeldistill-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist_test.npz").exists():
        raise FileNotFoundError(f"the real datasets are expected at {SHARED_DATA} (../shared/data from the repository root)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def image_hashes():
    """``hashes(files, pool_sizes, indices) -> list[str]``: sha256 of the raw uint8 images at those
    positions of a dataset's pooled files (train part, then test part), as provenance indices count."""
    import hashlib

    cache: dict[tuple, np.ndarray] = {}

    def hashes(files: dict, sizes: dict, indices) -> list[str]:
        key = (files["train"], files.get("test") if sizes.get("test") else None)
        if key not in cache:
            parts = [np.load(files["train"])["x"]] + ([np.load(files["test"])["x"]] if sizes.get("test") else [])
            cache[key] = np.concatenate(parts)
        pool = cache[key]
        return [hashlib.sha256(np.ascontiguousarray(pool[int(i)]).tobytes()).hexdigest() for i in indices]

    return hashes


@pytest.fixture(scope="session")
def mnist_small(tmp_path_factory, shared_data) -> Path:
    """A 3,000-image MNIST subset (real images) as one npz file: fast end-to-end runs."""
    d = np.load(shared_data / "mnist_test.npz")
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(d["y"]), 3000, replace=False))
    path = tmp_path_factory.mktemp("mnist") / "mnist3k.npz"
    np.savez(path, x=d["x"][idx], y=d["y"][idx])
    return path


@pytest.fixture(scope="session")
def mnist_small_target(mnist_small):
    """:func:`mnist_small` loaded and split with seed 0: 2,400 / 300 / 300 real MNIST images."""
    from labeldistill.data import load_target

    return load_target(f"npz:{mnist_small}", seed=0)


@pytest.fixture
def cut_teacher_training(monkeypatch):
    """``cut(after_epochs)``: teacher trainings stop (KeyboardInterrupt) right after the checkpoint of that epoch
    (:func:`mnist_small_target`'s 2,400 images in minibatches of 256: 10 steps an epoch); ``restore()`` undoes it."""
    import labeldistill.teacher.train as teacher_mod  # where the teacher's training calls train_models

    real = teacher_mod.train_models

    class Cut:
        def __call__(self, after_epochs: int) -> None:
            def cut_training(*args, checkpoint, **kwargs):
                def save_then_stop(ck):
                    checkpoint(ck)
                    if ck.step >= after_epochs * 10:
                        raise KeyboardInterrupt

                return real(*args, checkpoint=save_then_stop, **kwargs)

            monkeypatch.setattr(teacher_mod, "train_models", cut_training)

        def restore(self) -> None:
            monkeypatch.setattr(teacher_mod, "train_models", real)

    return Cut()


@pytest.fixture
def short_step_search(monkeypatch):
    """The paper's step search (one model validated at 10, 25, 50, ... 1,000 steps) cut to three checkpoints:
    the same code path (baselines' T, teacher temperatures, start scoring) at a CI test's cost."""
    from labeldistill import paper_defaults

    monkeypatch.setattr(paper_defaults, "baseline_checkpoints", lambda n_base: [10, 25, 50])


@pytest.fixture
def redrawing_bars(monkeypatch):
    """``redrawing_bars(module)``: the module's tqdm replaced by one that redraws at every update, so that ``update``
    returns True each time (tqdm's own returns True when it redraws; an observer that passed it on would stop a training)."""
    def patch(module) -> None:
        class Redrawing(module.tqdm):
            def update(self, n=1):
                super().update(n)
                return True

        monkeypatch.setattr(module, "tqdm", Redrawing)

    return patch
