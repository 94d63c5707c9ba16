"""Checkpoint / resume of the unrolled trainer: resuming mid-run gives the uninterrupted run's
result bit for bit on the CPU (images, lrs, labels, Adam state, losses, metrics log)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from labeldistill.errors import UserError
from labeldistill.models import Classifier
from labeldistill.runs import MetricsLog, read_metrics
from labeldistill.unrolled import FunctionalNet, UnrolledDistiller, crop_flip, unrolled_config


def make(method: str, device: str = "cpu", cuda_graph: bool = False, **overrides) -> UnrolledDistiller:
    torch.manual_seed(0)
    features = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 8 * 8, 6), nn.ReLU())
    net = FunctionalNet(Classifier(features, 6, 3).to(device))
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(20, 3, 8, 8, generator=g).to(device), (torch.arange(20) % 3).to(device)
    # 3 outer iterations per epoch (8, 8, 4 images), the outer lr halves at epochs 1 and 3: both
    # boundaries and the augmentation stream are crossed by the resumed part.
    cfg = unrolled_config("cifar10", method, steps=2, epochs=2, batch_size=8, outer_epochs=4, decay_epochs=2,
                          distill_lr=0.05, **overrides)
    return UnrolledDistiller(cfg, x, y, net, 3, seed=11, cuda_graph=cuda_graph)


def snapshot(d: UnrolledDistiller) -> dict:
    s = d.state_dict()
    return {"images": s["images"], "raw_lrs": s["raw_lrs"], "labels": s["labels"],
            "opt": [t for st in s["optimizer"]["state"].values() for t in st.values()]}


def assert_bitwise(a: dict, b: dict) -> None:
    for k in a:
        if a[k] is None:
            assert b[k] is None
        elif isinstance(a[k], list):
            assert len(a[k]) == len(b[k]) and all(torch.equal(u, v) for u, v in zip(a[k], b[k])), k
        else:
            assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("method", ["dd", "sldd"])
def test_resume_mid_run_is_bit_for_bit(tmp_path, method):
    full = make(method)
    assert full.total_iterations == 12 and full.config.augment
    full_losses = full.run(metrics=MetricsLog(tmp_path / "full.jsonl"))

    ckpt = tmp_path / "ckpt.safetensors"
    first = make(method)
    log = MetricsLog(tmp_path / "resumed.jsonl")
    first.run(until=5, checkpoint=ckpt, checkpoint_every=5, metrics=log)
    first.run(until=7, metrics=log)  # lines written after the checkpoint are dropped on resume
    log.close()

    resumed = make(method)
    offset = resumed.load_checkpoint(ckpt)
    assert resumed.iteration == 5
    log = MetricsLog(tmp_path / "resumed.jsonl", resume_offset=offset)
    rest = resumed.run(metrics=log)
    log.close()
    assert rest == full_losses[5:]
    assert_bitwise(snapshot(full), snapshot(resumed))
    assert read_metrics(tmp_path / "resumed.jsonl") == read_metrics(tmp_path / "full.jsonl")
    assert [r["outer_lr"] for r in read_metrics(tmp_path / "full.jsonl")] == [0.01] * 3 + [0.005] * 6 + [0.0025] * 3
    assert resumed.schedule() == full.schedule()


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["dd", "sldd"])
def test_cuda_graph_outer_iterations_equal_eager(method):
    """On a GPU: outer iterations replayed as a CUDA graph (full minibatches; the short last one of each epoch runs
    eagerly) give the eager run's losses, images, lrs and labels."""
    runs = []
    for graph in (False, True):
        d = make(method, device="cuda", cuda_graph=graph)
        losses = d.run()
        assert (d._graphed.graph is not None) == graph, "the graph was not used"
        runs.append((losses, snapshot(d)))
    (eager_losses, eager), (graph_losses, graphed) = runs
    torch.testing.assert_close(torch.tensor(graph_losses), torch.tensor(eager_losses), rtol=0, atol=1e-5)
    for k in ("images", "raw_lrs", "labels"):
        if eager[k] is not None:
            torch.testing.assert_close(graphed[k], eager[k], rtol=0, atol=1e-5)


def test_resume_refuses_another_configuration(tmp_path):
    d = make("dd")
    d.run(until=1, checkpoint=tmp_path / "c.safetensors")
    other = make("dd", outer_lr=0.02)
    with pytest.raises(UserError, match="another configuration"):
        other.load_checkpoint(tmp_path / "c.safetensors")


def test_crop_flip_is_a_reflect_padded_crop_with_optional_flip():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    out = crop_flip(x, torch.Generator().manual_seed(0), pad=2)
    padded = nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(2):  # each output is one of the 5 x 5 x 2 possible crops of its own padded image
        crops = [padded[i, :, r : r + 6, c : c + 6] for r in range(5) for c in range(5)]
        crops += [c.flip(-1) for c in crops]
        assert any(torch.equal(out[i], c) for c in crops)
