"""Stand-ins never use the target's own images (issue 14, items 2 and 6).

* A stand-in base set is another dataset than the target (KMNIST for an MNIST target, MNIST for
  a KMNIST target), never one that shares images with it.
* A KMNIST target is the real KMNIST (kmnist_train.npz + kmnist_test.npz) when present; the
  80/10/10 split of the official test images only when the training file is missing.
* Table 2 runs on ``cifar100-test-stand-in`` when CIFAR-100's training split is missing.

The acceptance test (``test_stand_in_base_images_are_not_target_images``) uses the real files in
../shared/data: before the fix, the EMNIST -> MNIST stand-in drew MNIST's own images.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labeldistill.data import load_for_arch, load_source
from labeldistill.experiments import DataView, Options, get_table, list_tables, parse_cell, plan_cell
from labeldistill.problem import build_problem

CIFAR100_STAND_IN = "cifar100-test-stand-in"  # the name paper_defaults.py gives CIFAR-100's settings
_FAMILY = {"kuzushiji-49": "kuzushiji", "kmnist": "kuzushiji", CIFAR100_STAND_IN: "cifar100"}


def family(spec: str) -> str:
    """The dataset a dataset argument reads (a file stand-in ``npz:.../kmnist_test.npz`` is KMNIST)."""
    if spec.startswith("npz:"):
        spec = Path(spec[4:]).name.split("_")[0]
    return _FAMILY.get(spec, spec)


def plan(name: str, data: DataView, **kw):
    return plan_cell(parse_cell(name), Options(**kw), data)


def _pair(root: Path, stem: str, n_train: int | None, n_test: int, classes: int = 10, size: int = 28, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (size, size) if size == 28 else (size, size, 3)
    for part, n in (("train", n_train), ("test", n_test)):
        if n:
            np.savez(root / f"{stem}_{part}.npz", x=rng.integers(0, 256, size=(n, *shape), dtype=np.uint8),
                     y=(np.arange(n) % classes).astype(np.int64))


def _k49(root: Path) -> None:
    rng = np.random.default_rng(4)
    for part in ("train", "test"):
        np.savez(root / f"k49-{part}-imgs.npz", rng.integers(0, 256, size=(49, 28, 28), dtype=np.uint8))
        np.savez(root / f"k49-{part}-labels.npz", np.arange(49, dtype=np.uint8))


@pytest.fixture
def full_root(tmp_path) -> Path:
    """MNIST, the real-KMNIST pair (train + test) and Kuzushiji-49, tiny."""
    root = tmp_path / "full"
    root.mkdir()
    _pair(root, "mnist", 60, 20, seed=1)
    _pair(root, "kmnist", 60, 20, seed=2)
    _k49(root)
    return root


def test_real_kmnist_is_the_target_when_its_training_file_is_there(full_root):
    data = DataView(full_root)
    for cell in ("emnist-letters:kmnist/ld/100", "kmnist/baseline/10"):
        p = plan(cell, data, stand_in=True)
        assert p.config.target == "kmnist" and p.config.split is None and not p.missing
        assert not any("KMNIST target =" in note for note in p.stand_in)
    assert plan("emnist-letters:kmnist/ld/100", data).missing == ({"dataset": "emnist-letters",
                                                                  "how_to_get": data.how_to_get("emnist-letters")},)


def test_kmnist_test_file_is_the_target_only_without_the_training_file(data_root):
    """data_root (conftest) holds kmnist_test.npz alone: the old 80/10/10 stand-in, labelled."""
    p = plan("emnist-letters:kmnist/ld/100", DataView(data_root), stand_in=True)
    assert p.config.target == f"npz:{data_root / 'kmnist_test.npz'}" and p.config.split == (0.8, 0.1, 0.1)
    assert any("kmnist_train.npz is missing" in note for note in p.stand_in)


@pytest.mark.parametrize("root_kind", ["full", "conftest"])
def test_base_stand_in_is_another_dataset(root_kind, full_root, data_root):
    data = DataView(full_root if root_kind == "full" else data_root)
    seen = 0
    for spec in list_tables():
        for name in spec.names():
            p = plan(name, data, stand_in=True)
            if p.cell.source is None or p.config.source == p.cell.source:
                continue
            seen += 1
            assert family(p.config.source) != family(p.config.target), name
            assert family(p.config.source) != family(p.cell.target), name
            assert p.stand_in and p.stand_in[0].startswith("stand-in: ") and "instead of EMNIST letters" in p.stand_in[0]
            assert p.run_slug.endswith("-stand-in")
    assert seen > 24  # Table 3's E -> M and E -> K cells at least


def test_stand_in_choices(full_root, data_root):
    full, small = DataView(full_root), DataView(data_root)
    assert plan("emnist-letters:mnist/ld/100", full, stand_in=True).config.source == "kmnist"
    assert "KMNIST characters" in plan("emnist-letters:mnist/ld/100", full, stand_in=True).stand_in[0]
    assert plan("emnist-letters:kmnist/ld/100", full, stand_in=True).config.source == "mnist"
    # Kuzushiji-49 shares KMNIST's characters: MNIST is its stand-in, and KMNIST never is
    assert plan("emnist-letters:kuzushiji-49/ld/10", full, stand_in=True).config.source == "mnist"
    # only KMNIST's test file: its training part (of the 80/10/10 split) is the MNIST target's base set
    m = plan("emnist-letters:mnist/ld/100", small, stand_in=True)
    assert m.config.source == f"npz:{data_root / 'kmnist_test.npz'}" and m.config.target == "mnist"
    assert "KMNIST characters" in m.stand_in[0] and "MNIST target" in m.stand_in[0]
    # nothing but MNIST: no stand-in for an MNIST target (never MNIST itself)
    (data_root / "kmnist_test.npz").unlink()
    alone = plan("emnist-letters:mnist/ld/100", DataView(data_root), stand_in=True)
    assert alone.config.source == "emnist-letters" and [x["dataset"] for x in alone.missing] == ["emnist-letters"]


def test_table2_runs_on_the_cifar100_stand_in(tmp_path):
    root = tmp_path / "c100"
    root.mkdir()
    _pair(root, "cifar100", None, 300, classes=100, size=32)
    data = DataView(root)
    for name in get_table(2).names():
        assert [m["dataset"] for m in plan(name, data).missing] == ["cifar100"]  # not without --stand-in
        p = plan(name, data, stand_in=True)
        assert p.config.target == CIFAR100_STAND_IN and p.config.split is None and not p.missing
        assert len(p.stand_in) == 1 and "cifar100-test-stand-in" in p.stand_in[0] and "not the paper's data" in p.stand_in[0]
        assert p.run_slug.endswith("-stand-in") and p.channels == 3
    exp = plan("cifar100/ld/100", data, stand_in=True).expected_config()
    assert (exp["epochs"], exp["inner_batch"], exp["reset_window"], exp["arch"]) == (800, 100, 100, "alexnet")
    assert plan("cifar100/baseline/100", data, stand_in=True).expected_config()["arch"] == "alexnet"


@pytest.mark.parametrize("table", [3, 2])
def test_stand_in_base_images_are_not_target_images(shared_data, image_hashes, table):
    """The acceptance test: resolve every stand-in cell of Tables 3 and 2 on the real data, draw its
    base set as a run would, and check (by sha256 of the raw uint8 image) that no base image is
    one of the target's validation or test images, and that a base set of another dataset is
    another dataset than the target."""
    shared = shared_data
    data = DataView(shared)
    plans = [p for p in (plan(n, data, stand_in=True) for n in get_table(table).names()) if p.stand_in and not p.missing]
    assert plans, f"Table {table} has no stand-in cell on {shared}"
    groups: dict[tuple, set[int]] = {}
    for p in plans:
        cfg = p.config
        if p.cell.source is not None:
            assert cfg.source is not None and family(cfg.source) != family(cfg.target), p.cell.name
        key = (cfg.target, getattr(cfg, "source", None), cfg.split, cfg.seed, getattr(cfg, "target_size", None))
        groups.setdefault(key, set()).add(cfg.base)
    for (target_spec, source_spec, split, seed, target_size), bases in groups.items():
        target = load_for_arch(target_spec, None, data_root=shared, seed=seed, split=split, target_size=target_size)
        rec = target.split_record
        held_out = set(image_hashes(rec["files"], rec["pool_sizes"], np.concatenate([target.val.index, target.test.index])))
        source = None
        base_files = (rec["files"], rec["pool_sizes"])
        if source_spec is not None:
            source = load_source(source_spec, preprocessing=target.preprocessing, data_root=shared, seed=seed)
            base_files = (source.files, source.pool_sizes)
            assert source.name != target.name
        for n in sorted(bases):
            problem = build_problem(target, n, seed, source)
            leaked = [int(i) for i, h in zip(problem.base_index, image_hashes(*base_files, problem.base_index)) if h in held_out]
            assert not leaked, f"{target_spec} <- {source_spec} N={n}: base images {leaked[:5]} are target val/test images"
