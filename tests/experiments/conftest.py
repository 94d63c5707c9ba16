"""Fixtures for the ``reproduce`` tests: a tiny data root, and fast fakes of the run functions
that write the same files as the real ones (config.json, checkpoint, result.json)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from labeldistill.data.catalog import CATALOG
from labeldistill.distill import Interrupted
from labeldistill.experiments import DataView, Options, TableSpec, run_cells, runner
from labeldistill.experiments.report import collect, table_rows, write_report
from labeldistill.paper_defaults import default_arch
from labeldistill.runs import atomic_write_json, read_json
from labeldistill.runs.provenance import versions

PAPER = Path(__file__).parent / "paper"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """Never read the user's data root or write the user's cache."""
    monkeypatch.delenv("LABELDISTILL_DATA", raising=False)
    monkeypatch.setenv("LABELDISTILL_CACHE", str(tmp_path_factory.mktemp("decoded-cache")))


def _pair(path: Path, n: int, classes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), y=(np.arange(n) % classes).astype(np.int64))


@pytest.fixture
def data_root(tmp_path) -> Path:
    """MNIST as a tiny npz pair, and KMNIST's test file alone (the --stand-in case)."""
    root = tmp_path / "data"
    root.mkdir()
    _pair(root / "mnist_train.npz", 60, 10, 1)
    _pair(root / "mnist_test.npz", 20, 10, 2)
    _pair(root / "kmnist_test.npz", 40, 10, 3)
    return root


def _channels(target: str) -> int:
    return CATALOG.get(target).channels if target in CATALOG else 1


class Fakes:
    """Stand-ins for run_distillation / baseline / evaluate that record their calls."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.accuracy: dict[str, tuple[float, float]] = {}  # target/method -> (mean, std)
        self.interrupt: set[str] = set()  # targets whose next distillation stops after its checkpoint
        # how it stops: the real loop's first Ctrl-C (checkpoint, then Interrupted), or a second one
        self.stop: BaseException = Interrupted("Stopped at step 3; checkpoint written.")
        self.seconds: dict[str, float] = {}  # target/method/learn (DD: target/dd) -> distill_seconds written
        self.device = "cpu"  # the device the fake runs say they used

    def _acc(self, key: str) -> tuple[float, float]:
        return self.accuracy.get(key, (50.0, 1.0))

    def distill(self, cfg, *, out, resume=False, data_root=None, progress=True, **_):
        out = Path(out)
        self.calls.append(("distill", str(out.name), resume))
        resolved = cfg.resolve(cfg.target, _channels(cfg.target))
        if not resume:
            assert not (out / "checkpoint.safetensors").exists(), "a fresh run over a checkpoint"
            atomic_write_json(out / "config.json", {"config": resolved.to_dict(), "data_root": str(data_root), "versions": versions()})
        (out / "checkpoint.safetensors").write_bytes(b"ckpt")
        if cfg.target in self.interrupt:
            self.interrupt.discard(cfg.target)
            raise self.stop  # stopped midway: checkpoint written, no result
        mean, std = self._acc(f"{cfg.target}/{cfg.method}")
        result = {"accuracy_mean": mean, "accuracy_std": std, "accuracies": [mean - std, mean + std], "models": cfg.test_models,
                  "steps": 300, "T": 300, "seconds": 1.0, "method": resolved.method, "arch": resolved.arch,
                  "head": "ridge" if resolved.method == "ridge" else "linear", "base": cfg.base, "target": cfg.target,
                  "seed": cfg.seed, "epochs": resolved.epochs, "learned": resolved.learn, "image_init": resolved.image_init,
                  "distill_seconds": self.seconds.get(f"{cfg.target}/{cfg.method}/{resolved.learn}", 60.0),
                  "device": self.device, "versions": versions()}
        atomic_write_json(out / "result.json", {**result, "config": resolved.to_dict()})
        return SimpleNamespace(evaluation=result)

    def unrolled(self, cfg, *, out, resume=False, data_root=None, progress=True, **_):
        """Like ``run_unrolled``: config.json with ``method`` and the resolved config (its ``unrolled`` section)."""
        out = Path(out)
        self.calls.append(("unrolled", str(out.name), resume))
        num_classes = 10
        resolved, ucfg = cfg.resolve(cfg.target, num_classes, _channels(cfg.target))
        if not resume:
            atomic_write_json(out / "config.json", {"config": resolved.to_dict(), "method": resolved.method,
                                                    "device": self.device, "versions": versions()})
        (out / "checkpoint.safetensors").write_bytes(b"ckpt")
        mean, std = self._acc(f"{cfg.target}/{cfg.method}")
        result = {"accuracy_mean": mean, "accuracy_std": std, "accuracies": [mean], "models": cfg.test_models, "steps": 30,
                  "T": ucfg.inner_steps, "method": resolved.method, "arch": resolved.arch, "target": cfg.target, "seed": cfg.seed,
                  "base": cfg.base, "learned": "images" if cfg.method == "dd" else "images+labels", "image_init": "normal",
                  "distill_seconds": self.seconds.get(f"{cfg.target}/{cfg.method}", 120.0), "test_seconds": 5.0,
                  "device": self.device, "versions": versions()}
        atomic_write_json(out / "result.json", {**result, "config": resolved.to_dict()})
        return SimpleNamespace(evaluation=result)

    def baseline(self, s, *, data_root=None, out=None):
        self.calls.append(("baseline", Path(out).name))
        arch = s.arch or default_arch(s.target, _channels(s.target))
        mean, std = self._acc(f"{s.target}/baseline")
        result = {"accuracy_mean": mean, "accuracy_std": std, "accuracies": [mean], "models": s.models, "steps": 200,
                  "arch": arch, "head": s.head, "smoothing": s.smoothing, "settings": dataclasses.asdict(s), "versions": versions()}
        atomic_write_json(Path(out) / "result.json", result)
        return result

    def evaluate(self, run_dir, *, arch=None, head=None, steps=None, models=None, data_root=None, device="auto", variant=None, **_):
        res = read_json(Path(run_dir) / "result.json")
        if res.get("method") in ("dd", "sldd"):  # a DD / SLDD set: its variant, the run's own number of networks
            self.calls.append(("evaluate", Path(run_dir).name, arch, variant))
            shift = {"learned": 0.0, "average-lr": -10.0, "like-ld": -5.0}.get(variant or "learned", -20.0)
            return {"accuracy_mean": res["accuracy_mean"] + shift, "accuracy_std": 3.0, "accuracies": [],
                    "models": models or res["models"], "steps": 30, "arch": arch or res["arch"], "variant": variant or "learned",
                    "versions": versions()}
        self.calls.append(("evaluate", Path(run_dir).name, arch, head, steps))
        models = 20 if models is None else models
        delta = int(steps) if steps and steps[0] in "+-" else 0
        return {"accuracy_mean": res["accuracy_mean"] + delta / 100, "accuracy_std": 0.5, "accuracies": [], "models": models,
                "steps": res["T"] + delta, "arch": arch or res["arch"], "head": head or res["head"], "steps_delta": delta,
                "versions": versions()}

    def count(self, kind: str) -> int:
        return sum(c[0] == kind for c in self.calls)


@pytest.fixture
def fakes(monkeypatch) -> Fakes:
    f = Fakes()
    monkeypatch.setattr(runner, "run_distillation", f.distill)
    monkeypatch.setattr(runner, "run_unrolled", f.unrolled)
    monkeypatch.setattr(runner, "baseline", f.baseline)
    monkeypatch.setattr(runner, "evaluate", f.evaluate)
    return f


class RealCells:
    """Cells run for real (``--quick``, CPU) under one output folder, for the end-to-end tests."""

    def __init__(self, out: Path) -> None:
        self.opts = Options(out=out, quick=True, device="cpu")

    def run_pair(self, spec: TableSpec) -> list:
        """Run a two-cell table: the first cell makes its run, the second reuses it and re-tests it."""
        out = run_cells(spec.names(), self.opts)
        assert [o.status for o in out] == ["done", "done"], [o.message for o in out]
        assert [o.action for o in out] == ["ran", "reused run, evaluated"]
        return out

    def report_and_rerun(self, spec: TableSpec, out: list) -> str:
        """The table's report text; running its cells again then finds them all stored."""
        text, _ = write_report(spec, self.opts, table_rows(spec, self.opts, collect(spec, self.opts, out, DataView(None))))
        assert [o.action for o in run_cells(spec.names(), self.opts)] == ["stored cell"] * len(out)
        return text


@pytest.fixture
def real_cells(tmp_path) -> RealCells:
    return RealCells(tmp_path)
