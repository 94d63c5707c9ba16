"""End-to-end runs on real MNIST images: learned labels beat true labels on the same base set."""
from __future__ import annotations

import pytest

import labeldistill
from labeldistill.baselines import BaselineSettings, baseline


@pytest.mark.slow
def test_learned_labels_beat_true_labels(mnist_small, tmp_path):
    """N = 10 base images (one per class), ridge regression: distilled labels vs the tuned
    true-label RR baseline (same base set: same seed), tested on the same held-out real images.
    (The second-order method needs more steps than a CI test affords to pull clearly ahead;
    its gradient is checked exactly in test_strategies.py.)"""
    method = "ridge"
    target = f"npz:{mnist_small}"
    ds = labeldistill.distill(target, base=10, method=method, epochs=60, val_every=10, test_models=10, seed=0,
                              progress=False, device="cpu", out=tmp_path / "run")
    head = "ridge" if method == "ridge" else "linear"
    bl = baseline(BaselineSettings(target=target, base=10, head=head, models=10, seed=0, device="cpu"))
    assert ds.provenance["base_indices"] == bl["base_indices"]
    ld = ds.evaluation
    assert ld["accuracy_mean"] > bl["accuracy_mean"] + 2.0, (ld["accuracy_mean"], bl["accuracy_mean"])
    # The run directory is complete and loads back.
    back = labeldistill.load(tmp_path / "run")
    assert back.labels.shape == (10, 10) and back.steps == ld["T"]
    assert (tmp_path / "run" / "result.json").exists() and (tmp_path / "run" / "metrics.jsonl").exists()
