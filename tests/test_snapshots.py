"""A run keeps every validated snapshot; re-selecting from them repeats the loop's own choice exactly."""
from __future__ import annotations

import json

import torch

import labeldistill
from labeldistill.distill.reselect import reselect
from labeldistill.distill.validation import load_snapshots


def _validations(run):
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in recs if r["kind"] == "validation"]


def test_snapshots_are_kept_and_reselection_repeats_the_run(mnist_small, tmp_path):
    runs = {}
    for m in (1, 2):
        out = tmp_path / f"m{m}"
        runs[m] = labeldistill.distill(f"npz:{mnist_small}", base=10, method="ridge", out=out, progress=False, epochs=6,
                                       val_every=1, val_group=4, test_models=2, device="cpu", validation_models=m)
    snaps = load_snapshots(tmp_path / "m1")
    assert [s.epoch for s in snaps] == list(range(1, 7)) and [s.number for s in snaps] == list(range(6))
    # The same loop trajectory whatever the selection rule: the snapshots of both runs are equal.
    for a, b in zip(snaps, load_snapshots(tmp_path / "m2")):
        assert torch.equal(a.labels, b.labels) and a.steps_t == b.steps_t
    _, (r1, r2) = reselect(tmp_path / "m1", [1, 2])
    for r, m in ((r1, 1), (r2, 2)):
        vals = _validations(tmp_path / f"m{m}")
        assert [round(v, 4) for v in r.curve] == [v["val_accuracy"] for v in vals]
        chosen = [v["epoch"] for v in vals if v["selected"]][-1]
        assert r.selected.epoch == chosen
        assert torch.equal(r.selected.labels, runs[m].labels)
