"""``select_protocol``: label selection (and the start candidate) scored by students of a fixed-epoch protocol.

Each snapshot's students must be exactly ``evaluate_protocol`` on its labels with its own seeds (independent of the
grouping), the selection the loop's rule on their means, the loop itself untouched, and a start candidate scored the
same way; a short ``dc`` (2 epochs) keeps it cheap."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

import labeldistill
from labeldistill.distill import DistillConfig, Distiller
from labeldistill.distill.validation import validation_seed
from labeldistill.engine import make_learner
from labeldistill.errors import UserError
from labeldistill.protocols import _base as protocol_base
from labeldistill.protocols import evaluate_protocol, get_protocol
from labeldistill.runs import read_metrics
from labeldistill.seeding import derive_seed

from test_distill_loop import TinyNet, _capture_snapshots, _config, blob_problem


@pytest.fixture
def short_dc(monkeypatch):
    short = dataclasses.replace(get_protocol("dc"), epochs=2, arch=None)  # the loop's own architecture, 2 epochs
    monkeypatch.setitem(protocol_base.PROTOCOLS._items, "dc", short)
    return short


def _run(tmp_path, name, **kw):
    d = Distiller(_config("ridge", **kw), blob_problem(), model_factory=TinyNet, run_dir=tmp_path / name, progress=False)
    snaps = _capture_snapshots(d)
    d.open_log(resume=False)
    res = d.run()
    d.close()
    return d, res, snaps, read_metrics(tmp_path / name / "metrics.jsonl")


@pytest.mark.parametrize("group", [1, 3])
def test_snapshots_are_scored_by_the_protocols_students(tmp_path, short_dc, group):
    d, res, snaps, recs = _run(tmp_path, "dc", select_protocol="dc", validation_models=2, val_group=group)
    vals = [r for r in recs if r["kind"] == "validation"]
    assert [v["epoch"] for v in vals] == [2, 4, 6] and all(v["val_models"] == 2 for v in vals)
    student = make_learner(TinyNet, 1, 6, 2, head="linear")
    p = d.problem
    for k, v in enumerate(vals):
        ev = evaluate_protocol(short_dc, student, p.base_x, snaps[v["epoch"]], p.target.val.x, p.target.val.y, steps=v["T"],
                               seed=validation_seed(3, k), models=2, batch_size=4, lr=1e-3, purpose="validation-models")
        assert v["val_accuracies"] == [round(a, 4) for a in ev.accuracies]
    # The loop's rule on the students' means: the best, ties to the later snapshot.
    best = max(range(3), key=lambda i: (vals[i]["val_accuracy"], i))
    assert res.selected.epoch == vals[best]["epoch"] and torch.equal(res.labels, snaps[vals[best]["epoch"]])
    # Every student is in the run's ledger (a stopped validation resumes from it).
    assert len(list((tmp_path / "dc" / "ledger").glob("*"))) >= 1
    # Selection never feeds back into the loop: the same steps as the paper's selection.
    _, _, _, paper = _run(tmp_path, "paper", validation_models=2, val_group=group)
    assert [r for r in recs if r["kind"] == "step"] == [r for r in paper if r["kind"] == "step"]
    assert [r["val_accuracies"] for r in paper if r["kind"] == "validation"] != [v["val_accuracies"] for v in vals]


def test_the_start_candidate_is_scored_the_same_way(mnist_small, tmp_path, short_step_search, monkeypatch):
    short = dataclasses.replace(get_protocol("dc"), epochs=30, arch="lenet")
    monkeypatch.setitem(protocol_base.PROTOCOLS._items, "dc", short)
    cfg = DistillConfig(target=f"npz:{mnist_small}", base=20, method="ridge", epochs=2, val_every=1, test_models=2, reset_window=4,
                        device="cpu", seed=5, checkpoint_minutes=0.0, label_init="onehot", label_lr=30.0,
                        select_protocol="dc", validation_models=2)
    out = tmp_path / "run"
    labeldistill.distill(config=cfg, out=out, progress=False)
    r = json.loads((out / "result.json").read_text())
    assert r["select_protocol"] == "dc"
    cand = r["start_candidate"]
    from labeldistill.distill import prepare

    _, problem, _ = prepare(DistillConfig.from_dict(r["config"]))
    onehot = F.one_hot(problem.base_y.long(), 10).float()
    val = problem.target.val
    ev = evaluate_protocol(short, make_learner("lenet", 1, 28, 10, head="linear"), problem.base_x, onehot, val.x, val.y,
                           steps=cand["T"], seed=derive_seed(5, "start-candidate"), models=2, batch_size=r["config"]["inner_batch"],
                           lr=1e-3, purpose="validation-models")
    assert cand["val_accuracy"] == round(ev.accuracy_mean, 4) and cand["val_accuracy"] > 15  # (chance: 10)
    learned = [v["val_accuracy"] for v in read_metrics(out / "metrics.jsonl") if v["kind"] == "validation"]
    assert cand["learned_val_accuracy"] == pytest.approx(max(learned), abs=2e-4)  # (each rounded to 4 places)
    assert cand["selected"] == ("start" if cand["val_accuracy"] > max(learned) else "learned")


def test_unknown_protocol_is_a_clear_error():
    with pytest.raises(UserError, match="Unknown evaluation protocol 'nope'"):
        DistillConfig(select_protocol="nope").validate()
    cfg = DistillConfig(select_protocol="dsa")
    cfg.validate()
    assert cfg.select_protocol == "dc-dsa"
    old = {k: v for k, v in DistillConfig().to_dict().items() if k != "select_protocol"}
    assert DistillConfig.from_dict(old).select_protocol == "paper"
