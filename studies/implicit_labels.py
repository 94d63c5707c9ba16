"""Experiment (issue 18): labels learned through the test's own trained student, by the implicit function theorem.

Seven levers of the online loop (docs/results.md, sessions 20-28) narrowed the gap between learned labels and the
teacher's under ``dc-dsa`` without crossing it; each kept the loop's learner, a young LeNet or ConvNet-3 read after one
step (or a few, or a ridge readout). What was left untried is the test's own learner: a ConvNet-3 trained the protocol's
way (SGD with momentum and weight decay on DSA views) until it fits the labels. Unrolling its 1,000 epochs is a GPU
job; the implicit function theorem is not. At a student that minimises ``L(theta, Y) = soft CE on the views + wd/2
|theta|^2``,

    dL_target / dY_ic = (1/N) < grad_theta log p_c(x_i), u >,   u = (H + lambda I)^{-1} grad_theta L_target,

(the inner loss is linear in Y, as the second-order method uses), with H the Gauss-Newton matrix of the training loss
over V augmented views of the base images plus the weight decay, solved by conjugate gradients; lambda damps it. The
one-step meta-gradient of the paper is this with ``H^{-1}`` replaced by the step size: the same formula at the test's
horizon instead of one step's.

The loop: a student trained the protocol's full way on the teacher's labels, then per outer iteration a gradient step
on the labels (learned as logits, Adam), and the student continues on the new labels for a few epochs at the
protocol's final lr (it tracks theta*(Y)). The labels after each outer iteration are kept; the chosen ones are tested
under ``dc-dsa`` on the field table's model seeds, so they compare model for model with its teacher row.

    LABELDISTILL_CACHE=runs/s26/cache python studies/implicit_labels.py records/runs/mnist-field-lookahead-k1-100-s0 \\
        --outer 40 --out runs/s30/implicit.json

Measured result and what it says: docs/results.md ("Session 30: the test's own student as the learner"). The method
is now the library's ``--method implicit`` (distill/strategies/implicit.py, its gradient and CG solve imported here);
this script stays as the record of the session-30 runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from labeldistill.allocator import keep_freed_memory
from labeldistill.engine import ModelState, make_learner, predict, soft_cross_entropy
from labeldistill.engine.augment import DSAugmenter
from labeldistill.distill.strategies.implicit import CHUNK, implicit_label_grad
from labeldistill.distill.strategies.ridge import fitted_scale
from labeldistill.engine.train import train_models
from labeldistill.protocols import evaluate_protocol, get_protocol
from labeldistill.runs.provenance import versions
from labeldistill.runs.tensorstate import load_state, save_state
from labeldistill.seeding import derive_seed
from labeldistill.teacher import RunTeacher, run_teacher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a teacher-started run directory (its base images, target, split and teacher)")
    ap.add_argument("--temperature", type=float, default=None, help="the teacher's temperature (default: the run's)")
    ap.add_argument("--outer", type=int, default=40, help="outer iterations (label steps)")
    ap.add_argument("--label-lr", type=float, default=0.03, help="Adam's lr on the label logits")
    ap.add_argument("--track-epochs", type=int, default=20, help="student epochs on the new labels after each label step")
    ap.add_argument("--students", type=int, default=1, help="students the label gradient is averaged over (each its own seed)")
    ap.add_argument("--views", type=int, default=4, help="augmented views of each base image in H and the label gradient")
    ap.add_argument("--target-batch", type=int, default=2048)
    ap.add_argument("--cg-iters", type=int, default=10)
    ap.add_argument("--target-scale", choices=("shared", "fitted"), default="fitted",
                    help="the target loss at the student's logit scale, or at the scale that minimises it (as LD RR's option)")
    ap.add_argument("--damping", type=float, default=1e-3, help="lambda, added to H's diagonal beside the weight decay")
    ap.add_argument("--init-epochs", type=int, default=None, help="the student's first training (default: the protocol's)")
    ap.add_argument("--test-models", type=int, default=2)
    ap.add_argument("--test-at", type=int, nargs="*", default=None, help="outer iterations whose labels are tested (default: the last)")
    ap.add_argument("--test-only", action="store_true", help="no loop: test the labels OUT's checkpoint keeps at --test-at")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, required=True, help="result JSON; beside it OUT.ckpt.safetensors (resumed when there) "
                    "and OUT.ledger/ (each tested model as it finishes)")
    a = ap.parse_args()
    keep_freed_memory()  # as the labeldistill command: freed memory is kept, not page-faulted in again
    with run_teacher(a.run, a.device) as rt:  # the run's set, split and cached teacher, under the run's float settings
        run(a, rt)


def run(a: argparse.Namespace, rt: RunTeacher) -> None:
    dev = torch.device(a.device)
    ds, data, teacher, floats, seed = rt.run, rt.data, rt.record, rt.float_settings, rt.seed
    x = ds.images
    n, ch = int(x.shape[0]), int(x.shape[1])
    temperature = float(a.temperature if a.temperature is not None else rt.temperature)
    y0 = rt.labels(x, temperature)
    proto = get_protocol("dc-dsa")
    recipe = proto.recipe(ch, lr=1e-3)
    batch = proto.batch_for(n, 50)
    if batch < n:
        raise SystemExit("this experiment assumes full-batch training (the protocol's batch 256 >= N)")
    learner = make_learner("convnet3", ch, int(x.shape[-1]), ds.num_classes, head="linear")

    t0 = time.perf_counter()
    # The loop's students: the protocol's full training on the start labels, each from its own seed (not a test model's).
    seeds = [derive_seed(seed, "implicit-labels-student", *([k] if k else [])) for k in range(a.students)]  # k = 0: the first pilot's
    ckpt = a.out.with_suffix(".ckpt.safetensors")
    saved = load_state(ckpt) if ckpt.is_file() else None
    if saved is None and a.test_only:
        raise SystemExit(f"--test-only: no checkpoint {ckpt}")
    if saved is None:
        first = recipe if a.init_epochs is None else dataclasses.replace(proto, epochs=a.init_epochs).recipe(ch, lr=1e-3)
        state = train_models(learner, x, y0, 1, seeds, batch_size=batch, recipe=first)
        params, buffers = state.params, state.buffers
    else:
        params, buffers = saved["theta"], saved["buffers"]
    if next(iter(params.values())).shape[0] != a.students:
        raise SystemExit(f"{ckpt} holds {next(iter(params.values())).shape[0]} students, not --students {a.students}")
    thetas = [{n: v[k].detach().clone().to(dev).requires_grad_() for n, v in params.items()} for k in range(a.students)]
    buffers = {n: v.to(dev) for n, v in buffers.items()}
    bufs = [{n: v[k] for n, v in buffers.items()} for k in range(a.students)]
    wd, final_lr = recipe.weight_decay, recipe.lr_at(recipe.epochs - 1)
    opts = [torch.optim.SGD(list(t.values()), lr=final_lr, momentum=recipe.momentum, weight_decay=wd) for t in thetas]
    track_aug = DSAugmenter(recipe.augmentation, [derive_seed(s_, "track") for s_ in seeds], dev)
    view_aug = DSAugmenter(recipe.augmentation, [derive_seed(s_, "views") for s_ in seeds], dev)
    rows = torch.Generator().manual_seed(derive_seed(seed, "implicit-labels-target"))
    init_seconds = time.perf_counter() - t0

    z = torch.log(y0.clamp_min(1e-12)).clone().requires_grad_()
    z_opt = torch.optim.Adam([z], lr=a.label_lr)
    val_x, val_y = data.val.x, data.val.y
    history, kept, start = [], {0: y0.detach().clone()}, 1
    if saved is not None:  # every generator, optimiser and tensor of the loop as it stood after its last outer iteration
        with torch.no_grad():
            z.copy_(saved["z"])
        z_opt.load_state_dict(saved["z_opt"])
        for opt, st in zip(opts, saved["opts"]):
            opt.load_state_dict(st)
        rows.set_state(saved["rows"])
        track_aug.load_state_dict(saved["track_aug"])
        view_aug.load_state_dict(saved["view_aug"])
        history = json.loads(saved["history"])
        kept = {int(k): v.to(dev) for k, v in saved["kept"].items()}
        start = int(saved["outer"]) + 1
        init_seconds = float(saved["init_seconds"])

    def students() -> ModelState:  # the K students as the engine stacks models (a copy, outside autograd)
        return ModelState({n: torch.stack([t[n].detach() for t in thetas]) for n in thetas[0]}, buffers, {})

    def checkpoint(o: int) -> None:
        save_state(ckpt, {"outer": o, "theta": students().params, "buffers": buffers, "z": z.detach(), "z_opt": z_opt.state_dict(),
                          "opts": [opt.state_dict() for opt in opts], "rows": rows.get_state(),
                          "track_aug": track_aug.state_dict(), "view_aug": view_aug.state_dict(), "history": json.dumps(history),
                          "kept": {str(k): v for k, v in kept.items()}, "init_seconds": init_seconds,
                          "args": json.dumps({k: str(v) for k, v in vars(a).items()})})

    def logits_of(k: int):
        return lambda p, xb: learner.logits(p, bufs[k], {}, xb)

    @torch.no_grad()
    def students_val() -> list[float]:  # each student's validation accuracy (the engine's chunked scoring)
        right = (predict(learner, students(), val_x).argmax(-1) == val_y).sum(-1)
        return [100.0 * int(r) / val_x.shape[0] for r in right]

    def entropy(y: torch.Tensor) -> float:
        return float(-(y * y.clamp_min(1e-12).log()).sum(-1).mean())

    if not history:
        history.append({"outer": 0, "student_val": students_val(), "entropy": entropy(y0)})
    last = start - 1 if a.test_only else a.outer
    if a.test_only and not a.test_at:
        raise SystemExit("--test-only needs --test-at")
    t1 = time.perf_counter()
    for o in tqdm(range(start, last + 1), desc="implicit label steps", initial=start - 1, total=a.outer, disable=a.test_only):
        y = torch.softmax(z, -1)
        # 1. the target minibatch (clean images, their true classes), shared by the students
        idx = torch.randperm(data.train.x.shape[0], generator=rows)[: a.target_batch].to(dev)
        xt, yt = data.train.x[idx], data.train.y[idx]
        xk = x[None].expand(a.students, *x.shape).contiguous()
        every = torch.stack([view_aug(xk) for _ in range(a.views)])  # V x K x N x ...: student k's V views
        xvs = [every[:, k].flatten(0, 1) for k in range(a.students)]  # view-major, as implicit_label_grad reads them
        grad_y, losses, scales = torch.zeros_like(y), [], []
        for k, theta in enumerate(thetas):
            f = logits_of(k)
            scale = 1.0
            if a.target_scale == "fitted":  # the loss at its best logit scale: labels are not paid for sharpness (ridge.py)
                with torch.no_grad():
                    out_t = torch.cat([f(theta, xt[c : c + CHUNK]) for c in range(0, xt.shape[0], CHUNK)])
                scale = fitted_scale(out_t, yt)
            g_t = {n: torch.zeros_like(v) for n, v in theta.items()}
            loss_t = 0.0
            for c in range(0, xt.shape[0], CHUNK):
                part = F.cross_entropy(scale * f(theta, xt[c : c + CHUNK]), yt[c : c + CHUNK], reduction="sum") / xt.shape[0]
                for n, g in zip(theta, torch.autograd.grad(part, list(theta.values()))):
                    g_t[n] += g
                loss_t += float(part.detach())
            # 2-3. u = (G + (wd + lambda) I)^-1 g_t over V views of the base images, then the labels' gradient along u
            grad_y += implicit_label_grad(f, {n: v.detach() for n, v in theta.items()}, xvs[k], a.views, g_t,
                                          damping=wd + a.damping, cg_iters=a.cg_iters) / a.students
            losses.append(loss_t)
            scales.append(float(scale))
        z_opt.zero_grad()
        y.backward(grad_y)
        z_opt.step()
        # 4. the students follow the new labels (the protocol's final lr, each its own DSA stream)
        y_new = torch.softmax(z, -1).detach()
        for _ in range(a.track_epochs):
            xb = track_aug(xk)
            for k, (theta, opt) in enumerate(zip(thetas, opts)):
                opt.zero_grad()
                soft_cross_entropy(logits_of(k)(theta, xb[k]), y_new).backward()
                opt.step()
        kept[o] = y_new.clone()
        history.append({"outer": o, "target_loss": losses, "target_scale": scales,
                        "student_val": students_val(), "entropy": entropy(y_new),
                        "moved_l1": float((y_new - y0).abs().sum(-1).mean()), "grad_norm": float(grad_y.norm())})
        tqdm.write(json.dumps(history[-1]))
        checkpoint(o)  # after every outer iteration (about 40 s of one thread a student): a stopped run loses at most one
    loop_seconds = time.perf_counter() - t1  # this invocation's

    tests = {}
    for o in (a.test_at if a.test_at else [last]):
        if o not in kept:
            raise SystemExit(f"no labels of outer iteration {o} (the loop is at {last})")
        ev = evaluate_protocol(proto, learner, x, kept[o], data.test.x, data.test.y, steps=int(ds.steps), seed=seed,
                               models=a.test_models, progress=True, ledger=a.out.with_suffix(".ledger"))
        tests[o] = ev.to_dict()
        print(json.dumps({"outer": o, "accuracies": ev.accuracies, "mean": ev.accuracy_mean}))
    out = {"experiment": "implicit label steps at the protocol's trained student", "run": str(a.run), "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
           "temperature": temperature, "teacher": {k: teacher[k] for k in ("test_accuracy", "val_accuracy", "best_epoch", "cache")},
           "history": history, "tests": tests, "init_seconds": round(init_seconds, 1), "resumed_at": start - 1, "loop_seconds": round(loop_seconds, 1),
           "labels": {str(o): kept[o].cpu().tolist() for o in (a.test_at or [last])},
           "versions": versions(), "float_settings": floats, "threads": torch.get_num_threads(),
           "recipe": dataclasses.asdict(recipe) | {"augmentation": recipe.augmentation.to_dict()}}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
