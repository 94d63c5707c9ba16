"""Label sets on the same images averaged into one (``labeldistill.average_labels``, ``export RUN_A RUN_B``)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import labeldistill
from labeldistill.artifact import DistilledSet, load
from labeldistill.cli import main
from labeldistill.data import Preprocessing
from labeldistill.errors import UserError
from labeldistill.protocols.zca import ZCA


def _set(labels: torch.Tensor, images: torch.Tensor, **changes) -> DistilledSet:
    ds = DistilledSet(images, labels, 40, Preprocessing(channels=1, size=28, mean=(0.1307,), std=(0.3081,)),
                      [str(c) for c in range(labels.shape[1])],
                      recipe={"arch": "lenet", "head": "linear", "lr": 1e-3, "batch_size": 10, "optimizer": "adam"},
                      provenance={"base_dataset": "mnist", "base_indices": list(range(len(images)))})
    return dataclasses.replace(ds, **changes)


def _labels(seed: int, n: int = 10, c: int = 10) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(3 * torch.randn(n, c, generator=g), -1)


def test_the_mean_of_label_sets_is_exact_and_names_its_parts(tmp_path):
    images = torch.randn(10, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    parts = [_set(_labels(s), images) for s in (1, 2, 3)]
    files = [p.save(tmp_path / f"p{i}.safetensors") for i, p in enumerate(parts)]
    loaded = [load(f) for f in files]
    mean = labeldistill.average_labels(loaded)
    want = (loaded[0].labels.double() + loaded[1].labels.double() + loaded[2].labels.double()) / 3
    assert mean.labels.dtype == torch.float32 and torch.equal(mean.labels, want.float())
    torch.testing.assert_close(mean.labels.sum(1), torch.ones(10), rtol=0, atol=1e-6)
    assert torch.equal(mean.images, images) and mean.steps == 40 and mean.recipe == parts[0].recipe
    # Each part named by the hash its own file carries (what load verifies), so the parts can be found again.
    hashes = []
    for f in files:
        raw = f.read_bytes()
        hashes.append(json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])["__metadata__"]["sha256"])
    assert mean.provenance["averaged_from"] == hashes and len(set(hashes)) == 3
    back = load(mean.save(tmp_path / "mean.safetensors"))
    assert torch.equal(back.labels, mean.labels) and back.provenance["averaged_from"] == hashes
    # Order does not matter beyond rounding; the same set twice is itself.
    torch.testing.assert_close(labeldistill.average_labels(loaded[::-1]).labels, mean.labels, rtol=0, atol=1e-7)
    assert torch.equal(labeldistill.average_labels([loaded[0], loaded[0]]).labels, loaded[0].labels)


def test_only_sets_that_mean_the_same_thing_average():
    images = torch.randn(10, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    a = _set(_labels(1), images)
    zca = ZCA(torch.zeros(784), torch.eye(784), 0.1, (1, 28, 28))
    cases = {
        "images differ": _set(_labels(2), images + 1e-6),
        "classes or preprocessing": _set(_labels(2), images, class_names=list("abcdefghij")),
        "ZCA whitening differs": _set(_labels(2), images, zca=zca),
        "trains otherwise": _set(_labels(2), images, steps=41),
        "learned images": _set(_labels(2), images, learned="images", image_init="real"),
    }
    for words, other in cases.items():
        with pytest.raises(UserError) as e:
            labeldistill.average_labels([a, other], ["A", "B"])
        assert ("B" in str(e.value) or "A" in str(e.value)) and any(w in str(e.value) for w in words.split()), (words, str(e.value))
    with pytest.raises(UserError, match="two or more"):
        labeldistill.average_labels([a])


def test_export_writes_the_mean_of_runs_which_evaluates_as_a_set_of_those_labels(tmp_path, mnist_small, capsys):
    """End to end on real MNIST images: two runs' sets -> ``export A B`` -> a file whose labels are the mean, which
    ``evaluate`` trains on exactly as on a set built with those labels by hand (same models, same accuracies)."""
    with np.load(mnist_small) as z:
        x = torch.from_numpy(z["x"][:20]).float().div(255).sub(0.1307).div(0.3081).reshape(20, 1, 28, 28)
        onehot = torch.nn.functional.one_hot(torch.from_numpy(z["y"][:20]), 10).float()
    runs = []
    for i, seed in enumerate((1, 2)):  # two label sets near the true labels, each with its own noise
        run = tmp_path / f"run{i}"
        _set(0.7 * onehot + 0.3 * _labels(seed, n=20), x).save(run / "distilled.safetensors")
        runs.append(run)
    assert main(["export", str(runs[0]), str(runs[1]), "--out", str(tmp_path / "mean.safetensors")]) == 0
    assert "the mean of 2 sets'" in capsys.readouterr().out
    mean = load(tmp_path / "mean.safetensors")
    want = ((load(runs[0]).labels.double() + load(runs[1]).labels.double()) / 2).float()
    assert torch.equal(mean.labels, want) and len(mean.provenance["averaged_from"]) == 2
    by_hand = _set(want, x).save(tmp_path / "by_hand.safetensors")
    kw = dict(target=f"npz:{mnist_small}", models=2, steps=30, device="cpu", seed=0, save=False)
    got, ref = labeldistill.evaluate(tmp_path / "mean.safetensors", **kw), labeldistill.evaluate(by_hand, **kw)
    assert got["accuracies"] == ref["accuracies"] and 20 < got["accuracy_mean"] <= 100  # chance is 10 %
    # A set on other images is refused in one line, with a non-zero exit.
    _set(_labels(3, n=20), x.flip(0)).save(tmp_path / "other" / "distilled.safetensors")
    assert main(["export", str(runs[0]), str(tmp_path / "other"), "--out", str(tmp_path / "bad.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "images differ" in err and not (tmp_path / "bad.safetensors").exists()
