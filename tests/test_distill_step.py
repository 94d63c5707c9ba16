"""The synchronisation-free loop step: device reset monitor, masked reset, CUDA graphs.

The loop decides resets on the device and blends in a model initialised ahead of time;
these tests hold it to the plain formulation (host monitor, re-initialise the model and
build a new Adam at each reset, draw each inner minibatch when it is needed) bit for bit.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from labeldistill.distill import Distiller, ResetMonitor
from labeldistill.distill.labels import Labels
from labeldistill.distill.reset import DeviceResetMonitor
from labeldistill.seeding import draw_seed, torch_generator
from test_distill_loop import TinyNet, _config, blob_problem


def _on(problem, device):
    t = problem.target
    split = lambda s: dataclasses.replace(s, x=s.x.to(device), y=s.y.to(device))  # noqa: E731
    target = dataclasses.replace(t, train=split(t.train), val=split(t.val), test=split(t.test))
    return dataclasses.replace(problem, target=target, base_x=problem.base_x.to(device), base_y=problem.base_y.to(device))


def _percent(wrong: torch.Tensor, m: int) -> torch.Tensor:
    """What a step reports: float32 fraction wrong, times 100 in float32."""
    return (wrong.float() / m) * 100.0


@pytest.mark.parametrize("window", [1, 2, 3, 7, 50])
def test_device_monitor_matches_reference(window):
    g = torch.Generator().manual_seed(window)
    ref, dev = ResetMonitor(window), DeviceResetMonitor(window, "cpu")
    # Errors drift down then up again, with noise, over batches of two sizes (as an epoch's last one).
    resets = 0
    for step in range(3000):
        m = 1024 if step % 7 else 728
        level = 0.5 + 0.4 * torch.cos(torch.tensor(step / 60.0))
        wrong = torch.binomial(torch.tensor(float(m)), level.clamp(0.05, 0.95), generator=g)
        e = _percent(wrong, m)
        flag, t_i = dev.update(e)
        want = ref.update(float(e))
        assert bool(flag) == want, step
        assert int(t_i) == (ref.t_list[-1] if want else -1)
        resets += want
        if step == 1500:  # hand the state over as a resume does, and go on
            dev = DeviceResetMonitor(window, "cpu")
            dev.load(ResetMonitor.from_state(ref.state_dict()))
    assert resets > 5


def test_a_monitor_of_k_runs_decides_as_k_monitors():
    """DeviceResetMonitor(shape=(K,)): K runs' monitors side by side (a batched step of a stack) decide exactly as K
    separate reference monitors, each run fed its own errors; a run's slot can take a host monitor's state."""
    window, k = 5, 4
    g = torch.Generator().manual_seed(3)
    refs = [ResetMonitor(window) for _ in range(k)]
    dev = DeviceResetMonitor(window, "cpu", shape=(k,))
    resets = 0
    for step in range(1500):
        level = (0.5 + 0.4 * torch.cos(torch.arange(k) + step / (30.0 + 7 * torch.arange(k)))).clamp(0.05, 0.95)
        e = _percent(torch.binomial(torch.full((k,), 1024.0), level, generator=g), 1024)
        flags, t_i = dev.update(e)
        for j in range(k):
            want = refs[j].update(float(e[j]))
            assert bool(flags[j]) == want, (step, j)
            assert int(t_i[j]) == (refs[j].t_list[-1] if want else -1)
            resets += want
        if step == 700:  # run 2's slot handed over from its host monitor, as a resume does
            dev.load(ResetMonitor.from_state(refs[2].state_dict()), index=2)
    assert resets > 4 * k


def _plain_loop(cfg, problem):
    """The loop as the paper's reference code runs it: host monitor, re-init + new Adam at a reset."""
    d = Distiller(cfg, problem, model_factory=TinyNet, progress=False)
    cfg = d.cfg  # with the method's defaults (label lr, target batch)
    learner, strategy, t = d.learner, d.strategy, problem.target
    g_target, g_inner, g_init = (torch_generator(cfg.seed, p) for p in ("target-batches", "inner-batches", "model-init"))
    labels = Labels(problem.n_base, t.num_classes, lr=cfg.label_lr)
    model = learner.init([draw_seed(g_init)])
    opt = learner.optimizer(model, cfg.model_lr)
    monitor = ResetMonitor(cfg.reset_window)
    n = len(t.train)
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=g_target)
        for pos in range(d.steps_per_epoch):
            rows = perm[pos * cfg.target_batch : (pos + 1) * cfg.target_batch]
            inner = torch.randperm(problem.n_base, generator=g_inner)[: cfg.inner_batch]
            opt.zero_grad(set_to_none=True)
            out = strategy.step(learner, model, problem.base_x[inner], labels.value.detach()[inner], t.train.x[rows], t.train.y[rows])
            labels.step(inner, out.label_grad)
            opt.step()
            if monitor.update(float(out.error.float() * 100.0)):
                learner.reset_(model, draw_seed(g_init))
                opt = learner.optimizer(model, cfg.model_lr)
    return labels.value.detach(), monitor.t_list, model


@pytest.mark.parametrize("method", ["second-order", "ridge"])
def test_loop_equals_plain_formulation(method):
    # target batch 24 over 64 examples: epochs end with a smaller minibatch; window 2: many resets.
    cfg = _config(method, epochs=8, target_batch=24, reset_window=2, val_every=4)
    problem = blob_problem()
    d = Distiller(cfg, problem, model_factory=TinyNet, progress=False)
    d.run()
    want_labels, want_t, want_model = _plain_loop(cfg, problem)
    assert len(want_t) >= 2, "the scripted run must reset the model"
    assert d.monitor.t_list == want_t
    assert torch.equal(d.labels.value.detach(), want_labels)
    for name, p in want_model.params.items():
        assert torch.equal(d.model.params[name].detach(), p.detach()), name


def _ready(d: Distiller) -> Distiller:
    """A distiller set up to take single steps (epoch drawn, stepper built), as ``run`` does."""
    d._start_epoch()
    d._stepper = d._build_stepper()
    return d


def test_masked_reset_restores_fresh_model_and_optimiser():
    d = _ready(Distiller(_config("ridge", epochs=1), blob_problem(), model_factory=TinyNet, progress=False))
    stepper = d._stepper
    stepper(torch.arange(16), torch.arange(4))  # one step: the optimiser has state now
    stepper._masked_reset(torch.tensor(True))
    fresh = d.learner.init([d.fresh_seed])
    for part in ("params", "buffers", "head"):
        for name, t in getattr(fresh, part).items():
            assert torch.equal(getattr(d.model, part)[name].detach(), t.detach()), name
    for st in d.model_opt.state.values():
        assert float(st["step"]) == 0 and not st["exp_avg"].any() and not st["exp_avg_sq"].any()
    before = {n: p.detach().clone() for n, p in d.model.params.items()}
    stepper._masked_reset(torch.tensor(False))
    assert all(torch.equal(d.model.params[n], before[n]) for n in before)


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["second-order", "ridge"])
def test_cuda_graph_step_equals_eager(method):
    """On a GPU: the loop with the step replayed as a CUDA graph equals the eager loop."""
    results = []
    for graph in (False, True):
        cfg = _config(method, epochs=12, target_batch=16, reset_window=2, val_every=4, device="cuda", cuda_graph=graph)
        problem = _on(blob_problem(), "cuda")
        d = Distiller(cfg, problem, model_factory=TinyNet, progress=False)
        d.run()
        assert d._stepper is not None and (d._stepper._graph is not None) == graph, "the graph was not used"
        results.append((d.labels.value.detach().cpu(), list(d.monitor.t_list)))
    (eager, t_eager), (graphed, t_graphed) = results
    assert t_eager == t_graphed and len(t_eager) >= 2
    torch.testing.assert_close(graphed, eager, rtol=0, atol=1e-6)


def test_checkpoint_from_a_gpu_resumes_on_a_cpu():
    """Adam state saved on a GPU carries capturable=True; a CPU resume must not keep it."""
    cfg = _config("second-order", epochs=2)
    problem = blob_problem()
    d = Distiller(cfg, problem, model_factory=TinyNet, progress=False)
    d.run()
    state = d.state_dict()
    for key in ("labels_opt", "model_opt"):
        for group in state[key]["param_groups"]:
            group["capturable"] = True  # as written on a GPU
    e = Distiller(cfg, problem, model_factory=TinyNet, progress=False)
    e.load_state_dict(state)
    assert not any(g["capturable"] for opt in (e.labels.opt, e.model_opt) for g in opt.param_groups)
    _ready(e)._one_step()
    e._flush()
