"""Check (issue 18): do label sets learned on the same images from different starts average into a better one?

Two implicit runs on MNIST-100 seed 0 learned labels on the same 100 images from different teachers' labels (the LeNet
teacher's, 98.48 under ``dc-dsa``; the lr-1e-2 ConvNet-3 expert's, 98.41). Their labels differ (L1 0.38 a row between
them, 0.14 between two epochs of one run), so the mean of the two may carry what each learned alone. This writes the
mean of the sets' label distributions (class by class, each row still sums to 1) on their images, which must be equal
bit for bit, as a distilled set that ``labeldistill evaluate`` tests like any other:

    python studies/average_label_sets.py records/runs/mnist-implicit-r5-e2-100-s0 \\
        runs/s44/field-mnist/runs/mnist_implicit-mtt-expert-lr1e-2_100__protocol=dc-dsa --out runs/s47/avg/avg.safetensors
    labeldistill evaluate runs/s47/avg/avg.safetensors --protocol dc-dsa --target mnist --seed 0 --json

(``labeldistill.average_labels``, the library's, as ``labeldistill export RUN_A RUN_B`` writes it.) The set's cost is
the sum of its parts' distillations; its provenance names each part. With ``--validate TARGET``,
each part and the mean are also scored as the runs chose their labels: one student of the set's test protocol trained
on them and tested on the target's validation split (the same student seed for all, the runs' split seed 0), so the
mean can be chosen without the test split (written to ``OUT.validation.json``).

A mean of distributions is softer than its parts (its entropy is at least theirs on average), and learned labels can
gain from sharpening (``docs/results.md``, session 11). With ``--temperatures T ...`` (and ``--validate``) the mean is
also scored at each temperature (``softmax(log(labels) / T)``, the library's ``temper``) by the same students, the
temperature that validates best is chosen (the first given on ties: list 1 first to prefer the mean as it is) and that
set is written beside ``OUT`` (``OUT-T<t>.safetensors``), to be tested like any other.
Measured results: docs/results.md (sessions 47, 52).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from labeldistill import average_labels
from labeldistill.artifact import DistilledSet, load
from labeldistill.errors import UserError


def validate(sets: list[DistilledSet], names: list[str], target_name: str, *, data_root: str, device: str, seed: int = 0,
             models: int = 1, ledger: Path | None = None) -> dict:
    """Validation accuracy (%) of ``models`` students of each set's test protocol (the same seeds for every set; the
    first is the one student of ``models=1``), by name: their mean and each student's. ``ledger``: a folder keeping
    each finished student, so a larger ``models`` later trains only the new ones."""
    from labeldistill.data import load_for_arch
    from labeldistill.engine import make_learner
    from labeldistill.protocols import evaluate_protocol, get_protocol

    proto = get_protocol(sets[0].recipe["test_protocol"])
    target = load_for_arch(target_name, proto.arch, data_root=data_root, seed=seed, split=None, device=device)
    if target.preprocessing != sets[0].preprocessing:
        raise UserError(f"{target_name} loads with other preprocessing than the sets' ({target.preprocessing} against {sets[0].preprocessing}).")
    x = sets[0].images.to(device)
    learner = make_learner(proto.arch, int(x.shape[1]), int(x.shape[-1]), target.num_classes)
    zca = None if sets[0].zca is None else sets[0].zca.to(device)
    out = {}
    for s, name in zip(sets, names):
        ev = evaluate_protocol(proto, learner, x, s.labels.to(device), target.val.x, target.val.y, steps=1, seed=seed,
                               models=models, batch_size=len(s), lr=1e-3, zca=zca, purpose="validation-models", ledger=ledger)
        out[name] = {"mean": round(float(ev.accuracy_mean), 2), "students": [round(float(a), 2) for a in ev.accuracies]}
        print(f"validation {out[name]['mean']:.2f} {out[name]['students']}  {name}", flush=True)
    return out


def _choose_temperature(mean: DistilledSet, out: Path, temperatures: list[float], target: str, **how) -> tuple[float, dict]:
    """Score ``mean`` at each temperature on validation (the students of :func:`validate`), write the best-scoring one
    (the first listed on ties) as ``OUT-T<t>.safetensors``; return it and the scores by name."""
    from labeldistill.calibration import choose_best, temper

    sets = {t: mean if t == 1 else dataclasses.replace(mean, labels=temper(mean.labels.double(), t).float()) for t in temperatures}
    names = {t: f"{out.with_suffix('')}-T{t:g}.safetensors" for t in temperatures}
    scores = validate(list(sets.values()), list(names.values()), target, ledger=out.with_suffix(".ledger"), **how)
    best, _ = choose_best(temperatures, lambda t: scores[names[t]]["mean"])
    sets[best].save(Path(names[best]))
    print(f"temperature {best:g} validates best: wrote {names[best]}", flush=True)
    return best, scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="+", help="run directories or distilled-set files, on the same images")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--validate", metavar="TARGET", help="also score each set and the mean on TARGET's validation split")
    ap.add_argument("--validation-models", type=int, default=1, help="students per set on the validation split (1)")
    ap.add_argument("--temperatures", type=float, nargs="+", metavar="T",
                    help="with --validate: also score the mean at these softmax temperatures and write the best one")
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    if len(a.sets) < 2:
        raise SystemExit("error: give two or more sets to average")
    if a.temperatures and not a.validate:
        raise SystemExit("error: --temperatures are chosen on validation: give --validate TARGET")
    if a.temperatures and not all(t > 0 for t in a.temperatures):
        raise SystemExit("error: --temperatures must be positive")
    try:
        parts, names = [load(p) for p in a.sets], [str(p) for p in a.sets]
        out = average_labels(parts, names)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        out.save(a.out)
        print(f"wrote {a.out}: the mean of {len(a.sets)} label sets on {len(out)} images")
        if a.validate:
            from labeldistill.runs.provenance import pin_code_identity, versions

            pin_code_identity()
            t0 = time.perf_counter()
            how = dict(data_root=a.data_root, device=a.device, models=a.validation_models)
            chosen = None
            if a.temperatures:  # the mean at each temperature only (T 1: the mean as it is), not its parts
                chosen, scores = _choose_temperature(out, a.out, a.temperatures, a.validate, **how)
            else:
                scores = validate([*parts, out], [*names, str(a.out)], a.validate, ledger=a.out.with_suffix(".ledger"), **how)
            record = {"validation_accuracy": scores, "temperature_chosen": chosen, "how": f"{a.validation_models} student(s) of the sets' test protocol "
                      "each, the same seeds, on the validation split (split seed 0)", "seconds": round(time.perf_counter() - t0, 1), "versions": versions()}
            a.out.with_suffix(".validation.json").write_text(json.dumps(record, indent=1) + "\n")
    except UserError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
