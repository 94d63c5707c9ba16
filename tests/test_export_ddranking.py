"""``export --format ddranking``: DD-Ranking's soft-label layout (class-major images in its CIFAR
normalisation, labels as logits whose softmax gives ours back), on real CIFAR-10 images."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from labeldistill.artifact import FILE_NAME, DistilledSet
from labeldistill.cli import main
from labeldistill.data import Preprocessing
from labeldistill.interop import list_formats
from labeldistill.interop.ddranking import MEAN, STD

PRE = Preprocessing(3, 32, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))


def _set(shared_data, classes: list[int], learned: str = "labels") -> DistilledSet:
    d = np.load(shared_data / "cifar10_test.npz")
    rows = [int(np.flatnonzero(d["y"] == c)[i]) for i, c in enumerate(classes)]  # real images of those classes
    images = PRE.apply(d["x"][rows])
    g = torch.Generator().manual_seed(0)
    labels = torch.softmax(3 * torch.randn(len(classes), 10, generator=g), -1)
    labels[0] = torch.eye(10)[classes[0]]  # a one-hot row: zeros become the floor, softmax gives it back
    return DistilledSet(images=images, labels=labels, steps=100, preprocessing=PRE, class_names=[str(i) for i in range(10)],
                        provenance={"base_labels": classes, "target": "cifar10"}, learned=learned)


def test_ddranking_export_layout(shared_data, tmp_path, capsys):
    classes = [3, 1, 0, 2, 1, 0, 4, 5, 6, 7, 8, 9, 9, 8, 7, 6, 5, 4, 3, 2]  # two of each, in no order
    ds = _set(shared_data, classes)
    run = tmp_path / "run"
    run.mkdir()
    ds.save(run / FILE_NAME)
    assert list_formats()[0] == "labeldistill" and "ddranking" in list_formats()
    assert main(["export", str(run), "--format", "ddranking", "--out", str(tmp_path / "dd")]) == 0
    assert "ipc 2" in capsys.readouterr().out
    images = torch.load(tmp_path / "dd" / "images.pt", weights_only=True)  # plain tensors: no code unpickled
    logits = torch.load(tmp_path / "dd" / "labels.pt", weights_only=True)
    doc = json.loads((tmp_path / "dd" / "ddranking.json").read_text())
    order = torch.tensor(doc["order"])
    assert doc["dataset"] == "CIFAR10" and doc["ipc"] == 2 and images.shape == (20, 3, 32, 32) and logits.shape == (20, 10)
    # Class-major (DD-Ranking's hard labels are class i for the i-th block of ipc), stable within a class.
    assert torch.equal(torch.tensor(classes)[order], torch.arange(10).repeat_interleave(2))
    assert order.tolist()[:4] == [2, 5, 1, 4]
    # DD-Ranking's normalisation of the same pixels.
    pixels = images * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
    torch.testing.assert_close(pixels, PRE.denormalise(ds.images)[order], rtol=0, atol=1e-6)
    # Its losses train on softmax(labels / T): with T = 1 our labels (float32 rounding, the 1e-12 floor).
    torch.testing.assert_close(torch.softmax(logits, -1), ds.labels[order], rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", ["unbalanced", "cross-dataset", "mnist"])
def test_ddranking_export_refuses_what_it_cannot_express(shared_data, tmp_path, capsys, case):
    if case == "mnist":
        ds = DistilledSet(images=torch.zeros(10, 1, 28, 28), labels=torch.full((10, 10), 0.1), steps=1,
                          preprocessing=Preprocessing(1, 28, (0.1,), (0.3,)), class_names=[str(i) for i in range(10)],
                          provenance={"base_labels": list(range(10))})
        want = "CIFAR-10 / CIFAR-100 sets"
    else:
        ds = _set(shared_data, [0, 0] + list(range(1, 10)) if case == "unbalanced" else list(range(10)))
        if case == "cross-dataset":
            ds.provenance.update(cross_dataset=True)
        want = "same number of images per class" if case == "unbalanced" else "no known target class"
    run = tmp_path / "run"
    run.mkdir()
    ds.save(run / FILE_NAME)
    assert main(["export", str(run), "--format", "ddranking", "--out", str(tmp_path / "dd")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and want in err[0]
    assert not (tmp_path / "dd" / "images.pt").exists()
