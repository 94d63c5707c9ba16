"""Does a code change move results? Short runs of the same configurations on two source trees, compared bit for bit.

Usage:
    git worktree add ../old <commit>
    python benchmarks/numerics_check.py --other ../old/src --data-root ../shared/data [--json]

The numerics-version rule (docs/design-notes.md) says: bump ``NUMERICS_VERSION`` for any change
that can move a result. This script is the evidence either way for the configurations it runs
(each a few epochs of a real run, one thread, on the CPU): for each, the distilled labels, T and
the test accuracies (2 models) of this checkout and of ``--other`` must be equal
bit for bit. It runs each configuration in a fresh process with ``PYTHONPATH`` set to the tree.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE_SRC = Path(__file__).resolve().parents[1] / "src"

# name -> distill flags (short versions of the runs the docs report)
CONFIGS = {
    "mnist-ldrr-100": ["--target", "mnist", "--base", "100", "--method", "ridge", "--epochs", "2"],
    "mnist-ld-100": ["--target", "mnist", "--base", "100", "--method", "second-order", "--epochs", "1"],
    "mnist-kmnist-ldrr-100": ["--source", "mnist", "--target", "kmnist", "--base", "100", "--method", "ridge", "--epochs", "2"],
    "mnist-kmnist-ld-100": ["--source", "mnist", "--target", "kmnist", "--base", "100", "--method", "second-order", "--epochs", "1"],
}
COMMON = ["--val-every", "1", "--test-models", "2", "--device", "cpu", "--no-progress", "--json"]

PROBE = """
import json, sys, torch
from labeldistill import load
ds = load(sys.argv[1])
print(json.dumps({"labels": ds.labels.double().flatten().tolist(), "T": ds.steps}))
"""


def run(src: Path, name: str, flags: list[str], data_root: str, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "labeldistill", "distill", *flags, *COMMON, "--seed", "0", "--data-root", data_root, "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} on {src}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    probe = subprocess.run([sys.executable, "-c", PROBE, str(out)], env=env, capture_output=True, text=True, check=True)
    return {**json.loads(probe.stdout), "accuracies": result["accuracies"], "selected_epoch": result["selected_epoch"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--other", required=True, type=Path, help="the other source tree (its src/ folder)")
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--only", nargs="+", default=list(CONFIGS))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    data_root = str(Path(args.data_root).absolute())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            a = run(HERE_SRC, name, CONFIGS[name], data_root, Path(tmp) / f"{name}-here")
            b = run(args.other.resolve(), name, CONFIGS[name], data_root, Path(tmp) / f"{name}-other")
            diff = max((abs(x - y) for x, y in zip(a["labels"], b["labels"])), default=0.0)
            same = a == b
            rows.append({"config": name, "identical": same, "max_label_difference": diff, "T": [a["T"], b["T"]],
                         "accuracies": [a["accuracies"], b["accuracies"]]})
            print(f"{name:<24} {'IDENTICAL' if same else 'DIFFERENT'}  max label difference {diff:.3g}  T {a['T']} / {b['T']}  "
                  f"test {a['accuracies']} / {b['accuracies']}", flush=True)
    if args.json:
        print(json.dumps({"other": str(args.other), "rows": rows}))
    if not all(r["identical"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
