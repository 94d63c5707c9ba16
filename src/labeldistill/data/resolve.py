"""Dataset arguments -> loaded, split, normalised tensors.

A dataset argument is a catalog name (``mnist``, ``cifar10``, ...), ``npz:FILE``,
``folder:DIR``, or the name of a ``<name>_train.npz`` (+ ``<name>_test.npz``) pair in the data root.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, UserError
from ..seeding import numpy_generator
from .cache import default_cache_dir
from .catalog import CATALOG, DatasetEntry, list_datasets
from .download import fetch_with_torchvision
from .layouts import Located, pair_layout
from .preprocess import Preprocessing
from .raw import RawDataset, check_labels, describe
from .readers.folder import read_image_folder
from .readers.npz import read_xy_npz
from .splits import (
    DEFAULT_FRACTIONS,
    check_fractions,
    index_sha256,
    split_by_fractions,
    split_off_validation,
    stratified_subset,
    validation_count,
)
from .tensors import LabelledTensors, SourceData, TargetData

_CUSTOM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_CUSTOM_LICENCE = "user-supplied data; licence as given by its owner"


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """The folder searched for dataset files.

    Args:
        data_root: explicit folder (``--data-root``); else ``$LABELDISTILL_DATA``; else
            ``$XDG_CACHE_HOME/labeldistill`` (``~/.cache/labeldistill``).
    """
    if data_root is not None and str(data_root) != "":
        return Path(data_root).expanduser().absolute()
    env = os.environ.get("LABELDISTILL_DATA")
    if env:
        return Path(env).expanduser().absolute()
    return default_cache_dir()


@dataclass
class _Resolved:
    name: str  # canonical dataset argument
    entry: DatasetEntry | None
    read: Callable[[int | None], RawDataset]
    licence: str
    how_to_get: str


def _unknown(spec: str, root: Path) -> UserError:
    return UserError(
        f"Unknown dataset '{spec}'. Known: {', '.join(list_datasets())} "
        f"(or npz:FILE, folder:DIR, or <name>_train.npz under the data root {root})."
    )


def _locate_entry(entry: DatasetEntry, root: Path, download: bool) -> Callable[[int | None], RawDataset]:
    if entry.builtin is not None:
        builtin = entry.builtin
        return lambda _size: builtin()
    found = entry.locate(root)
    complete = [f for f in found if f.complete]
    if not complete and download:
        fetch_with_torchvision(entry, root)  # raises for datasets torchvision cannot fetch
        complete = [f for f in entry.locate(root) if f.complete]
        if not complete:
            raise DataError(f"Dataset '{entry.name}': downloaded into {root} but its files were not found there")
    if complete:
        return complete[0].read
    if found:
        f = found[0]
        raise DataError(
            f"Dataset '{entry.name}': found {f.present[0]} but not {f.missing[0]}; to get it: {entry.how_to_get}"
        )
    raise DataError(f"Dataset '{entry.name}' not found under {root}; to get it: {entry.how_to_get}")


def _resolve(spec: str, root: Path, download: bool) -> _Resolved:
    if not isinstance(spec, str) or not spec.strip():
        raise UserError(f"A dataset argument must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if spec.startswith("npz:"):
        path = Path(spec[4:]).expanduser().absolute()
        if not path.is_file():
            raise DataError(f"{path}: file not found (npz:FILE needs an .npz with arrays x uint8 N×H×W[×3] and y)")

        def read_npz(_size: int | None) -> RawDataset:
            x, y, names = read_xy_npz(path)
            return RawDataset(x, y, class_names=names, files={"train": str(path)})

        return _Resolved(f"npz:{path}", None, read_npz, _CUSTOM_LICENCE, f"check {path}")
    if spec.startswith("folder:"):
        path = Path(spec[7:]).expanduser().absolute()
        if not path.is_dir():
            raise DataError(f"{path}: folder not found (folder:DIR needs one sub-folder of images per class)")

        def read_folder(size: int | None) -> RawDataset:
            x, y, names = read_image_folder(path, size)
            return RawDataset(x, y, class_names=names, files={"train": str(path)})

        return _Resolved(f"folder:{path}", None, read_folder, _CUSTOM_LICENCE, f"check {path}")
    if spec.lower() in CATALOG:
        entry = CATALOG.get(spec.lower())
        return _Resolved(entry.name, entry, _locate_entry(entry, root, download), entry.licence, entry.how_to_get)
    if _CUSTOM_NAME.fullmatch(spec):
        found = pair_layout(root, spec)
        if found is not None:
            if not found.complete:
                raise DataError(f"Dataset '{spec}': found {found.present[0]} but not {found.missing[0]}")
            return _Resolved(spec, None, found.read, _CUSTOM_LICENCE, f"check {found.where}")
    raise _unknown(spec, root)


def _read(res: _Resolved, size: int | None) -> RawDataset:
    try:
        return res.read(size)
    except DataError as e:
        if res.entry is None or res.entry.how_to_get in str(e):
            raise
        raise DataError(f"{e}; to get a good copy: {res.how_to_get}") from e


def _class_names(res: _Resolved, raw: RawDataset) -> list[str]:
    """Class names, after checking every label is a valid class index."""
    names = list(res.entry.class_names) if res.entry and res.entry.class_names else raw.class_names
    if names is None:
        top = int(raw.pooled_y.max()) if len(raw.pooled_y) else 0
        names = [str(i) for i in range(top + 1)]
    for part, y in (("train", raw.train_y), ("test", raw.test_y)):
        if y is not None:
            check_labels(y, len(y), raw.files.get(part, res.name), len(names))
    return names


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise UserError(f"Unknown device {device!r} ({describe(e)})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"Device {device!r} asked for, but CUDA is not available; use device='cpu'")
    return dev


def _check_size(image_size: int | None) -> None:
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise UserError(f"image_size must be a positive integer or None, got {image_size!r}")


def _tensors(
    raw: RawDataset, pooled_y: np.ndarray, index: np.ndarray, prep: Preprocessing, dev: torch.device
) -> LabelledTensors:
    y = torch.as_tensor(pooled_y[index], dtype=torch.int64, device=dev)
    return LabelledTensors(prep.apply(raw.take(index), dev), y, index)


def load_target(
    spec: str,
    *,
    data_root: str | os.PathLike | None = None,
    seed: int = 0,
    split: tuple[float, float, float] | None = None,
    device: str | torch.device = "cpu",
    download: bool = False,
    image_size: int | None = None,
    target_size: int | None = None,
) -> TargetData:
    """Load a target dataset as normalised train / validation / test tensors on ``device``.

    Datasets with an official test part keep it as the test split and set aside the catalog's
    validation size from the official train part (MNIST 10,000, CIFAR 5,000, ...; custom pairs
    10%). Datasets without one (``npz:``, ``folder:``, a lone ``<name>_train.npz``, ``digits``)
    are split by ``split`` fractions, 80/10/10 by default. All splits are stratified and seeded
    with ``numpy_generator(seed, "split")``.

    Args:
        spec: catalog name, ``npz:FILE``, ``folder:DIR``, or a custom ``<name>`` with
            ``<name>_train.npz`` in the data root.
        data_root: where dataset files live (see :func:`resolve_data_root`).
        seed: run seed; the split and target subset use their own derived streams.
        split: (train, val, test) fractions for datasets without an official test part.
        device: where the tensors live.
        download: let torchvision fetch missing catalog datasets into the data root.
        image_size: resize to this side (default: the catalog's size, or the stored size).
        target_size: keep a stratified random subset of this many training images (Table 8).

    Example:
        >>> data = load_target("npz:../shared/data/kmnist_test.npz")  # doctest: +SKIP
        >>> len(data.train), len(data.val), len(data.test)  # doctest: +SKIP
        (8000, 1000, 1000)
    """
    dev = _device(device)
    _check_size(image_size)
    fractions = check_fractions(split) if split is not None else None
    root = resolve_data_root(data_root)
    res = _resolve(spec, root, download)
    raw = _read(res, image_size)
    class_names = _class_names(res, raw)
    rng = numpy_generator(seed, "split")
    if raw.has_test:
        if fractions is not None:
            raise UserError(f"split= applies only to datasets without an official test part; '{res.name}' has one")
        val_size = res.entry.val_size if res.entry is not None and res.entry.val_size is not None else 0.1
        n_val = validation_count(val_size, raw.n_train)
        train_idx, val_idx = split_off_validation(raw.train_y, n_val, rng, res.name)
        test_idx = np.arange(raw.n_train, raw.n_train + raw.n_test, dtype=np.int64)
        protocol = "official test part; validation split off the official train part"
    else:
        fractions = fractions or DEFAULT_FRACTIONS
        train_idx, val_idx, test_idx = split_by_fractions(raw.train_y, fractions, rng, res.name)
        protocol = "one pool split by fractions"
        if res.entry is not None and res.entry.val_size is not None:
            warnings.warn(
                f"'{res.name}': no test file found, so its training file is split {list(fractions)}, "
                "not the paper's protocol",
                stacklevel=2,
            )
    n_train_full = len(train_idx)
    pooled_y = raw.pooled_y
    if target_size is not None:
        subset_rng = numpy_generator(seed, "target-subset")
        train_idx = stratified_subset(pooled_y[train_idx], train_idx, target_size, subset_rng)

    if res.entry is not None and res.entry.mean is not None:
        prep = Preprocessing(res.entry.channels, image_size or res.entry.size, res.entry.mean, res.entry.std)
    else:
        channels = res.entry.channels if res.entry is not None else (3 if raw.train_x.ndim == 4 else 1)
        h, w = raw.train_x.shape[1:3]
        size = image_size or (h if h == w else None)
        prep = Preprocessing.measured(raw.take(train_idx), channels, size, dev)

    record = {
        "dataset": res.name,
        "seed": int(seed),
        "protocol": protocol,
        "fractions": list(fractions) if fractions is not None else None,
        "val_size": len(val_idx),
        "files": dict(raw.files),
        "parts": [p for p in ("train", "test") if p in raw.files],
        "pool_sizes": {"train": raw.n_train, "test": raw.n_test},
        "target_size": None if target_size is None else int(target_size),
        "train_size_before_subset": n_train_full,
        "sizes": {"train": len(train_idx), "val": len(val_idx), "test": len(test_idx)},
        "index_sha256": index_sha256(train_idx, val_idx, test_idx),
        "train": train_idx.tolist(),
        "val": val_idx.tolist(),
        "test": test_idx.tolist(),
    }
    return TargetData(
        name=res.name,
        class_names=class_names,
        train=_tensors(raw, pooled_y, train_idx, prep, dev),
        val=_tensors(raw, pooled_y, val_idx, prep, dev),
        test=_tensors(raw, pooled_y, test_idx, prep, dev),
        preprocessing=prep,
        split_record=record,
        licence=res.licence,
    )


def load_source(
    spec: str,
    *,
    preprocessing: Preprocessing,
    data_root: str | os.PathLike | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    download: bool = False,
) -> SourceData:
    """Load a source dataset's training part as base-image candidates, with the target's preprocessing.

    The training part is the official train part when there is an official test part, else the
    training split of the default 80/10/10 split (seeded like :func:`load_target`), so a source's
    test images are never used. The result records the files it read: when they are the target's
    own (``--source mnist --target mnist``), :func:`labeldistill.problem.build_problem` takes base
    images from them only if they are in the target's training split.

    Args:
        spec: any dataset argument accepted by :func:`load_target`.
        preprocessing: the target's :attr:`TargetData.preprocessing` (size and channels follow it).
        data_root: where dataset files live.
        seed: run seed (used only for sources split by fractions).
        device: where the tensors live.
        download: let torchvision fetch missing catalog datasets.
    """
    if not isinstance(preprocessing, Preprocessing):
        raise UserError(f"load_source needs the target's Preprocessing, got {type(preprocessing).__name__}")
    dev = _device(device)
    res = _resolve(spec, resolve_data_root(data_root), download)
    raw = _read(res, preprocessing.size)
    class_names = _class_names(res, raw)
    if raw.has_test:
        index = np.arange(raw.n_train, dtype=np.int64)
    else:
        index = split_by_fractions(raw.train_y, DEFAULT_FRACTIONS, numpy_generator(seed, "split"), res.name)[0]
    images = _tensors(raw, raw.pooled_y, index, preprocessing, dev)
    pool_sizes = {"train": raw.n_train, "test": raw.n_test}
    return SourceData(res.name, images, class_names, res.licence, files=dict(raw.files), pool_sizes=pool_sizes)


def _status_row(name: str, root: Path) -> dict:
    entry = CATALOG.get(name)
    row: dict = {
        "name": name,
        "kind": entry.kind,
        "present": False,
        "where": None,
        "sizes": None,
        "how_to_get": entry.how_to_get,
        "problem": None,
    }
    try:
        if entry.builtin is not None:
            row.update(present=True, sizes={"train": entry.builtin().n_train, "test": None})
            return row
        found = entry.locate(root)
        complete = [f for f in found if f.complete]
        if complete:
            row["where"] = str(complete[0].where)
            row.update(sizes=complete[0].count(), present=True)
        elif found:
            f: Located = found[0]
            row.update(where=str(f.where), problem=f"found {f.present[0]} but not {f.missing[0]}")
    except DataError as e:
        row.update(present=False, sizes=None, problem=str(e))
    return row


def dataset_status(data_root: str | os.PathLike | None = None) -> list[dict]:
    """One row per catalog dataset: is it under the data root, where, how big, how to get it.

    Rows hold ``name``, ``kind`` ("grey"/"colour"), ``present``, ``where`` (path or None),
    ``sizes`` ({"train": n, "test": n or None} from the official files, or None), ``how_to_get``,
    and ``problem`` (why a dataset whose files were partly found is not usable, else None).

    Args:
        data_root: where dataset files live (see :func:`resolve_data_root`).
    """
    root = resolve_data_root(data_root)
    return [_status_row(name, root) for name in list_datasets()]


def load_for_arch(spec: str, arch: str | None, **kwargs) -> TargetData:
    """``load_target`` at the input size an architecture needs (AlexCifarNet: 32 px; LeNet: at
    least 28 px, so 8x8 digits are resized); ``arch=None`` means the dataset's default model."""
    from ..models import input_size_for
    from ..paper_defaults import default_arch

    target = load_target(spec, image_size=input_size_for(arch, None) if arch else None, **kwargs)
    name = arch or default_arch(target.name, target.preprocessing.channels)
    size = input_size_for(name, target.preprocessing.size)
    if size is not None and size != target.preprocessing.size:
        target = load_target(spec, image_size=size, **kwargs)
    return target
