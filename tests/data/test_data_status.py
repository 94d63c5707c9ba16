import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from labeldistill.data import dataset_status, list_datasets, load_target, resolve_data_root
from labeldistill.errors import UserError


def test_list_datasets_is_sorted_catalog():
    names = list_datasets()
    assert names == sorted(names)
    assert {"mnist", "kmnist", "emnist-letters", "kuzushiji-49", "cifar10", "cifar100", "cub", "digits"} <= set(names)


def test_resolve_data_root(monkeypatch, tmp_path):
    assert resolve_data_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv("LABELDISTILL_DATA", str(tmp_path / "env"))
    assert resolve_data_root() == tmp_path / "env"
    monkeypatch.delenv("LABELDISTILL_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_root() == tmp_path / "xdg" / "labeldistill"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_root() == tmp_path / "home" / ".cache" / "labeldistill"


def test_dataset_status_rows(tmp_path, fake):
    fake.write_pair(tmp_path, "mnist", n_train=30, n_test=12, classes=10, h=28)
    fake.write_cifar10(tmp_path, per_batch=10, n_test=10)
    fake.write_pair(tmp_path, "kmnist", n_train=10)
    (tmp_path / "kmnist_train.npz").unlink()
    fake.write_cub(tmp_path, classes=2, per_class=3)
    rows = {r["name"]: r for r in dataset_status(tmp_path)}
    assert list(rows) == list_datasets()
    assert rows["mnist"]["present"] and rows["mnist"]["sizes"] == {"train": 30, "test": 12}
    assert rows["mnist"]["where"].endswith("mnist_train.npz") and rows["mnist"]["kind"] == "grey"
    assert rows["cifar10"]["present"] and rows["cifar10"]["sizes"] == {"train": 50, "test": 10}
    assert rows["cifar10"]["kind"] == "colour"
    assert rows["cub"]["present"] and rows["cub"]["sizes"] == {"train": 4, "test": 2}
    assert not rows["kmnist"]["present"] and "kmnist_train.npz" in rows["kmnist"]["problem"]
    for name in ("cifar100", "emnist-letters", "kuzushiji-49"):
        assert rows[name]["present"] is False and rows[name]["where"] is None and rows[name]["sizes"] is None
        assert rows[name]["how_to_get"]
    assert rows["digits"]["present"] and rows["digits"]["sizes"]["train"] == 1797


def test_download_needs_torchvision(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(UserError, match=r"pip install 'labeldistill\[download\]'"):
        load_target("mnist", data_root=tmp_path, download=True)


def test_download_calls_torchvision_into_root(tmp_path, monkeypatch, fake, small_val):
    calls = []

    class FakeMNIST:
        def __init__(self, root, train, download, **kwargs):
            calls.append((root, train, download, kwargs))
            raw = Path(root) / "MNIST" / "raw"
            prefix = "train" if train else "t10k"
            n = 20 if train else 10
            fake.write_idx(raw / f"{prefix}-images-idx3-ubyte", fake.images(n))
            fake.write_idx(raw / f"{prefix}-labels-idx1-ubyte", fake.balanced_labels(n, 10))

    tv = ModuleType("torchvision")
    tv.datasets = SimpleNamespace(MNIST=FakeMNIST)
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", tv.datasets)
    small_val("mnist", 10)
    with pytest.raises(UserError):  # without download nothing is fetched
        load_target("mnist", data_root=tmp_path)
    assert calls == []
    d = load_target("mnist", data_root=tmp_path, download=True)
    assert [c[1] for c in calls] == [True, False] and all(c[0] == str(tmp_path) and c[2] for c in calls)
    assert (len(d.train), len(d.val), len(d.test)) == (10, 10, 10)
    load_target("mnist", data_root=tmp_path, download=True)  # already there: no second download
    assert len(calls) == 2
    assert np.isfinite(d.train.x.numpy()).all()
