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
    ds = labeldistill.distill(target, base=10, method=method, epochs=20, val_every=5, test_models=5, seed=0,
                              progress=False, device="cpu", out=tmp_path / "run")
    head = "ridge" if method == "ridge" else "linear"
    bl = baseline(BaselineSettings(target=target, base=10, head=head, models=5, seed=0, device="cpu"))
    assert ds.provenance["base_indices"] == bl["base_indices"]
    ld = ds.evaluation
    assert ld["accuracy_mean"] > bl["accuracy_mean"] + 2.0, (ld["accuracy_mean"], bl["accuracy_mean"])
    # The run directory is complete and loads back.
    back = labeldistill.load(tmp_path / "run")
    assert back.labels.shape == (10, 10) and back.steps == ld["T"]
    assert (tmp_path / "run" / "result.json").exists() and (tmp_path / "run" / "metrics.jsonl").exists()


def test_evaluate_export_and_train_on(mnist_small, tmp_path):
    """A distilled run evaluated with another architecture / head / T + delta, saved under
    evaluations/ (never over result.json); the exported file trains a user's own model."""
    import json

    import torch

    from labeldistill.cli import main

    run = tmp_path / "run"
    ds = labeldistill.distill(f"npz:{mnist_small}", base=10, method="second-order", epochs=2, val_every=1, test_models=2,
                              progress=False, device="cpu", out=run)
    before = (run / "result.json").read_bytes()
    r = labeldistill.evaluate(run, arch="resnet14", head="ridge", models=2, steps="+5", device="cpu")
    assert r["steps"] == ds.steps + 5 and r["arch"] == "resnet14" and r["head"] == "ridge" and len(r["accuracies"]) == 2
    saved = json.loads((run / "evaluations" / f"resnet14-ridge-T{ds.steps + 5}-K2.json").read_text())
    assert saved["accuracy_mean"] == r["accuracy_mean"]
    assert (run / "result.json").read_bytes() == before
    assert main(["evaluate", str(run), "--models", "2", "--steps", "7", "--device", "cpu", "--json"]) == 0
    assert (run / "evaluations" / "lenet-linear-T7-K2.json").exists()
    assert main(["export", str(run), "--out", str(tmp_path / "share.safetensors")]) == 0
    shared = labeldistill.load(tmp_path / "share.safetensors")
    # The exported file does not know the target: evaluate needs it named.
    r2 = labeldistill.evaluate(tmp_path / "share.safetensors", target=f"npz:{mnist_small}", models=2, device="cpu")
    assert r2["steps"] == ds.steps
    # Any training loop: train_on with a module the user brings (features + head not needed for linear).
    class Mine(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features, self.head = torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10)

        def forward(self, x):
            return self.head(self.features(x))

    net = Mine()
    [trained] = labeldistill.train_on(shared.images, shared.labels, net, steps=20, batch_size=5)
    assert trained(shared.images).shape == (10, 10)
    loader = torch.utils.data.DataLoader(shared.to_dataset(), batch_size=5, shuffle=True)
    x, y = next(iter(loader))
    assert x.shape == (5, 1, 28, 28) and torch.allclose(y.sum(1), torch.ones(5))
