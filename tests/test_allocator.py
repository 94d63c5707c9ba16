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

# A few ConvNet-3 training steps in a fresh process (the setting is process-wide): the final weights' bytes,
# and the minor page faults of each of the last steps (per step, so that one step's unrelated fault burst,
# such as the kernel mapping a new heap region once on a loaded machine, cannot decide the comparison).
_SCRIPT = textwrap.dedent("""
    import hashlib, json, resource, torch
    from labeldistill.allocator import keep_freed_memory
    tuned = keep_freed_memory()
    from labeldistill.models.convnet import ConvNet
    torch.manual_seed(0)
    m = ConvNet(1, 28, 10)
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    for _ in range(2):
        step()
    faults = []
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        step()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in m.parameters())).hexdigest()
    print(json.dumps({"tuned": tuned, "faults": faults, "digest": digest}))
""")


def _run(keep: str) -> dict:
    env = {**os.environ, allocator.ENV: keep, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_kept_memory_gives_the_same_weights_without_refaulting_every_step():
    plain, kept = _run("0"), _run("1")
    assert plain["tuned"] is False
    assert kept["digest"] == plain["digest"]  # allocation never changes arithmetic
    if not kept["tuned"]:
        pytest.skip("this C library has no mallopt (not glibc): nothing to compare")
    # glibc by default maps every large activation afresh (thousands of faults in every step); kept: almost
    # none in a typical step. The median step is compared: a steady state, not one step's burst.
    plain_step, kept_step = statistics.median(plain["faults"]), statistics.median(kept["faults"])
    assert plain_step > 1000 and kept_step * 10 < plain_step, (plain, kept)


def test_turned_off_by_the_environment(monkeypatch):
    monkeypatch.setattr(allocator, "_done", None)
    monkeypatch.setenv(allocator.ENV, "0")
    assert allocator.keep_freed_memory() is False
    monkeypatch.setattr(allocator, "_done", None)  # the real state is restored by monkeypatch
