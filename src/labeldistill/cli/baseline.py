"""``labeldistill baseline``: the base images with their true (or smoothed) labels."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..baselines import BaselineConfig, run_baseline
from ..data import load_for_arch
from ..engine import HEADS, make_learner
from ..errors import UserError
from ..problem import build_problem
from ..protocol import default_arch
from ..runs import RunLock, atomic_write_json
from ..runs.provenance import resolve_device, versions
from .common import add_common, emit, fmt_acc, parse_split, read_toml


@dataclasses.dataclass
class BaselineSettings:
    target: str = "mnist"
    base: int = 100
    smoothing: float = 0.0
    head: str = "linear"
    arch: str | None = None
    models: int = 20
    seed: int = 0
    batch_size: int | None = None
    split: tuple[float, float, float] | None = None
    device: str = "auto"


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("baseline", help="true-label (or label-smoothing) baseline on the same base images")
    p.add_argument("--target", default=None, help="target dataset (default mnist)")
    p.add_argument("--base", type=int, default=None, help="number of base examples N (default 100)")
    p.add_argument("--smoothing", type=float, default=None, help="label smoothing epsilon (paper's LS baseline: 0.1)")
    p.add_argument("--head", default=None, choices=list(HEADS), help="linear (standard) or ridge (RR baseline)")
    p.add_argument("--models", type=int, default=None, help="fresh test models (20)")
    p.add_argument("--batch-size", type=int, default=None, help="N_i (paper rule by N)")
    p.add_argument("--split", default=None, help="TRAIN,VAL,TEST fractions for data without official splits")
    p.add_argument("--out", default=None, help="run directory for result.json (optional)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .common import merge

    flags = dict(vars(args))
    flags["split"] = parse_split(args.split)
    s: BaselineSettings = merge(BaselineSettings, read_toml(args.config), flags)
    if not 0.0 <= s.smoothing < 1.0:
        raise UserError(f"--smoothing must be in [0, 1), got {s.smoothing}.")
    result = baseline(s, data_root=args.data_root, out=args.out)
    name = "Baseline" + (" RR" if s.head == "ridge" else "") + (" LS" if s.smoothing else "")
    emit(result, args.json, f"{name} on {result['target']} with {s.base} base examples: test accuracy {fmt_acc(result)} "
                            f"({result['models']} models, T={result['steps']} chosen on validation)")
    return 0


def baseline(s: BaselineSettings, *, data_root=None, out=None) -> dict:
    """Run one baseline from settings; optionally record it in a run directory."""
    device = resolve_device(s.device)
    lock = RunLock(out).acquire() if out else None
    try:
        target = load_for_arch(s.target, s.arch, data_root=data_root, seed=s.seed, split=s.split, device=device)
        arch = s.arch or default_arch(target.name, target.preprocessing.channels)
        if s.base > len(target.train):
            raise UserError(f"--base {s.base} is more than the {len(target.train)} training images of {target.name}.")
        problem = build_problem(target, s.base, s.seed)
        learner = make_learner(arch, int(problem.base_x.shape[1]), int(problem.base_x.shape[-1]), target.num_classes, head=s.head)
        cfg = BaselineConfig(smoothing=s.smoothing, models=s.models, batch_size=s.batch_size, seed=s.seed)
        result = run_baseline(learner, problem, cfg)
        result.update(target=target.name, base=s.base, arch=arch, head=s.head, smoothing=s.smoothing, device=device,
                      settings=dataclasses.asdict(s), versions=versions(), base_indices=[int(i) for i in problem.base_index])
        if out:
            atomic_write_json(Path(out) / "result.json", result)
        return result
    finally:
        if lock is not None:
            lock.release()
