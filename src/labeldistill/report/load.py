"""Read a run directory (made by ``labeldistill distill``: labels, images, images+labels, or a DD /
SLDD run, whose config.json holds an unrolled configuration) into plain Python and numpy values.

Only ``config.json`` and ``metrics.jsonl`` (or an archived run's ``metrics.jsonl.gz``) are required, so a run still in progress can be
reported on (curves only); the distilled set, ``result.json`` and ``evaluations/*.json``
are used when present.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..artifact import FILE_NAME, DistilledSet, load
from ..errors import UserError
from ..runs.ledger import evaluations_dir
from ..runs.metrics import metrics_path, read_metrics_lines

DEFAULT_WINDOW = 50


@dataclass
class Run:
    """Everything a report needs from one run directory."""

    path: Path
    config: dict[str, Any]  # the resolved DistillConfig
    problem: dict[str, Any]
    steps: list[dict[str, Any]]  # "step" records, in order
    validations: list[dict[str, Any]]  # "validation" records, in order
    result: dict[str, Any] | None = None
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    distilled: DistilledSet | None = None
    outer: list[dict[str, Any]] = field(default_factory=list)  # DD / SLDD: one record per outer iteration

    @property
    def unrolled(self) -> bool:
        """A DD / SLDD run (labeldistill.unrolled): no resets, no label selection, a learned schedule."""
        from ..unrolled import is_unrolled_record

        return is_unrolled_record({"method": self.config.get("method"), "config": self.config})

    @property
    def students(self) -> bool:
        """Whether the loop's persistent models were students trained the test's way (``--method implicit``): never reset,
        and the set has no paper T (its T is a placeholder)."""
        from ..distill.strategies import trains_students

        return trains_students(self.config.get("method"))

    @property
    def learned(self) -> str:
        """What the run learned: "labels", "images" or "images+labels"."""
        if self.distilled is not None:
            return self.distilled.learned
        if self.unrolled:
            return "images+labels" if self.config.get("method") == "sldd" else "images"
        return str(self.config.get("learn") or "labels")

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def window(self) -> int:
        return int(self.config.get("reset_window") or DEFAULT_WINDOW)

    @property
    def cross_dataset(self) -> bool:
        if self.distilled is not None and "cross_dataset" in self.distilled.provenance:
            return bool(self.distilled.provenance["cross_dataset"])
        return bool(self.problem.get("cross_dataset", self.config.get("source") is not None))

    def get(self, key: str, default: Any = None) -> Any:
        """A setting from result.json, else the config, else ``default``."""
        if self.result is not None and self.result.get(key) is not None:
            return self.result[key]
        return self.config.get(key, default)

    # -- the metrics log as arrays ---------------------------------------------------
    def step_array(self) -> np.ndarray:
        return np.array([int(r["step"]) for r in self.steps], dtype=np.int64)

    def error_array(self) -> np.ndarray:
        return np.array([float(r["error"]) for r in self.steps], dtype=np.float64)

    def resets(self) -> tuple[np.ndarray, np.ndarray]:
        """Steps at which the model was reset, and the T_i recorded there."""
        recs = [r for r in self.steps if r.get("reset")]
        return (np.array([int(r["step"]) for r in recs], dtype=np.int64),
                np.array([int(r.get("T_i", 0)) for r in recs], dtype=np.int64))

    def grad_var(self) -> tuple[np.ndarray, np.ndarray]:
        recs = [r for r in self.steps if r.get("grad_var") is not None]
        return (np.array([int(r["step"]) for r in recs], dtype=np.int64),
                np.array([float(r["grad_var"]) for r in recs], dtype=np.float64))


def _read_json(path: Path, run_dir: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({type(e).__name__}): {run_dir} is damaged.") from None
    except OSError as e:
        raise UserError(f"Cannot read {path}: {e.strerror or e}.") from None


def read_metrics_file(path: Path, lines: list[str] | None = None) -> tuple[list[dict], list[dict]]:
    """The step and validation records of ``metrics.jsonl`` (``lines``: its lines, already read); a torn last line
    (a run being written) is skipped."""
    lines = read_metrics_lines(path) if lines is None else lines
    steps, vals = [], []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            kind = rec.get("kind")
            if kind == "step":
                int(rec["step"]), float(rec["error"])
                steps.append(rec)
            elif kind == "validation":
                int(rec["step"]), float(rec["val_accuracy"])
                vals.append(rec)
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
            if i == len(lines):  # the run may be appending this line right now
                break
            raise UserError(f"{path} line {i} is not a valid metrics record: the log is damaged.") from None
    return steps, vals


def load_run(run_dir: str | Path, *, distilled: bool = True) -> Run:
    """Read ``run_dir``; a one-line :class:`UserError` when it is not a run directory."""
    path = Path(run_dir)
    if not path.exists():
        raise UserError(f"{path} is not a run directory (it does not exist).")
    if not path.is_dir():
        raise UserError(f"{path} is not a run directory (it is a file).")
    metrics = metrics_path(path)
    if metrics is None:
        from ..ensemble import MEAN_RUN_FORMAT

        made = _read_json(path / "config.json", path) if (path / "config.json").is_file() else {}
        if isinstance(made, dict) and made.get("format") == MEAN_RUN_FORMAT:  # reproduce's mean of other runs' sets: no training
            parts = ", ".join(str(p.get("run_slug")) for p in made.get("parts") or [])
            raise UserError(f"{path} holds the mean of other runs' label sets ({parts}), not a training to report: report "
                            "those runs; 'labeldistill evaluate' tests the mean.")
        raise UserError(f"{path} is not a run directory (no metrics.jsonl).")
    if not (path / "config.json").is_file():
        raise UserError(f"{path} is not a run directory (no config.json).")
    record = _read_json(path / "config.json", path)
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise UserError(f"{path / 'config.json'} has no 'config' section: {path} was not made by 'labeldistill distill'.")
    lines = read_metrics_lines(metrics)  # read (and decompressed) once for both kinds of record
    steps, vals = read_metrics_file(metrics, lines)
    outer = read_outer_iterations(lines)
    result = _read_json(path / "result.json", path) if (path / "result.json").is_file() else None
    evals = []
    for f in sorted(evaluations_dir(path).glob("*.json")):  # none where the folder is missing
        e = _read_json(f, path)
        if isinstance(e, dict) and "accuracy_mean" in e and ("steps" in e or "variant" in e):
            evals.append({**e, "file": f.name})
    ds = load(path / FILE_NAME) if distilled and (path / FILE_NAME).is_file() else None
    return Run(path=path, config=record["config"], problem=dict(record.get("problem") or {}), steps=steps, validations=vals,
               result=result if isinstance(result, dict) else None, evaluations=evals, distilled=ds, outer=outer)


def read_outer_iterations(lines: list[str]) -> list[dict]:
    """DD / SLDD's records (``iteration``, ``loss``) among a metrics log's lines; empty for a label-distillation log."""
    out = []
    for line in lines:
        try:
            rec = json.loads(line)
            if isinstance(rec, dict) and "kind" not in rec and "iteration" in rec:
                out.append({"iteration": int(rec["iteration"]), "loss": float(rec["loss"]), "epoch": rec.get("epoch")})
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # a torn last line (read_metrics_file has judged the log already)
    return out


def base_images(ds: DistilledSet) -> np.ndarray:
    """The base images in [0, 1] as ``N x H x W x C`` numpy (for plotting)."""
    x = ds.preprocessing.denormalise(ds.images.detach().float().cpu())
    return x.permute(0, 2, 3, 1).numpy()


def selected_base(run: Run) -> dict | None:
    """A run's base images and how they were chosen, for the side-by-side figure; None without a
    distilled set. Learned images are shown as they started (``initial_images``) when kept."""
    path = run.path / FILE_NAME
    ds = run.distilled if run.distilled is not None else (load(path) if path.is_file() else None)
    if ds is None:
        return None
    prov = {**run.problem, **ds.provenance}
    if ds.learned != "labels" and ds.initial_images is not None:
        ds = dataclasses.replace(ds, images=ds.initial_images)
    classes, labels = prov.get("base_classes") or run.problem.get("class_names"), prov.get("base_labels")
    names = [str(classes[int(v)]) for v in labels] if isinstance(classes, list) and isinstance(labels, list) and len(labels) == len(ds) \
        and all(0 <= int(v) < len(classes) for v in labels) else None
    indices = prov.get("base_indices")
    select = prov.get("base_select") or {}
    return {"images": base_images(ds), "indices": indices if isinstance(indices, list) and len(indices) == len(ds) else None,
            "classes": names, "selector": select.get("name", "random" if "base_select" not in prov else "?"),
            "sha256": prov.get("base_sha256")}
