"""``report --compare``: the selected base images of two runs side by side."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from labeldistill.artifact import DistilledSet
from labeldistill.cli import main
from labeldistill.data import Preprocessing
from labeldistill.report.load import load_run, selected_base

PRE = Preprocessing(channels=1, size=28, mean=(0.1307,), std=(0.3081,))
DIGITS = [str(i) for i in range(10)]


def _run(path: Path, indices: list[int], selector: str, seed: int) -> Path:
    """A minimal finished distillation run directory whose base set has the given dataset indices."""
    rng = np.random.default_rng(seed)
    n = len(indices)
    path.mkdir(parents=True)
    own = [int(i) % 10 for i in indices]
    sha = f"{seed:02d}" + "ab" * 31
    problem = {"base_dataset": "mnist", "base_indices": indices, "cross_dataset": False, "target": "mnist", "class_names": DIGITS,
               "base_select": {"name": selector}, "base_sha256": sha}
    cfg = {"target": "mnist", "source": None, "base": n, "method": "ridge", "arch": "lenet", "seed": seed, "reset_window": 50}
    (path / "config.json").write_text(json.dumps({"config": cfg, "problem": problem}))
    (path / "metrics.jsonl").write_text(json.dumps({"kind": "step", "step": 1, "error": 50.0}) + "\n")
    # Image i is a bright square whose place encodes its dataset index: shared images look the same in both runs.
    x = torch.full((n, 1, 28, 28), -0.42)
    for k, i in enumerate(indices):
        r, c = divmod(int(i) % 49, 7)
        x[k, 0, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] = 2.8
    labels = torch.softmax(torch.tensor(rng.normal(size=(n, 10)), dtype=torch.float32), 1)
    prov = {**problem, "base_classes": DIGITS, "base_labels": own}
    DistilledSet(x, labels, 10, PRE, DIGITS, {"arch": "lenet", "head": "ridge"}, prov).save(path / "distilled.safetensors")
    return path


def test_compare_shows_both_base_sets(tmp_path, capsys):
    a = _run(tmp_path / "random", [3, 11, 25, 40, 52, 68, 71, 89, 90, 104], "random", 0)
    b = _run(tmp_path / "t7", [3, 11, 25, 41, 53, 66, 77, 88, 99, 105], "paper-table7", 1)
    got = selected_base(load_run(b))
    assert got["selector"] == "paper-table7" and got["indices"][:3] == [3, 11, 25] and got["images"].shape == (10, 28, 28, 1)
    assert got["classes"][:3] == ["3", "1", "5"] and got["sha256"].startswith("01")
    out = tmp_path / "cmp"
    assert main(["report", "--compare", str(a), str(b), "--out", str(out)]) == 0
    assert "base_sets.png" in capsys.readouterr().out
    png = out / "base_sets.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    text = (out / "report.md").read_text()
    assert "](base_sets.png)" in text and "| random | random | 10 | 00abababababab" in text
    assert "| t7 | paper-table7 | 10 |" in text


def test_compare_without_distilled_sets_says_so(tmp_path):
    from labeldistill.report import compare_runs

    a = _run(tmp_path / "a", [1, 2], "random", 0)
    b = _run(tmp_path / "b", [1, 3], "kcenter", 1)
    for r in (a, b):
        (r / "distilled.safetensors").unlink()
    md = compare_runs([a, b], tmp_path / "cmp")
    assert not (md.parent / "base_sets.png").exists()
    assert "No run has its distilled set yet" in md.read_text()
