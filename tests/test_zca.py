"""ZCA whitening of the dc-dsa protocol (kornia), recorded in the distilled set, and left out by export."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from labeldistill.artifact import FILE_NAME, DistilledSet, load
from labeldistill.data import Preprocessing
from labeldistill.errors import ArtifactError

pytest.importorskip("kornia")

from labeldistill.protocols import ZCA, fit_zca  # noqa: E402


@pytest.fixture(scope="module")
def cifar_crops(shared_data):
    """3,000 real CIFAR-10 test images, centre 8 x 8 crops (D = 192), normalised, float64."""
    d = np.load(shared_data / "cifar10_test.npz")
    x = torch.from_numpy(d["x"][:3000, 12:20, 12:20]).permute(0, 3, 1, 2).double() / 255
    return (x - 0.48) / 0.25


def test_zca_output_has_identity_covariance_on_real_images(cifar_crops):
    zca = fit_zca(cifar_crops, eps=1e-12, dtype=torch.float64)
    w = zca.apply(cifar_crops).reshape(len(cifar_crops), -1)
    cov = torch.cov(w.T)  # unbiased, as fitted
    torch.testing.assert_close(cov, torch.eye(w.shape[1], dtype=torch.float64), rtol=0, atol=1e-6)
    torch.testing.assert_close(w.mean(0), torch.zeros(w.shape[1], dtype=torch.float64), rtol=0, atol=1e-9)
    # The closed form: U diag(1 / sqrt(s + eps)) U^T of the unbiased covariance, symmetric (ZCA, not PCA).
    flat = cifar_crops.reshape(len(cifar_crops), -1)
    s, u = torch.linalg.eigh(torch.cov(flat.T))
    closed = u @ torch.diag(1 / torch.sqrt(s + 1e-12)) @ u.T
    torch.testing.assert_close(zca.matrix, closed, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(zca.matrix, zca.matrix.T, rtol=0, atol=1e-8)
    # eps 0.1 (the protocol's) shrinks the small directions: covariance U diag(s / (s + eps)) U^T.
    z01 = fit_zca(cifar_crops, eps=0.1, dtype=torch.float64)
    cov01 = torch.cov(z01.apply(cifar_crops).reshape(len(cifar_crops), -1).T)
    torch.testing.assert_close(cov01, u @ torch.diag(s / (s + 0.1)) @ u.T, rtol=0, atol=1e-8)


def _set(zca: ZCA | None, n: int = 6) -> DistilledSet:
    g = torch.Generator().manual_seed(0)
    return DistilledSet(torch.randn(n, 3, 8, 8, generator=g), torch.softmax(torch.randn(n, 10, generator=g), -1), 40,
                        Preprocessing(3, 8, (0.5,) * 3, (0.25,) * 3), [str(i) for i in range(10)],
                        recipe={"arch": "convnet3", "test_protocol": "dc-dsa"}, provenance={"base_dataset": "cifar10"}, zca=zca)


def _doc(path) -> dict:
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return json.loads(json.loads(raw[8 : 8 + n])["__metadata__"]["labeldistill"])


def test_recorded_zca_round_trips_through_the_artifact(tmp_path, cifar_crops):
    zca = fit_zca(cifar_crops, eps=0.1, fitted_on={"dataset": "npz:/private/cifar.npz", "split": "train", "images": 3000})
    ds = _set(zca)
    back = load(ds.save(tmp_path / "z.safetensors"))
    assert back.zca is not None and back.zca.eps == 0.1 and back.zca.shape == (3, 8, 8) and not back.zca.applied_to_images
    assert torch.equal(back.zca.mean, zca.mean.float()) and torch.equal(back.zca.matrix, zca.matrix.float())
    assert back.zca.fitted_on == zca.fitted_on
    x = cifar_crops[:50].float()
    torch.testing.assert_close(back.zca.apply(x), zca.apply(x), rtol=0, atol=0)
    assert _doc(tmp_path / "z.safetensors")["zca"]["eps"] == 0.1
    # A set without one is written as before: no "zca" entry, no ZCA tensors.
    plain = _set(None).save(tmp_path / "p.safetensors")
    assert "zca" not in _doc(plain) and load(plain).zca is None


def test_zca_entry_without_its_tensors_is_refused(tmp_path, cifar_crops):
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    path = _set(fit_zca(cifar_crops[:500], eps=0.1)).save(tmp_path / "z.safetensors")
    raw = path.read_bytes()
    tensors = {k: v for k, v in st_load(raw).items() if not k.startswith("zca")}
    n = int.from_bytes(raw[:8], "little")
    meta = json.loads(raw[8 : 8 + n])["__metadata__"]
    path.write_bytes(st_save(tensors, metadata=meta))
    with pytest.raises(ArtifactError):
        load(path)


def test_export_keeps_zca_with_a_note_and_no_zca_leaves_it_out(tmp_path, cifar_crops, capsys):
    from labeldistill.cli import main

    run = tmp_path / "run"
    run.mkdir()
    _set(fit_zca(cifar_crops[:500], eps=0.1, fitted_on={"dataset": "npz:/private/data/c.npz", "split": "train"})).save(run / FILE_NAME)
    assert main(["export", str(run), "--out", str(tmp_path / "with.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "second-order statistics" in out and "--no-zca" in out
    kept = load(tmp_path / "with.safetensors")
    assert kept.zca is not None and kept.zca.fitted_on["dataset"] == "c.npz" and kept.recipe["test_protocol"] == "dc-dsa"
    assert main(["export", str(run), "--out", str(tmp_path / "without.safetensors"), "--no-zca"]) == 0
    assert "left out" in capsys.readouterr().out
    dropped = load(tmp_path / "without.safetensors")
    assert dropped.zca is None and "zca" not in _doc(tmp_path / "without.safetensors")
    assert torch.equal(dropped.labels, kept.labels) and torch.equal(dropped.images, kept.images)


def test_whitened_images_keep_their_zca(tmp_path, cifar_crops):
    from labeldistill.cli.export import shareable
    from labeldistill.errors import UserError

    zca = fit_zca(cifar_crops[:500], eps=0.1)
    zca.applied_to_images = True
    with pytest.raises(UserError, match="whitened"):
        shareable(_set(zca), zca=False)


def test_zca_fit_is_cached_by_content(tmp_path, cifar_crops, monkeypatch):
    """The fit is stored under the images' content hash: a second fit of the same images returns the
    same whitening bit for bit without fitting; other images (or eps) are fitted anew."""
    from labeldistill.protocols import evaluate as pe

    monkeypatch.setenv("LABELDISTILL_CACHE", str(tmp_path))
    calls = []
    real_fit = pe.fit_zca
    monkeypatch.setattr(pe, "fit_zca", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    x = cifar_crops[:300]
    a = pe.cached_fit_zca(x, 0.1, fitted_on={"dataset": "a"})
    b = pe.cached_fit_zca(x.clone(), 0.1, fitted_on={"dataset": "b"})
    assert len(calls) == 1 and torch.equal(a.matrix, b.matrix) and torch.equal(a.mean, b.mean)
    assert b.fitted_on == {"dataset": "b"} and len(list((tmp_path / "zca").glob("*.safetensors"))) == 1
    c = pe.cached_fit_zca(x[:299], 0.1, fitted_on={})
    d = pe.cached_fit_zca(x, 0.2, fitted_on={})
    assert len(calls) == 3 and not torch.equal(d.matrix, a.matrix) and c.eps == 0.1
    monkeypatch.setenv("LABELDISTILL_CACHE", "off")
    pe.cached_fit_zca(x, 0.1, fitted_on={})
    assert len(calls) == 4
