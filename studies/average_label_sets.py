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
Measured results: docs/results.md (session 47).
"""
from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="+", help="run directories or distilled-set files, on the same images")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--validate", metavar="TARGET", help="also score each set and the mean on TARGET's validation split")
    ap.add_argument("--validation-models", type=int, default=1, help="students per set on the validation split (1)")
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    if len(a.sets) < 2:
        raise SystemExit("error: give two or more sets to average")
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
            scores = validate([*parts, out], [*names, str(a.out)], a.validate, data_root=a.data_root, device=a.device,
                              models=a.validation_models, ledger=a.out.with_suffix(".ledger"))
            record = {"validation_accuracy": scores, "how": f"{a.validation_models} student(s) of the sets' test protocol "
                      "each, the same seeds, on the validation split (split seed 0)", "seconds": round(time.perf_counter() - t0, 1), "versions": versions()}
            a.out.with_suffix(".validation.json").write_text(json.dumps(record, indent=1) + "\n")
    except UserError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
