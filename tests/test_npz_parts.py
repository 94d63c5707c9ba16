"""gpu/npz_parts.py: a dataset file split into parts and joined back is the same arrays; a wrong part is refused."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

spec = importlib.util.spec_from_file_location("npz_parts", Path(__file__).parents[1] / "gpu" / "npz_parts.py")
npz_parts = importlib.util.module_from_spec(spec)
spec.loader.exec_module(npz_parts)


def test_split_then_join_gives_the_same_arrays_and_a_changed_part_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (101, 3, 4, 4), dtype=np.uint8), rng.integers(0, 10, 101).astype(np.int64)
    np.savez(tmp_path / "toy_train.npz", x=x, y=y)
    files = npz_parts.split(tmp_path / "toy_train.npz", tmp_path / "parts", 3)
    assert [f.parent.name for f in files] == ["p1", "p2", "p3"] and sum(len(np.load(f)["y"]) for f in files) == 101
    npz_parts.join(tmp_path / "parts", "toy_train", tmp_path / "joined.npz")
    j = np.load(tmp_path / "joined.npz")
    assert np.array_equal(j["x"], x) and np.array_equal(j["y"], y) and j["y"].dtype == np.int64
    p2 = np.load(files[1])
    np.savez_compressed(files[1], x=p2["x"], y=(p2["y"] + 1) % 10)  # one part altered
    with pytest.raises(SystemExit, match="does not match its manifest"):
        npz_parts.join(tmp_path / "parts", "toy_train", tmp_path / "bad.npz")
    files[2].unlink()
    with pytest.raises(SystemExit, match="missing part"):
        npz_parts.join(tmp_path / "parts", "toy_train", tmp_path / "bad.npz")
