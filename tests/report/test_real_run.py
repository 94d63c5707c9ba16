"""One real (tiny) distillation on scikit-learn's digits, then its report."""
from __future__ import annotations

import pytest
import torch

import labeldistill
from labeldistill.report import make_report

from .helpers import check_png


@pytest.mark.slow
def test_report_of_a_real_run(tmp_path, monkeypatch):
    monkeypatch.setenv("LABELDISTILL_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    run = tmp_path / "run"
    labeldistill.distill("digits", base=10, method="ridge", epochs=3, test_models=2, val_every=1, progress=False, out=run, device="cpu")
    md = make_report(run)
    names = sorted(p.name for p in md.parent.glob("*.png"))
    assert names == ["label_heatmap.png", "labels_grid.png", "training_curves.png"]
    for name in names:
        check_png(md.parent / name)
    assert "argmax of the learned label equals" in md.read_text()
