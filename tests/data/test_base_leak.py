"""Base images never come from the target's validation or test split (issue 14, item 2).

The acceptance test uses the real MNIST files (../shared/data from the repository root): with
``--source mnist --target mnist`` the old code drew 16 / 14 / 15 of 100 base images (seeds 0-2)
from the target's validation split, because the source's pool is the whole official train file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from labeldistill.data import load_source, load_target, select_base
from labeldistill.errors import UserError
from labeldistill.problem import build_problem
from labeldistill.seeding import numpy_generator

def held_out_hashes(target, image_hashes) -> set[str]:
    rec = target.split_record
    return set(image_hashes(rec["files"], rec["pool_sizes"], np.concatenate([target.val.index, target.test.index])))


@pytest.mark.parametrize("source", ["mnist", "MNIST", "npz:{root}/mnist_train.npz"])
def test_same_dataset_base_images_are_not_in_target_val_or_test(shared_data, image_hashes, source):
    """The acceptance test: no base image (by content) is one of the target's val/test images."""
    mnist_root = shared_data
    source = source.format(root=mnist_root)
    for seed in range(3):
        target = load_target("mnist", data_root=mnist_root, seed=seed)
        src = load_source(source, preprocessing=target.preprocessing, data_root=mnist_root, seed=seed)
        problem = build_problem(target, 100, seed, src)
        held_out = held_out_hashes(target, image_hashes)
        # every source here indexes MNIST's train file (then its test file), as the target does
        rec = target.split_record
        base = image_hashes(rec["files"], rec["pool_sizes"], problem.base_index)
        pool = np.concatenate([np.load(rec["files"]["train"])["x"], np.load(rec["files"]["test"])["x"]])
        leaked = sum(h in held_out for h in base)
        assert leaked == 0, f"seed {seed}: {leaked} of 100 base images are target validation/test images"
        assert len(set(base)) == 100
        # the restriction is on record, and the images are the ones the indices name
        prov = problem.provenance()["base_pool"]
        assert prov["shared_files"] == [str((mnist_root / "mnist_train.npz").resolve())]
        assert set(problem.base_index.tolist()) <= set(target.train.index.tolist())
        expected = target.preprocessing.apply(pool[problem.base_index], torch.device("cpu"))
        assert torch.equal(problem.base_x, expected)


def test_same_catalog_source_excludes_exactly_the_validation_split(shared_data):
    target = load_target("mnist", data_root=shared_data, seed=0)
    src = load_source("mnist", preprocessing=target.preprocessing, data_root=shared_data, seed=0)
    prov = build_problem(target, 10, 0, src).provenance()["base_pool"]
    assert (prov["candidates"], prov["excluded"]) == (60_000, 10_000)


def _pair(root: Path, stem: str, n_train: int, n_test: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, size=(n, 8, 8), dtype=np.uint8)
        np.savez(root / f"{stem}_{part}.npz", x=x, y=(np.arange(n) % 4).astype(np.int64))


def test_within_dataset_draw_is_unchanged(tmp_path):
    """source=None: the class-balanced draw from target.train, exactly as before (bit for bit)."""
    _pair(tmp_path, "toy", 200, 40, 1)
    target = load_target("toy", data_root=tmp_path, seed=3)
    problem = build_problem(target, 12, 3, None)
    sel = select_base(target.train.y, 12, num_classes=4, generator=numpy_generator(3, "base"))
    assert torch.equal(problem.base_x, target.train.x[torch.as_tensor(sel)])
    assert problem.base_index.tolist() == target.train.index[sel].tolist()
    assert "base_pool" not in problem.provenance()


def test_unrelated_source_draw_is_unchanged(tmp_path):
    """A source that shares no file with the target: the same uniform draw over its whole pool."""
    _pair(tmp_path, "toy", 200, 40, 1)
    _pair(tmp_path, "other", 150, 30, 2)
    target = load_target("toy", data_root=tmp_path, seed=0)
    src = load_source("other", preprocessing=target.preprocessing, data_root=tmp_path, seed=0)
    problem = build_problem(target, 20, 0, src)
    sel = select_base(src.images.y, 20, num_classes=None, generator=numpy_generator(0, "base"))
    assert problem.base_index.tolist() == src.images.index[sel].tolist()
    assert problem.provenance()["base_pool"] == {
        "candidates": 150, "excluded": 0, "shared_files": [],
        "rule": "images from files the target also reads are used only if in the target's training split"}


def test_target_test_file_as_source_is_refused_or_excluded(tmp_path):
    """``npz:<target's test file>`` as source: every candidate is a target test image."""
    _pair(tmp_path, "toy", 200, 40, 1)
    target = load_target("toy", data_root=tmp_path, seed=0)
    src = load_source(f"npz:{tmp_path}/toy_test.npz", preprocessing=target.preprocessing, seed=0)
    with pytest.raises(UserError, match="only 0 of its 32 images may be used") as e:
        build_problem(target, 5, 0, src)
    assert "\n" not in str(e.value)


def test_symlinked_copy_is_the_same_file(tmp_path):
    _pair(tmp_path / "d", "toy", 200, 40, 1)
    (tmp_path / "link").mkdir()
    (tmp_path / "link" / "copy.npz").symlink_to(tmp_path / "d" / "toy_train.npz")
    target = load_target("toy", data_root=tmp_path / "d", seed=1)
    src = load_source(f"npz:{tmp_path}/link/copy.npz", preprocessing=target.preprocessing, seed=5)
    problem = build_problem(target, 100, 1, src)
    assert set(problem.base_index.tolist()) <= set(target.train.index.tolist())
    assert problem.provenance()["base_pool"]["shared_files"] == [str((tmp_path / "d" / "toy_train.npz").resolve())]


def test_target_subset_limits_same_dataset_pool_to_the_subset(tmp_path):
    """Table 8 (target_size): same-dataset base images come from the target's (smaller) training split."""
    _pair(tmp_path, "toy", 400, 40, 1)
    target = load_target("toy", data_root=tmp_path, seed=0, target_size=60)
    src = load_source("toy", preprocessing=target.preprocessing, data_root=tmp_path, seed=0)
    problem = build_problem(target, 50, 0, src)
    assert set(problem.base_index.tolist()) <= set(target.train.index.tolist())
    assert problem.provenance()["base_pool"]["excluded"] == 400 - 60
