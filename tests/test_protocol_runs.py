"""``distill --test-protocol`` and ``evaluate --protocol`` end to end on small real data; the recorded ZCA."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import labeldistill
from labeldistill.protocols import _base as protocol_base

pytest.importorskip("kornia")


@pytest.fixture(scope="module")
def cifar_small(tmp_path_factory, shared_data):
    """1,500 real CIFAR-10 images, 2 x 2-averaged to 16 px (a 768-dimensional ZCA fits in a second), one npz file."""
    d = np.load(shared_data / "cifar10_test.npz")
    idx = np.sort(np.random.default_rng(0).choice(len(d["y"]), 1500, replace=False))
    x = d["x"][idx].astype(np.float64).reshape(1500, 16, 2, 16, 2, 3).mean((2, 4)).round().astype(np.uint8)
    path = tmp_path_factory.mktemp("cifar") / "cifar1k5.npz"
    np.savez(path, x=x, y=d["y"][idx])
    return path


def test_distill_with_test_protocol_records_zca_and_evaluate_reuses_it(cifar_small, tmp_path, monkeypatch, capsys):
    short = dataclasses.replace(protocol_base.PROTOCOLS.get("dc-dsa"), epochs=3)
    monkeypatch.setitem(protocol_base.PROTOCOLS._items, "dc-dsa", short)
    from labeldistill.cli import main

    out = tmp_path / "run"
    ds = labeldistill.distill(f"npz:{cifar_small}", base=10, method="ridge", out=out, epochs=1, arch="convnet3", val_every=1,
                              test_protocol="dc-dsa", device="cpu", progress=False)
    r = ds.evaluation
    assert r["test_protocol"] == "dc-dsa" and r["models"] == 5 and r["train_epochs"] == 3 and r["zca"]["eps"] == 0.1
    assert r["augmentation"]["strategy"] == "color_crop_cutout_flip_scale_rotate"  # colour: flips
    back = labeldistill.load(out)
    assert back.recipe["test_protocol"] == "dc-dsa" and back.zca is not None and not back.zca.applied_to_images
    assert back.zca.fitted_on["split"] == "train" and back.zca.fitted_on["images"] == 1200 and back.zca.shape == (3, 16, 16)
    # The whitening fitted on the target's training split: zero mean, (nearly) unit variance along the data there.
    from labeldistill.data import load_target

    target = load_target(f"npz:{cifar_small}", seed=0)
    w = back.zca.apply(target.train.x).reshape(1200, -1).double()
    assert w.mean(0).abs().max() < 1e-4
    # evaluate under the protocol: the recorded ZCA, the same models and seeds -> the same accuracies.
    ev = labeldistill.evaluate(out, protocol="dc-dsa")
    assert ev["zca_source"] == "recorded in the set" and ev["accuracies"] == r["accuracies"]
    assert (out / "evaluations" / "dc-dsa-convnet3-K5.json").exists()
    # Each finished test model is in a ledger (the run's test, evaluate's): a rerun trains none again.
    books = list((out / "ledger").glob("dc-dsa-*.jsonl"))
    assert len(books) == 1 and len(books[0].read_text().splitlines()) == 1 + 5 and ev["models_from_ledger"] == 0
    again = labeldistill.evaluate(out, protocol="dc-dsa")
    assert again["models_from_ledger"] == 5 and again["accuracies"] == r["accuracies"]
    # Settings a fixed-epoch protocol would ignore are refused in one line (CLI: exit 2), not dropped.
    assert main(["evaluate", str(out), "--protocol", "dc-dsa", "--steps", "300"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--steps applies to the paper protocol" in err[0] and "1000 epochs" not in err[0] and "3 epochs" in err[0]
    assert main(["baseline", "--target", f"npz:{cifar_small}", "--base", "10", "--protocol", "dc", "--batch-size", "10",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--batch-size applies to the paper protocol" in err[0] and "minibatches of 256" in err[0]
    # The paper protocol is untouched by all this: a paper evaluation says so.
    paper = labeldistill.evaluate(out, models=2, save=False)
    assert paper["protocol"] == "paper" and paper["models"] == 2 and "zca" not in paper
    # An exported file without the ZCA: evaluation fits the same whitening on the target's training split.
    from labeldistill.cli import main

    assert main(["export", str(out), "--out", str(tmp_path / "x.safetensors"), "--no-zca"]) == 0
    capsys.readouterr()
    ev2 = labeldistill.evaluate(tmp_path / "x.safetensors", protocol="dc-dsa", target=f"npz:{cifar_small}")
    assert ev2["zca_source"] == "fitted on the target's training split"
    np.testing.assert_allclose(ev2["accuracies"], r["accuracies"], atol=1e-9)



def test_label_temperature_auto_under_a_fixed_epoch_protocol(cifar_small, tmp_path, monkeypatch):
    """distill --label-temperature auto under dc-dsa scores each temperature with one student of the protocol on the
    validation split (its ledger keeps them); evaluate --label-temperature auto on the same labels chooses the same."""
    short = dataclasses.replace(protocol_base.PROTOCOLS.get("dc-dsa"), epochs=2)
    monkeypatch.setitem(protocol_base.PROTOCOLS._items, "dc-dsa", short)
    common = dict(base=10, method="ridge", epochs=1, arch="convnet3", val_every=1, test_protocol="dc-dsa", device="cpu", progress=False)
    plain = labeldistill.distill(f"npz:{cifar_small}", out=tmp_path / "plain", **common)
    tuned = labeldistill.distill(f"npz:{cifar_small}", out=tmp_path / "auto", label_temperature="auto", **common)
    rec = tuned.evaluation["label_temperature"]
    assert sorted(float(t) for t in rec["val_accuracy"]) == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    from labeldistill.calibration import temper

    assert torch.equal(tuned.labels, temper(plain.labels, rec["temperature"]))
    books = list((tmp_path / "auto" / "ledger").glob("dc-dsa-*.jsonl"))
    assert len(books) == 1 + 6  # the test's and one per scored temperature (validation students)
    ev = labeldistill.evaluate(tmp_path / "plain", protocol="dc-dsa", label_temperature="auto")
    assert ev["label_temperature_choice"]["val_accuracy"] == rec["val_accuracy"] and ev["label_temperature"] == rec["temperature"]
    assert ev["accuracies"] == tuned.evaluation["accuracies"]
    assert (tmp_path / "plain" / "evaluations" / "dc-dsa-convnet3-K5-tempauto.json").exists()
