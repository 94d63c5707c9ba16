"""Check (issue 18): is a teacher-label row's temperature, chosen at an end of the ``auto`` grid, the best one?

``--temperature auto`` scores T = 1, 2, 4, 8 and warns when the best is an end of that grid (``at_grid_edge``); the
grid does not grow on its own (``docs/design-notes.md``, "Temperature"). This scores the temperatures given here the
same way (one validation student per temperature, trained as the test trains, from the same seeds), on the same base
set and the same cached teacher as ``baseline --labels teacher --temperature auto`` with the same settings. Give it a
copy of that baseline's ``ledger/`` and the temperatures it already scored cost nothing: a key that matches there shows
the check scores exactly what the baseline scored.

    LABELDISTILL_CACHE=runs/s34/field-cifar10 python studies/temperature_beyond_grid.py --target cifar10 \\
        --protocol dc-dsa --temperatures 0.5 1 --ledger runs/s35/t05/ledger --out runs/s35/t05/result.json

A row with its own teacher names it as the row does (``--teacher-arch convnet3 --teacher-recipe expert --teacher-epochs 64
--teacher-patience 64``) and the labelling epoch the row chose (``--teacher-epoch 64``).

Measured results: docs/results.md ("The field table, CIFAR-10"; session 46 for the 64-epoch expert).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from labeldistill import paper_defaults
from labeldistill.baselines import BaselineConfig, BaselineSettings
from labeldistill.data import load_for_arch
from labeldistill.engine import make_learner
from labeldistill.numerics import float32_precision
from labeldistill.problem import build_problem
from labeldistill.protocols import get_protocol, target_zca
from labeldistill.runs.provenance import pin_code_identity, versions
from labeldistill.teacher import teacher_soft_labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="mnist")
    ap.add_argument("--base", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--protocol", default="dc-dsa")
    ap.add_argument("--temperatures", type=float, nargs="+", required=True)
    ap.add_argument("--ledger", type=Path, required=True, help="the validation students' ledger (a copy of the baseline's)")
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, required=True)
    # the row's teacher, where it is not the default (the field table's ConvNet-3 expert rows: experiments/cells.py)
    ap.add_argument("--teacher-arch", default=None)
    ap.add_argument("--teacher-recipe", default="adam")
    ap.add_argument("--teacher-epochs", type=int, default=BaselineSettings.teacher_epochs)
    ap.add_argument("--teacher-patience", type=int, default=BaselineSettings.teacher_patience)
    ap.add_argument("--teacher-lr", type=float, default=None)
    ap.add_argument("--teacher-epoch", type=int, default=None, help="the labelling epoch the row chose (default: the best)")
    a = ap.parse_args()
    pin_code_identity()
    s = BaselineSettings(target=a.target, base=a.base, seed=a.seed, protocol=a.protocol, labels="teacher", temperature="auto",
                         teacher_arch=a.teacher_arch, teacher_recipe=a.teacher_recipe, teacher_epochs=a.teacher_epochs,
                         teacher_patience=a.teacher_patience, teacher_lr=a.teacher_lr)
    proto = get_protocol(s.protocol)
    t0 = time.perf_counter()
    with float32_precision(s.allow_tf32) as floats:  # as `baseline` does, so the students' ledger keys match
        target = load_for_arch(s.target, proto.arch, data_root=a.data_root, seed=s.seed, split=None, device=a.device)
        problem = build_problem(target, s.base, s.seed, select=s.base_select)
        learner = make_learner(proto.arch, int(problem.base_x.shape[1]), int(problem.base_x.shape[-1]), target.num_classes)
        zca = target_zca(proto, target, target.preprocessing.channels)
        _, rec = teacher_soft_labels(problem, proto=proto, zca=zca, student=learner, seed=s.seed, arch=s.teacher_arch,
                                     epochs=s.teacher_epochs, patience=s.teacher_patience, temperature="auto",
                                     batch=paper_defaults.inner_batch_size(problem.n_base, target.name), lr=BaselineConfig().lr,
                                     ledger=a.ledger, grid=tuple(sorted(a.temperatures)),
                                     epoch=a.teacher_epoch if a.teacher_epoch is not None else "best", recipe=s.teacher_recipe,
                                     teacher_lr=s.teacher_lr)
    out = {"settings": vars(a) | {"ledger": str(a.ledger), "out": str(a.out)}, "base_sha256": problem.base_sha256,
           "temperature_choice": rec["temperature_choice"], "teacher": rec["teacher"], "seconds": round(time.perf_counter() - t0, 1),
           "versions": versions(), "float_settings": floats}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out["temperature_choice"], indent=1))


if __name__ == "__main__":
    main()
