"""Every reader, against small files written here in each dataset's official layout."""

import os
import pickle

import numpy as np
import pytest
import torch

from labeldistill.data import Preprocessing, load_source, load_target
from labeldistill.data.readers.cifar import read_cifar_batch
from labeldistill.data.readers.folder import read_image_folder
from labeldistill.data.readers.idx import read_idx
from labeldistill.errors import DataError

IDENT = Preprocessing(1, None, (0.0,), (1.0,))


def raw_of(split, prep):
    """Undo the normalisation: uint8-valued float images N×C×H×W."""
    return (prep.denormalise(split.x) * 255).round()


@pytest.mark.parametrize("gz", [True, False])
def test_idx_roundtrip(tmp_path, fake, gz):
    x = fake.images(5, 28, 28)
    path = fake.write_idx(tmp_path / ("a.gz" if gz else "a"), x)
    assert np.array_equal(read_idx(path, 3), x)


@pytest.mark.parametrize(
    ("name", "folder", "train", "test", "gz"),
    [
        ("mnist", "MNIST/raw", "train", "t10k", True),
        ("mnist", "MNIST/raw", "train", "t10k", False),
        ("kmnist", "KMNIST/raw", "train", "t10k", True),
    ],
)
def test_torchvision_idx_layout(tmp_path, fake, small_val, name, folder, train, test, gz):
    small_val(name, 10)
    parts = {
        "train": (fake.images(60), fake.balanced_labels(60, 10)),
        "test": (fake.images(20, seed=5), fake.balanced_labels(20, 10)),
    }
    fake.write_idx_layout(tmp_path / folder, train, test, parts, gz=gz)
    d = load_target(name, data_root=tmp_path)
    assert (len(d.train), len(d.val), len(d.test)) == (50, 10, 20)
    assert d.num_classes == 10 and d.preprocessing.mean == (0.1307,)
    # Provenance: pooled index -> the raw image.
    pooled_x = np.concatenate([parts["train"][0], parts["test"][0]])
    pooled_y = np.concatenate([parts["train"][1], parts["test"][1]])
    for split in (d.train, d.val, d.test):
        assert torch.equal(raw_of(split, d.preprocessing)[:, 0], torch.from_numpy(pooled_x[split.index]).float())
        assert np.array_equal(split.y.numpy(), pooled_y[split.index])


def test_emnist_letters_upright_and_labels_from_zero(tmp_path, fake, small_val):
    small_val("emnist-letters", 0.1)
    x = np.zeros((52, 28, 28), np.uint8)
    x[:, 0, 5] = 255  # stored transposed: row 0, column 5 -> shown at row 5, column 0
    y = np.arange(52) % 26 + 1
    tx, ty = x[:26].copy(), np.arange(26) + 1
    fake.write_idx_layout(
        tmp_path / "EMNIST" / "raw", "emnist-letters-train", "emnist-letters-test", {"train": (x, y), "test": (tx, ty)}
    )
    d = load_target("emnist-letters", data_root=tmp_path)
    assert d.num_classes == 26 and d.class_names[0] == "a"
    assert (len(d.train), len(d.val), len(d.test)) == (47, 5, 26)
    img = raw_of(d.test, d.preprocessing)[:, 0]
    assert (img[:, 5, 0] == 255).all() and (img[:, 0, 5] == 0).all()
    assert sorted(d.test.y.tolist()) == list(range(26))


def test_emnist_label_zero_is_out_of_range(tmp_path, fake):
    x, y = np.zeros((4, 28, 28), np.uint8), np.array([0, 1, 2, 3], np.uint8)
    fake.write_idx_layout(
        tmp_path / "EMNIST" / "raw", "emnist-letters-train", "emnist-letters-test", {"train": (x, y), "test": (x, y)}
    )
    with pytest.raises(DataError, match="expected 1..26"):
        load_target("emnist-letters", data_root=tmp_path)


@pytest.mark.parametrize(
    ("name", "prefix", "classes", "sub"), [("kmnist", "kmnist", 10, ""), ("kuzushiji-49", "k49", 49, "KMNIST")]
)
def test_official_arr0_npz(tmp_path, fake, small_val, name, prefix, classes, sub):
    small_val(name, 49)
    folder = tmp_path / sub
    folder.mkdir(exist_ok=True)
    x, y = fake.images(196), fake.balanced_labels(196, classes)
    tx, ty = fake.images(49, seed=3), fake.balanced_labels(49, classes, seed=3)
    np.savez_compressed(folder / f"{prefix}-train-imgs.npz", arr_0=x)
    np.savez_compressed(folder / f"{prefix}-train-labels.npz", arr_0=y.astype(np.uint8))
    np.savez_compressed(folder / f"{prefix}-test-imgs.npz", arr_0=tx)
    np.savez_compressed(folder / f"{prefix}-test-labels.npz", arr_0=ty.astype(np.uint8))
    d = load_target(name, data_root=tmp_path)
    assert (len(d.train), len(d.val), len(d.test), d.num_classes) == (147, 49, 49, classes)
    assert torch.equal(raw_of(d.test, d.preprocessing)[:, 0], torch.from_numpy(tx).float())


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_batches(tmp_path, fake, small_val, protocol):
    small_val("cifar10", 10)
    parts = fake.write_cifar10(tmp_path, protocol=protocol)
    d = load_target("cifar10", data_root=tmp_path)
    assert (len(d.train), len(d.val), len(d.test)) == (90, 10, 20)
    assert d.class_names[0] == "airplane" and d.preprocessing.channels == 3
    assert torch.equal(raw_of(d.test, d.preprocessing), torch.from_numpy(parts["test"][0]).permute(0, 3, 1, 2).float())


def test_cifar_rows_are_channel_planes(tmp_path, fake):
    x = np.zeros((2, 32, 32, 3), np.uint8)
    x[..., 0], x[..., 1], x[..., 2] = 10, 20, 30
    x[1, 3, 4] = (1, 2, 3)
    path = fake.write_pickle(tmp_path / "b", fake.cifar_batch(x, np.array([1, 2])))
    rows = pickle.loads(path.read_bytes())[b"data"]
    assert rows[0, 0] == 10 and rows[0, 1024] == 20 and rows[0, 2048] == 30
    got, y = read_cifar_batch(path, "labels")
    assert np.array_equal(got, x) and y.tolist() == [1, 2]


def test_cifar100_fine_labels(tmp_path, fake, small_val):
    small_val("cifar100", 100)
    parts = fake.write_cifar100(tmp_path)
    d = load_target("cifar100", data_root=tmp_path)
    assert d.num_classes == 100 and d.class_names[:2] == ["apple", "aquarium_fish"]
    assert (len(d.train), len(d.val), len(d.test)) == (100, 100, 100)
    assert np.bincount(d.val.y.numpy(), minlength=100).tolist() == [1] * 100
    assert np.array_equal(d.test.y.numpy(), parts["test"][1])


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 4])
def test_hostile_cifar_batch_is_refused_without_running(tmp_path, fake, protocol):
    marker = tmp_path / "pwned"
    path = fake.write_pickle(tmp_path / "data_batch_1", {b"data": _Hostile(marker), b"labels": [0]}, protocol)
    with pytest.raises(DataError, match=r"refusing to unpickle (posix|nt)\.system in .*data_batch_1"):
        read_cifar_batch(path, "labels")
    assert not marker.exists()
    path.write_bytes(pickle.dumps({b"data": eval}))
    with pytest.raises(DataError, match="refusing to unpickle builtins.eval"):
        read_cifar_batch(path, "labels")


def test_cub_folder(tmp_path, fake, small_val):
    small_val("cub", 0.34)
    fake.write_cub(tmp_path, classes=3, per_class=4)
    d = load_target("cub", data_root=tmp_path)
    assert d.class_names == ["Bird_0", "Bird_1", "Bird_2"]
    assert (len(d.train), len(d.val), len(d.test)) == (6, 3, 3)
    assert d.train.x.shape[1:] == (3, 32, 32)
    img = raw_of(d.test, d.preprocessing)
    for k, label in enumerate(d.test.y.tolist()):  # solid colour 40*c+10 survives JPEG within a few levels
        assert (img[k] - (40 * label + 10)).abs().max() <= 4
    assert d.split_record["pool_sizes"] == {"train": 9, "test": 3}


def test_image_folder_grey_colour_and_mixed_sizes(tmp_path, fake):
    grey = fake.write_folder(tmp_path / "grey", per_class=3, size=(12, 10))
    x, y, names = read_image_folder(grey)
    assert x.shape == (6, 10, 12) and names == ["cat", "dog"] and y.tolist() == [0, 0, 0, 1, 1, 1]
    colour = fake.write_folder(tmp_path / "colour", per_class=3, colour=True)
    fake.write_png(colour / "cat" / "big.png", fake.images(1, 20, 20)[0])  # one grey image of another size
    (colour / "dog" / "notes.txt").write_text("not an image")
    x, y, names = read_image_folder(colour)
    assert x.shape == (7, 32, 32, 3) and np.bincount(y).tolist() == [4, 3]


def test_folder_spec_splits_80_10_10(tmp_path, fake):
    root = fake.write_folder(tmp_path / "imgs", per_class=10, size=(9, 9), colour=True)
    d = load_target(f"folder:{root}")
    assert d.name == f"folder:{root}" and d.class_names == ["cat", "dog"]
    assert (len(d.train), len(d.val), len(d.test)) == (16, 2, 2)
    assert d.preprocessing.channels == 3 and d.preprocessing.size == 9
    assert abs(float(d.train.x.mean())) < 1e-4
    small = load_target(f"folder:{root}", image_size=4)
    assert small.train.x.shape[1:] == (3, 4, 4) and small.preprocessing.size == 4


def test_npz_pair_custom_name(tmp_path, fake):
    parts = fake.write_pair(tmp_path, "letters", n_train=100, n_test=40)
    d = load_target("letters", data_root=tmp_path)
    assert (len(d.train), len(d.val), len(d.test)) == (90, 10, 40)
    assert d.num_classes == 4 and d.preprocessing.size == 10
    assert np.array_equal(d.test.y.numpy(), parts["test"][1])
    assert d.split_record["files"]["test"].endswith("letters_test.npz")


def test_catalog_name_as_npz_pair_with_underscore(tmp_path, fake, small_val):
    small_val("emnist-letters", 0.1)
    fake.write_pair(tmp_path, "emnist_letters", n_train=52, n_test=26, classes=26, h=28)
    d = load_target("emnist-letters", data_root=tmp_path)
    assert d.preprocessing.mean == (0.1307,) and (len(d.train), len(d.val)) == (47, 5)


def test_lone_train_npz_is_split_80_10_10(tmp_path, fake):
    fake.write_pair(tmp_path, "shapes", n_train=100, n_test=None, channels=3, h=8)
    d = load_target("shapes", data_root=tmp_path)
    assert (len(d.train), len(d.val), len(d.test)) == (80, 10, 10)
    assert d.split_record["parts"] == ["train"]


def test_npz_file_spec_and_split_argument(tmp_path, fake):
    x, y = fake.images(200, 6, 6), fake.balanced_labels(200, 5)
    np.savez(tmp_path / "data.npz", x=x, y=y, class_names=np.array(list("abcde")))
    d = load_target(f"npz:{tmp_path / 'data.npz'}", split=(0.5, 0.25, 0.25))
    assert (len(d.train), len(d.val), len(d.test)) == (100, 50, 50)
    assert d.class_names == list("abcde") and d.licence


def test_digits_builtin_and_image_size():
    d = load_target("digits", image_size=16)
    assert (len(d.train), len(d.val), len(d.test)) == (1437, 180, 180)
    assert d.train.x.shape[1:] == (1, 16, 16)
    assert abs(float(d.train.x.mean())) < 1e-4


def test_load_source_uses_target_preprocessing(tmp_path, fake):
    fake.write_pair(tmp_path, "src", n_train=30, n_test=10, classes=3, h=28)
    prep = Preprocessing(3, 32, (0.5,) * 3, (0.25,) * 3)
    s = load_source("src", preprocessing=prep, data_root=tmp_path)
    assert s.images.x.shape == (30, 3, 32, 32) and s.images.index.tolist() == list(range(30))
    assert s.class_names == ["0", "1", "2"]
    lone = load_source(f"npz:{tmp_path / 'src_test.npz'}", preprocessing=prep)
    assert len(lone.images) == 8  # the training split of 80/10/10


def test_lzma_npz_is_cached_decoded(tmp_path, fake, monkeypatch):
    import zipfile

    from labeldistill.data.readers.npz import read_xy_npz

    x, y = fake.images(30, 8, 8), fake.balanced_labels(30, 3)
    path = tmp_path / "slow.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_LZMA) as zf:
        for k, arr in (("x", x), ("y", y)):
            with zf.open(f"{k}.npy", "w") as f:
                np.lib.format.write_array(f, arr, allow_pickle=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("LABELDISTILL_CACHE", str(cache))
    a = read_xy_npz(path)
    assert list(cache.glob("slow-*/x.npy"))
    b = read_xy_npz(path)
    assert np.array_equal(a[0], x) and np.array_equal(b[0], x) and np.array_equal(b[1], y)
