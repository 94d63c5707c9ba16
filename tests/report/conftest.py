"""Small synthetic run directories (no distillation): config.json, metrics.jsonl, result.json,
evaluations/*.json and distilled.safetensors, shaped like those ``labeldistill distill`` writes."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from labeldistill.artifact import DistilledSet
from labeldistill.data import Preprocessing

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

PRE = Preprocessing(channels=1, size=28, mean=(0.1307,), std=(0.3081,))
DIGITS = [str(i) for i in range(10)]
KMNIST = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
LETTERS = [chr(ord("a") + i) for i in range(26)]


def _images(classes: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """28x28 greyscale images in [0, 1]: a blob whose place depends on the class, plus noise."""
    yy, xx = np.mgrid[0:28, 0:28]
    out = np.empty((len(classes), 28, 28))
    for i, c in enumerate(classes):
        a = 2 * np.pi * c / num_classes
        cy, cx = 14 + 8 * np.sin(a), 14 + 8 * np.cos(a)
        out[i] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0) + 0.15 * rng.random((28, 28))
    return np.clip(out, 0, 1)


def _labels(n: int, k: int, own: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    logits = rng.normal(0, 1.0, (n, k))
    if own is not None:
        logits[np.arange(n), own] += 3.0
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def _metrics(steps: int, window: int, grad_var_every: int, val_every_steps: int, scale: float, rng: np.random.Generator) -> tuple[list[dict], list[int]]:
    recs, t_list, life, best = [], [], 0, 0.0
    life_len = int(rng.integers(2 * window + 10, 3 * window + 20))
    for s in range(1, steps + 1):
        life += 1
        err = 90 * np.exp(-life / (0.6 * window)) + 8 + 0.03 * max(0, life - window) + rng.normal(0, 3)
        rec = {"kind": "step", "step": s, "epoch": 1 + (s - 1) // val_every_steps, "error": round(float(np.clip(err, 0, 100)), 4),
               "loss": round(float(err / 40), 6)}
        if grad_var_every and s % grad_var_every == 0:
            rec["grad_var"] = float(scale * np.exp(rng.normal(0, 0.4)) * (1 + 2 * np.exp(-s / 100)))
        if life >= life_len:
            t = int(life - window - rng.integers(0, window // 2))
            rec["reset"], rec["T_i"] = True, t
            t_list.append(t)
            life, life_len = 0, int(rng.integers(2 * window + 10, 3 * window + 20))
        recs.append(rec)
        if s % val_every_steps == 0:
            acc = 60 + 25 * (1 - np.exp(-s / 150)) + rng.normal(0, 2)
            best = max(best, acc)
            T = int(np.mean(t_list[-3:])) if t_list else life
            recs.append({"kind": "validation", "epoch": s // val_every_steps, "step": s, "T": T, "val_accuracy": round(float(acc), 4),
                         "selected": bool(acc >= best)})
    return recs, t_list


def make_run(path: Path, *, cross: bool = False, n: int = 20, steps: int = 300, method: str = "ridge", seed: int = 0,
             grad_var_every: int = 10, evaluations: bool = True, distilled: bool = True) -> Path:
    """Write a fake run directory at ``path`` and return it."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    target, target_classes = ("kmnist", KMNIST) if cross else ("mnist", DIGITS)
    source, base_classes = ("emnist", LETTERS) if cross else (None, DIGITS)
    own = rng.integers(0, len(base_classes), n) if cross else np.arange(n) % 10
    window = 50
    cfg = {"target": target, "source": source, "base": n, "method": method, "arch": "lenet", "epochs": -(-steps // 50), "seed": seed,
           "reset_window": window, "grad_var_every": grad_var_every, "val_every": 1, "test_models": 2}
    problem = {"base_dataset": source or target, "base_indices": [int(i) for i in rng.permutation(1000)[:n]], "cross_dataset": cross,
               "target": target, "class_names": target_classes}
    (path / "config.json").write_text(json.dumps({"config": cfg, "problem": problem, "preprocessing": PRE.to_dict(), "versions": {}}))
    recs, t_list = _metrics(steps, window, grad_var_every, 50, 1e-6 if method == "ridge" else 1e-4, rng)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    T = int(np.mean(t_list[-3:])) if t_list else steps
    head = "ridge" if method == "ridge" else "linear"
    (path / "result.json").write_text(json.dumps({
        "accuracy_mean": 85.1, "accuracy_std": 1.2, "accuracies": [84.0, 86.2], "models": 2, "steps": T, "T": T, "method": method,
        "arch": "lenet", "head": head, "base": n, "target": target, "source": source, "resets": len(t_list), "T_list": t_list,
        "selected_epoch": max(r["epoch"] for r in recs if r.get("selected")), "seconds_per_step": 0.05, "config": cfg}))
    if evaluations:
        (path / "evaluations").mkdir(exist_ok=True)
        for i, d in enumerate((-50, 0, 50, 100)):
            (path / "evaluations" / f"lenet-{head}-T{T + d}-K2.json").write_text(json.dumps({
                "accuracy_mean": 84.0 - abs(d) / 50 + i * 0.1, "accuracy_std": 1.0 + 0.2 * i, "accuracies": [83.0, 85.0], "steps": T + d,
                "models": 2, "arch": "lenet", "head": head, "steps_delta": d, "distilled_steps": T}))
        (path / "evaluations" / f"alexnet-{head}-T{T}-K2.json").write_text(json.dumps({
            "accuracy_mean": 80.0, "accuracy_std": 2.0, "steps": T, "models": 2, "arch": "alexnet", "head": head, "steps_delta": 0,
            "distilled_steps": T}))
    if distilled:
        img01 = _images(own, len(base_classes), rng)
        images = (torch.tensor(img01, dtype=torch.float32)[:, None] - PRE.mean[0]) / PRE.std[0]
        labels = torch.tensor(_labels(n, len(target_classes), None if cross else own, rng), dtype=torch.float32)
        prov = {"base_dataset": source or target, "base_indices": problem["base_indices"], "cross_dataset": cross, "target": target,
                "base_classes": base_classes, "base_labels": [int(v) for v in own], "seed": seed}
        DistilledSet(images, labels, T, PRE, list(target_classes), {"arch": "lenet", "head": head}, prov).save(path / "distilled.safetensors")
    return path


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One within-dataset (ridge) and one cross-dataset (second-order) fake run, shared by the tests (read only)."""
    root = tmp_path_factory.mktemp("runs")
    return {"within": make_run(root / "mnist-rr", n=20, method="ridge", seed=1),
            "cross": make_run(root / "emnist-kmnist-so", cross=True, n=30, method="second-order", seed=2)}


def make_image_run(path: Path, *, learned: str = "images", n: int = 20, seed: int = 3) -> Path:
    """A run of the loop with learned images (``--learn images`` from uniform noise, or
    ``images+labels`` from real images): the usual files, the set with its initial images."""
    rng = np.random.default_rng(seed)
    make_run(path, n=n, method="second-order", seed=seed, evaluations=False, distilled=False)
    cfg_path = path / "config.json"
    record = json.loads(cfg_path.read_text())
    init = "uniform" if learned == "images" else "real"
    record["config"].update(learn=learned, image_init=init)
    cfg_path.write_text(json.dumps(record))
    own = np.arange(n) % 10
    start = rng.random((n, 28, 28)) if init == "uniform" else _images(own, 10, rng)
    learned_px = np.clip(0.5 * start + 0.5 * _images(own, 10, rng), 0, 1)
    norm = lambda a: (torch.tensor(a, dtype=torch.float32)[:, None] - PRE.mean[0]) / PRE.std[0]  # noqa: E731
    labels = torch.nn.functional.one_hot(torch.tensor(own), 10).float() if learned == "images" else \
        torch.tensor(_labels(n, 10, own, rng), dtype=torch.float32)
    prov = {"target": "mnist", "base_indices": None, "base_labels": None, "cross_dataset": False, "seed": seed}
    DistilledSet(norm(learned_px), labels, 100, PRE, DIGITS, {"arch": "lenet", "head": "linear", "learned": learned}, prov,
                 learned=learned, image_init=init, initial_images=norm(start)).save(path / "distilled.safetensors")
    return path


def make_dd_run(path: Path, *, method: str = "dd", seed: int = 4, iterations: int = 40, steps: int = 10, epochs: int = 3) -> Path:
    """A DD / SLDD run directory as ``distill --method dd|sldd`` writes it: an unrolled config.json,
    one metrics line per outer iteration (no ``kind``), result.json, a set with its schedule, and
    evaluations of two variants."""
    from labeldistill.artifact import Schedule

    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    n = steps * 10
    unrolled = {"steps": steps, "epochs": epochs, "images_per_class": 1, "distill_lr": 0.02, "outer_lr": 0.01, "betas": [0.5, 0.999],
                "decay_epochs": 40, "decay_factor": 0.5, "outer_epochs": 2, "batch_size": 1024, "init": "xavier", "init_gain": 1.0,
                "image_std": 1.0, "augment": False}
    cfg = {"target": "mnist", "method": method, "base": n, "arch": "lenet", "seed": seed, "epochs": 2, "split": None, "test_models": 4,
           "test_group": 50, "checkpoint_minutes": 3.0, "checkpoint_every": 0, "device": "cpu", "allow_tf32": False, "unrolled": unrolled}
    (path / "config.json").write_text(json.dumps({"config": cfg, "given": cfg, "method": method, "device": "cpu", "versions": {},
                                                  "problem": {"target": "mnist", "class_names": DIGITS}, "preprocessing": PRE.to_dict()}))
    (path / "metrics.jsonl").write_text("".join(json.dumps({"iteration": i, "epoch": (i - 1) // 20, "loss": float(2.3 * np.exp(-i / 15) + 0.2),
                                                            "outer_lr": 0.01}) + "\n" for i in range(1, iterations + 1)))
    lrs = [float(0.02 + 0.01 * np.sin(t)) ** 2 * 50 for t in range(steps * epochs)]
    order = [[(t % steps) * 10 + i for i in range(10)] for t in range(steps * epochs)]
    own = np.arange(n) % 10
    norm = lambda a: (torch.tensor(a, dtype=torch.float32)[:, None] - PRE.mean[0]) / PRE.std[0]  # noqa: E731
    initial = torch.tensor(rng.normal(0, 1, (n, 1, 28, 28)), dtype=torch.float32)
    images = 0.3 * initial + 0.7 * norm(_images(own, 10, rng))
    learned = "images+labels" if method == "sldd" else "images"
    labels = torch.nn.functional.one_hot(torch.tensor(own), 10).float() if method == "dd" else \
        torch.tensor(_labels(n, 10, own, rng), dtype=torch.float32)
    schedule = Schedule("per-step", lrs, order, steps)
    DistilledSet(images, labels, steps * epochs, PRE, DIGITS, {"arch": "lenet", "method": method, "schedule": True, "test_models": 4},
                 {"target": "mnist", "method": method, "learned": learned, "image_init": "normal"}, learned=learned,
                 image_init="normal", initial_images=initial, schedule=schedule).save(path / "distilled.safetensors")
    (path / "result.json").write_text(json.dumps({"accuracy_mean": 77.3, "accuracy_std": 5.1, "std": "sample", "models": 4,
                                                  "T": steps * epochs, "method": method, "arch": "lenet", "target": "mnist",
                                                  "distill_seconds": 600.0, "device": "cpu", "variant": "learned", "config": cfg}))
    (path / "evaluations").mkdir(exist_ok=True)
    for variant, acc in (("first-steps:10", 35.6), ("average-lr", 62.4)):
        (path / "evaluations" / f"lenet-{variant.replace(':', '')}-K4.json").write_text(json.dumps({
            "accuracy_mean": acc, "accuracy_std": 11.0, "variant": variant, "arch": "lenet", "models": 4, "steps": steps * epochs,
            "moving_steps": 10 if variant.startswith("first") else steps * epochs}))
    return path
