"""``cifar100-test-stand-in``: CIFAR-100's official test images alone, split 80/10/10 (issue 14, item 6)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from labeldistill import paper_defaults
from labeldistill.data import dataset_status, load_target
from labeldistill.data.catalog import CATALOG, CIFAR100_STAND_IN
from labeldistill.data.splits import index_sha256

SHARED = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()


def _write(root: Path, n_per_class: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(100), n_per_class).astype(np.int64)
    x = rng.integers(0, 256, size=(len(y), 32, 32, 3), dtype=np.uint8)
    names = np.array([f"img{i:05d}.png" for i in range(len(y))])  # like the shared file's extra array
    np.savez(root / "cifar100_test.npz", x=x, y=y, names=names)
    return x, y


def test_catalog_entry_matches_cifar100():
    entry, real = CATALOG.get(CIFAR100_STAND_IN), CATALOG.get("cifar100")
    assert CIFAR100_STAND_IN == "cifar100-test-stand-in"
    assert (entry.kind, entry.size, entry.mean, entry.std, entry.class_names) == (
        real.kind, real.size, real.mean, real.std, real.class_names)
    assert entry.val_size is None and "STAND-IN" in entry.licence  # no official test part: split by fractions
    # paper_defaults.py gives it CIFAR-100's paper settings (reset window 100, inner batch 100, 800 epochs)
    assert paper_defaults.settings_name(CIFAR100_STAND_IN) == "cifar100"


def test_loads_from_test_file_alone_and_ignores_names(tmp_path):
    x, y = _write(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "not the paper's protocol" warning: fractions are its protocol
        d = load_target(CIFAR100_STAND_IN, data_root=tmp_path, seed=0)
    assert d.name == CIFAR100_STAND_IN and d.num_classes == 100 and d.class_names[:3] == ["apple", "aquarium_fish", "baby"]
    assert (len(d.train), len(d.val), len(d.test)) == (800, 100, 100)
    parts = [set(p.index.tolist()) for p in (d.train, d.val, d.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert set().union(*parts) == set(range(1000))
    assert np.bincount(d.val.y.numpy(), minlength=100).tolist() == [1] * 100  # stratified
    assert d.split_record["protocol"] == "one pool split by fractions" and d.split_record["fractions"] == [0.8, 0.1, 0.1]
    assert d.split_record["files"] == {"train": str(tmp_path / "cifar100_test.npz")}
    assert d.preprocessing.mean == CATALOG.get("cifar100").mean  # CIFAR normalisation, not measured
    assert np.array_equal(d.train.y.numpy(), y[d.train.index])
    # seeded like every fraction split: the same seed gives the same split, another seed another one
    again = load_target(CIFAR100_STAND_IN, data_root=tmp_path, seed=0).split_record["index_sha256"]
    other = load_target(CIFAR100_STAND_IN, data_root=tmp_path, seed=1).split_record["index_sha256"]
    assert again == d.split_record["index_sha256"] != other
    assert index_sha256(d.train.index, d.val.index, d.test.index) == again


def test_status_lists_it_and_cifar100_stays_missing(tmp_path):
    _write(tmp_path, n_per_class=2)
    rows = {r["name"]: r for r in dataset_status(tmp_path)}
    assert rows[CIFAR100_STAND_IN]["present"] and rows[CIFAR100_STAND_IN]["sizes"] == {"train": 200, "test": None}
    assert not rows["cifar100"]["present"] and "cifar100_train.npz" in rows["cifar100"]["problem"]
    empty = {r["name"]: r for r in dataset_status(tmp_path / "empty")}[CIFAR100_STAND_IN]
    assert not empty["present"] and "cifar100_test.npz" in empty["how_to_get"]


def test_datasets_command_lists_stand_in_and_kmnist(capsys, tmp_path):
    from labeldistill.cli import main

    _write(tmp_path, n_per_class=2)
    assert main(["datasets", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith(CIFAR100_STAND_IN + " "))
    assert line.split()[1:3] == ["yes", "200"]
    assert any(l.startswith("kmnist ") for l in out.splitlines())
    assert "Stand-in: cifar100-test-stand-in is cifar100's official test images alone" in out


def test_real_shared_file():
    if not (SHARED / "cifar100_test.npz").exists():
        raise FileNotFoundError(f"the real datasets are expected at {SHARED} (../shared/data from the repository root)")
    d = load_target(CIFAR100_STAND_IN, data_root=SHARED, seed=0)
    assert d.num_classes == 100 and (len(d.train), len(d.val), len(d.test)) == (7999, 1000, 1000)
    idx = [set(p.index.tolist()) for p in (d.train, d.val, d.test)]
    assert sum(map(len, idx)) == len(set().union(*idx)) == 9999
    counts = np.bincount(d.test.y.numpy(), minlength=100)
    assert counts.min() >= 9 and counts.max() <= 11


def test_python_test_batch_alone_also_works(tmp_path, fake):
    parts = fake.write_cifar100(tmp_path, n_train=100, n_test=300)
    (tmp_path / "cifar-100-python" / "train").unlink()
    d = load_target(CIFAR100_STAND_IN, data_root=tmp_path, seed=0)
    assert (len(d.train), len(d.val), len(d.test)) == (240, 30, 30)
    tx, ty = parts["test"]
    assert np.array_equal(d.val.y.numpy(), ty[d.val.index])
    assert d.split_record["files"]["train"].endswith("cifar-100-python/test")
