"""Fixtures for the data tests: writers for every on-disk format, in tiny sizes."""

from __future__ import annotations

import dataclasses
import gzip
import pickle
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from labeldistill.data.catalog import CATALOG


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """Never read the user's data root or write the user's cache."""
    monkeypatch.delenv("LABELDISTILL_DATA", raising=False)
    monkeypatch.setenv("LABELDISTILL_CACHE", str(tmp_path_factory.mktemp("decoded-cache")))


def images(n: int, h: int = 28, w: int = 28, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (n, h, w) if channels == 1 else (n, h, w, channels)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def balanced_labels(n: int, classes: int, seed: int = 0) -> np.ndarray:
    y = np.arange(n) % classes
    return np.random.default_rng(seed).permutation(y).astype(np.int64)


def write_idx(path: Path, arr: np.ndarray) -> Path:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    blob = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(blob)
    else:
        path.write_bytes(blob)
    return path


def write_idx_layout(folder: Path, train: str, test: str, parts: dict, gz: bool = True) -> None:
    """parts: {"train": (x, y), "test": (x, y)}; train/test are the file prefixes."""
    suffix = ".gz" if gz else ""
    for part, prefix in (("train", train), ("test", test)):
        x, y = parts[part]
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", y)


def cifar_batch(x_hwc: np.ndarray, labels: np.ndarray, label_key: bytes = b"labels") -> dict:
    """A batch dict like the real ones: rows hold the R, G, B planes (CHW order)."""
    n = len(x_hwc)
    d = {
        b"batch_label": b"testing batch 1 of 1",
        label_key: [int(v) for v in labels],
        b"data": np.ascontiguousarray(x_hwc.transpose(0, 3, 1, 2).reshape(n, 3072)),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    if label_key == b"fine_labels":
        d[b"coarse_labels"] = [int(v) // 5 for v in labels]
    return d


def write_pickle(path: Path, obj: object, protocol: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def write_cifar10(root: Path, per_batch: int = 20, n_test: int = 20, protocol: int = 2) -> dict:
    base = root / "cifar-10-batches-py"
    xs, ys = [], []
    for i in range(1, 6):
        x, y = images(per_batch, 32, 32, 3, seed=i), balanced_labels(per_batch, 10, seed=i)
        write_pickle(base / f"data_batch_{i}", cifar_batch(x, y), protocol)
        xs.append(x)
        ys.append(y)
    tx, ty = images(n_test, 32, 32, 3, seed=9), balanced_labels(n_test, 10, seed=9)
    write_pickle(base / "test_batch", cifar_batch(tx, ty), protocol)
    write_pickle(base / "batches.meta", {b"label_names": [b"airplane"] * 10})
    return {"train": (np.concatenate(xs), np.concatenate(ys)), "test": (tx, ty)}


def write_cifar100(root: Path, n_train: int = 200, n_test: int = 100) -> dict:
    base = root / "cifar-100-python"
    x, y = images(n_train, 32, 32, 3, seed=1), balanced_labels(n_train, 100, seed=1)
    tx, ty = images(n_test, 32, 32, 3, seed=2), balanced_labels(n_test, 100, seed=2)
    write_pickle(base / "train", cifar_batch(x, y, b"fine_labels"))
    write_pickle(base / "test", cifar_batch(tx, ty, b"fine_labels"))
    return {"train": (x, y), "test": (tx, ty)}


def write_png(path: Path, arr: np.ndarray, fmt: str | None = None) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)
    return path


def write_folder(root: Path, classes=("cat", "dog"), per_class: int = 5, size=(12, 12), colour: bool = False) -> Path:
    for k, c in enumerate(classes):
        for i in range(per_class):
            arr = images(1, size[1], size[0], 3 if colour else 1, seed=100 * k + i)[0]
            write_png(root / c / f"{i:03d}.png", arr)
    return root


def write_cub(root: Path, classes: int = 3, per_class: int = 4) -> Path:
    base = root / "CUB_200_2011"
    lines_img, lines_lab, lines_split = [], [], []
    img_id = 1
    for c in range(classes):
        folder = f"{c + 1:03d}.Bird_{c}"
        for i in range(per_class):
            rel = f"{folder}/Bird_{c}_{i:04d}.jpg"
            arr = np.full((40 + i, 50, 3), 40 * c + 10, dtype=np.uint8)
            write_png(base / "images" / rel, arr, fmt="JPEG")
            lines_img.append(f"{img_id} {rel}")
            lines_lab.append(f"{img_id} {c + 1}")
            lines_split.append(f"{img_id} {1 if i < per_class - 1 else 0}")
            img_id += 1
    (base / "images.txt").write_text("\n".join(lines_img) + "\n")
    (base / "image_class_labels.txt").write_text("\n".join(lines_lab) + "\n")
    (base / "train_test_split.txt").write_text("\n".join(lines_split) + "\n")
    return base


def write_pair(
    root: Path, stem: str, n_train: int = 100, n_test: int | None = 40, classes: int = 4, h: int = 10, channels: int = 1
) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    x, y = images(n_train, h, h, channels, seed=1), balanced_labels(n_train, classes, seed=1)
    np.savez(root / f"{stem}_train.npz", x=x, y=y)
    out["train"] = (x, y)
    if n_test is not None:
        tx, ty = images(n_test, h, h, channels, seed=2), balanced_labels(n_test, classes, seed=2)
        np.savez(root / f"{stem}_test.npz", x=tx, y=ty)
        out["test"] = (tx, ty)
    return out


@pytest.fixture
def fake():
    """The writers above, as one namespace."""
    return SimpleNamespace(
        images=images,
        balanced_labels=balanced_labels,
        write_idx=write_idx,
        write_idx_layout=write_idx_layout,
        cifar_batch=cifar_batch,
        write_pickle=write_pickle,
        write_cifar10=write_cifar10,
        write_cifar100=write_cifar100,
        write_png=write_png,
        write_folder=write_folder,
        write_cub=write_cub,
        write_pair=write_pair,
    )


@pytest.fixture
def small_val(monkeypatch):
    """Shrink a catalog entry's validation size so tiny fake files follow its protocol."""

    def patch(name: str, val_size: int | float) -> None:
        entry = dataclasses.replace(CATALOG.get(name), val_size=val_size)
        monkeypatch.setitem(CATALOG._items, name, entry)

    return patch
