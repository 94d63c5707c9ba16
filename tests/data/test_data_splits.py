import hashlib
import json

import numpy as np
import pytest

from labeldistill.data import load_target
from labeldistill.data.splits import split_by_fractions, stratified_partition, stratified_subset
from labeldistill.errors import UserError


def unbalanced_labels():
    return np.repeat(np.arange(5), [400, 300, 200, 80, 20])


@pytest.mark.parametrize("sorted_input", [True, False])
def test_partition_is_stratified_disjoint_and_covering(sorted_input):
    y = unbalanced_labels()
    if not sorted_input:
        y = np.random.default_rng(0).permutation(y)
    parts = stratified_partition(y, (700, 200, 100), np.random.default_rng(1))
    assert [len(p) for p in parts] == [700, 200, 100]
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(y)))
    counts = np.bincount(y)
    for p, size in zip(parts, (700, 200, 100), strict=True):
        got = np.bincount(y[p], minlength=5)
        assert np.all(np.abs(got - counts * size / len(y)) <= 1.0)


def test_partition_is_seeded():
    y = unbalanced_labels()
    a = stratified_partition(y, (900, 100), np.random.default_rng(5))
    b = stratified_partition(y, (900, 100), np.random.default_rng(5))
    c = stratified_partition(y, (900, 100), np.random.default_rng(6))
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])


def test_class_sorted_input_gives_mixed_splits():
    y = np.repeat(np.arange(10), 100)  # like the shared cifar10_train.npz
    train, val, test = split_by_fractions(y, (0.8, 0.1, 0.1), np.random.default_rng(0), "t")
    for part, n in ((train, 80), (val, 10), (test, 10)):
        assert np.bincount(y[part], minlength=10).tolist() == [n] * 10
    # not a slice: every class contributes from across its whole block
    assert not np.array_equal(val, np.arange(800, 900))
    assert val.max() - val.min() > 900


def test_subset_is_stratified_and_within_train():
    y = np.repeat(np.arange(4), 50)
    idx = np.arange(1000, 1200)
    sub = stratified_subset(y, idx, 40, np.random.default_rng(0))
    assert len(sub) == 40 and set(sub) <= set(idx)
    assert np.bincount(y[sub - 1000]).tolist() == [10] * 4
    with pytest.raises(UserError):
        stratified_subset(y, idx, 201, np.random.default_rng(0))


def test_load_target_split_is_seeded_and_recorded(tmp_path, fake):
    fake.write_pair(tmp_path, "toy", n_train=200, n_test=None, classes=4)
    a = load_target("toy", data_root=tmp_path, seed=3)
    b = load_target("toy", data_root=tmp_path, seed=3)
    c = load_target("toy", data_root=tmp_path, seed=4)
    rec = a.split_record
    assert rec == b.split_record and rec["index_sha256"] != c.split_record["index_sha256"]
    assert json.loads(json.dumps(rec)) == rec
    assert rec["seed"] == 3 and rec["sizes"] == {"train": 160, "val": 20, "test": 20}
    cat = np.array(rec["train"] + rec["val"] + rec["test"], dtype="<i8")
    assert rec["index_sha256"] == hashlib.sha256(cat.tobytes()).hexdigest()
    assert rec["train"] == a.train.index.tolist()
    assert sorted(cat.tolist()) == list(range(200))
    for split in (a.train, a.val, a.test):
        assert np.bincount(split.y.numpy(), minlength=4).min() >= len(split) // 4 - 1


def test_catalog_validation_sizes_and_official_test(tmp_path, fake, small_val):
    small_val("mnist", 30)
    parts = {
        "train": (fake.images(120), fake.balanced_labels(120, 10)),
        "test": (fake.images(25, seed=2), fake.balanced_labels(25, 10)),
    }
    fake.write_idx_layout(tmp_path / "MNIST" / "raw", "train", "t10k", parts)
    d = load_target("mnist", data_root=tmp_path, seed=0)
    assert (len(d.train), len(d.val), len(d.test)) == (90, 30, 25)
    assert np.bincount(d.val.y.numpy()).tolist() == [3] * 10
    assert d.test.index.tolist() == list(range(120, 145))
    assert d.split_record["pool_sizes"] == {"train": 120, "test": 25}
    assert set(d.train.index) | set(d.val.index) == set(range(120))


def test_paper_validation_size_is_used_by_default(tmp_path, fake):
    # MNIST's 10,000 validation images cannot come out of a 120-image training file.
    parts = {
        "train": (fake.images(120), fake.balanced_labels(120, 10)),
        "test": (fake.images(5), fake.balanced_labels(5, 10)),
    }
    fake.write_idx_layout(tmp_path / "MNIST" / "raw", "train", "t10k", parts)
    with pytest.raises(UserError, match="cannot set aside 10000"):
        load_target("mnist", data_root=tmp_path)


def test_target_size_keeps_stratified_subset(tmp_path, fake):
    fake.write_pair(tmp_path, "toy", n_train=400, n_test=100, classes=4)
    full = load_target("toy", data_root=tmp_path)
    d = load_target("toy", data_root=tmp_path, target_size=40)
    assert len(d.train) == 40 and np.bincount(d.train.y.numpy()).tolist() == [10] * 4
    assert set(d.train.index) <= set(full.train.index)
    assert np.array_equal(d.val.index, full.val.index)  # the subset does not move the split
    assert d.split_record["target_size"] == 40 and d.split_record["train_size_before_subset"] == 360


@pytest.mark.parametrize("split", [(0.8, 0.1), (0.8, 0.2, 0.0), (0.5, 0.5, 0.5), (1.2, -0.1, -0.1), "abc"])
def test_bad_split_fractions(tmp_path, fake, split):
    fake.write_pair(tmp_path, "toy", n_test=None)
    with pytest.raises(UserError, match="split must be"):
        load_target("toy", data_root=tmp_path, split=split)


def test_split_argument_refused_with_official_test(tmp_path, fake):
    fake.write_pair(tmp_path, "toy")
    with pytest.raises(UserError, match="official test"):
        load_target("toy", data_root=tmp_path, split=(0.8, 0.1, 0.1))
