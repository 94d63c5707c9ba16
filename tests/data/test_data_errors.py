"""Bad input: every failure is a UserError/DataError with a one-line message that names the problem."""

import gzip

import numpy as np
import pytest

from labeldistill.data import load_source, load_target
from labeldistill.errors import DataError, UserError


def raises_one_line(exc, fn, *args, match=None, **kwargs):
    with pytest.raises(exc, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_unknown_name_lists_known(tmp_path):
    msg = raises_one_line(UserError, load_target, "imagenet", data_root=tmp_path)
    assert msg.startswith("Unknown dataset 'imagenet'. Known: cifar10, cifar100, cifar100-test-stand-in, cub, digits, emnist-letters")
    assert "npz:FILE, folder:DIR" in msg


def test_missing_catalog_dataset_names_root_and_fix(tmp_path):
    msg = raises_one_line(DataError, load_target, "cifar10", data_root=tmp_path)
    assert str(tmp_path) in msg and "--download" in msg and "cifar-10-python.tar.gz" in msg
    msg = raises_one_line(DataError, load_target, "cub", data_root=tmp_path, download=True)
    assert "cannot be downloaded" in msg and "caltech.edu" in msg


def test_test_file_without_train_file(tmp_path, fake):
    fake.write_pair(tmp_path, "kmnist", n_train=10)
    (tmp_path / "kmnist_train.npz").unlink()
    msg = raises_one_line(DataError, load_target, "kmnist", data_root=tmp_path)
    assert "kmnist_test.npz" in msg and "kmnist_train.npz" in msg and "rois-codh" in msg


def test_partial_idx_layout_names_missing_file(tmp_path, fake):
    fake.write_idx(tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz", fake.images(3))
    msg = raises_one_line(DataError, load_target, "mnist", data_root=tmp_path)
    assert "train-images-idx3-ubyte" in msg


def test_missing_npz_and_folder(tmp_path):
    raises_one_line(DataError, load_target, f"npz:{tmp_path / 'nope.npz'}", match="nope.npz: file not found")
    raises_one_line(DataError, load_target, f"folder:{tmp_path / 'nope'}", match="folder not found")


def test_truncated_npz(tmp_path, fake):
    path = tmp_path / "t.npz"
    np.savez(path, x=fake.images(20), y=fake.balanced_labels(20, 2))
    path.write_bytes(path.read_bytes()[:3000])
    raises_one_line(DataError, load_target, f"npz:{path}", match="t.npz")


def test_truncated_idx(tmp_path, fake, small_val):
    small_val("mnist", 2)
    parts = {
        "train": (fake.images(10), fake.balanced_labels(10, 10)),
        "test": (fake.images(3), fake.balanced_labels(3, 10)),
    }
    fake.write_idx_layout(tmp_path / "MNIST" / "raw", "train", "t10k", parts, gz=True)
    bad = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(gzip.decompress(bad.read_bytes())[:-100]))
    msg = raises_one_line(DataError, load_target, "mnist", data_root=tmp_path, match="truncated")
    assert "train-images-idx3-ubyte.gz" in msg and "--download" in msg


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.zeros((4, 5, 5), np.float32), np.zeros(4, np.int64), "float32, expected uint8"),
        (np.zeros((4, 25), np.uint8), np.zeros(4, np.int64), "expected N×H×W"),
        (np.zeros((4, 3, 5, 5), np.uint8), np.zeros(4, np.int64), "channels-first"),
        (np.full((4, 5, 5), 300, np.int32), np.zeros(4, np.int64), "0..255"),
        (np.zeros((4, 5, 5), np.uint8), np.zeros(3, np.int64), "3 labels for 4 images"),
        (np.zeros((4, 5, 5), np.uint8), np.zeros((4, 1), np.int64), "1-D"),
        (np.zeros((4, 5, 5), np.uint8), np.zeros(4, np.float64), "expected integers"),
        (np.zeros((4, 5, 5), np.uint8), np.array([0, 1, -1, 0]), "labels out of range"),
    ],
)
def test_bad_arrays(tmp_path, x, y, match):
    path = tmp_path / "bad.npz"
    np.savez(path, x=x, y=y)
    msg = raises_one_line(DataError, load_target, f"npz:{path}", match=match)
    assert "bad.npz" in msg


def test_missing_array_and_pickled_npz(tmp_path):
    path = tmp_path / "noy.npz"
    np.savez(path, x=np.zeros((4, 5, 5), np.uint8))
    raises_one_line(DataError, load_target, f"npz:{path}", match="no array 'y'")
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object), y=np.zeros(1, np.int64))
    raises_one_line(DataError, load_target, f"npz:{path}", match="cannot read npz")


def test_integer_images_are_converted(tmp_path):
    path = tmp_path / "int.npz"
    np.savez(path, x=np.full((20, 4, 4), 200, np.int64), y=np.arange(20) % 2)
    assert len(load_target(f"npz:{path}").train) == 16


def test_catalog_labels_out_of_range(tmp_path, fake):
    fake.write_pair(tmp_path, "cifar10", n_train=20, n_test=10, classes=11, h=32, channels=3)
    raises_one_line(DataError, load_target, "cifar10", data_root=tmp_path, match="labels out of range.*expected 0..9")


def test_too_few_images_to_split(tmp_path):
    path = tmp_path / "tiny.npz"
    np.savez(path, x=np.zeros((3, 4, 4), np.uint8), y=np.arange(3))
    raises_one_line(DataError, load_target, f"npz:{path}", match="too few")


def test_bad_arguments(tmp_path, fake):
    fake.write_pair(tmp_path, "toy")
    raises_one_line(UserError, load_target, "toy", data_root=tmp_path, target_size=10_000, match="target_size")
    raises_one_line(UserError, load_target, "toy", data_root=tmp_path, image_size=0, match="image_size")
    raises_one_line(UserError, load_target, "toy", data_root=tmp_path, device="tpu:9")
    raises_one_line(UserError, load_target, "", data_root=tmp_path)
    raises_one_line(UserError, load_source, "toy", preprocessing={"channels": 1}, data_root=tmp_path)
    if not __import__("torch").cuda.is_available():
        raises_one_line(UserError, load_target, "toy", data_root=tmp_path, device="cuda", match="CUDA")


def test_corrupt_image_in_folder_is_named(tmp_path, fake):
    root = fake.write_folder(tmp_path / "f", per_class=2)
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    raises_one_line(DataError, load_target, f"folder:{root}", match="broken.png")


def test_folder_needs_classes(tmp_path, fake):
    root = fake.write_folder(tmp_path / "f", classes=("only",), per_class=2)
    raises_one_line(DataError, load_target, f"folder:{root}", match="at least two")
    (root / "empty").mkdir()
    raises_one_line(DataError, load_target, f"folder:{root}", match="holds no images")


def test_bad_cub_index(tmp_path, fake):
    base = fake.write_cub(tmp_path, classes=2, per_class=2)
    (base / "train_test_split.txt").write_text("1 1\n2 0\n")
    raises_one_line(DataError, load_target, "cub", data_root=tmp_path, match="ids differ")
    (base / "train_test_split.txt").write_text("1 1\n2 0\n3 1\n4 0\n")
    (base / "images.txt").write_text("1 ../../etc/passwd\n2 a/b.jpg\n3 a/c.jpg\n4 a/d.jpg\n")
    raises_one_line(DataError, load_target, "cub", data_root=tmp_path, match="leaves the images folder")
