"""Keeping freed memory in the process (allocator.py): the same numbers bit for bit, without the page faults."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap

import pytest

from labeldistill import allocator

# A few ConvNet-3 training steps in a fresh process (the setting is process-wide): the final weights' bytes.
# Then the minor page faults of touching a fresh 64 MiB block, five times. glibc by default serves a block
# that large (above its dynamic mmap threshold's 32 MiB ceiling) with a new mapping every time, so each touch
# faults in every page; kept memory reuses the freed heap. (Activations under 32 MiB are not a fair probe:
# glibc's dynamic threshold sometimes keeps them too, so whether plain faults would depend on the history.)
_SCRIPT = textwrap.dedent("""
    import hashlib, json, resource, torch
    from labeldistill.allocator import keep_freed_memory
    tuned = keep_freed_memory()
    from labeldistill.models.convnet import ConvNet
    torch.manual_seed(0)
    m = ConvNet(1, 28, 10)
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    for _ in range(4):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in m.parameters())).hexdigest()
    faults = []
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = torch.empty(64 << 20, dtype=torch.uint8)
        block.fill_(1)
        del block
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(json.dumps({"tuned": tuned, "faults": faults, "digest": digest}))
""")


def _run(keep: str) -> dict:
    env = {**os.environ, allocator.ENV: keep, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_kept_memory_gives_the_same_weights_and_reuses_freed_blocks():
    plain, kept = _run("0"), _run("1")
    assert plain["tuned"] is False
    assert kept["digest"] == plain["digest"]  # allocation never changes arithmetic
    if not kept["tuned"]:
        pytest.skip("this C library has no mallopt (not glibc): nothing to compare")
    # Plain: a 64 MiB block is 16,384 pages, faulted in afresh each time. Kept: the first block faults in,
    # the later ones reuse it. Medians, so that one unrelated burst on a loaded machine cannot decide it.
    plain_touch, kept_touch = statistics.median(plain["faults"]), statistics.median(kept["faults"])
    assert plain_touch > 10_000 and kept_touch * 10 < plain_touch, (plain, kept)


def test_turned_off_by_the_environment(monkeypatch):
    monkeypatch.setattr(allocator, "_done", None)
    monkeypatch.setenv(allocator.ENV, "0")
    assert allocator.keep_freed_memory() is False
    monkeypatch.setattr(allocator, "_done", None)  # the real state is restored by monkeypatch
