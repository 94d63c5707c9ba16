"""A markdown table of finished runs with the code that made each (for docs/results.md).

Usage:
    python benchmarks/runs_table.py RUN_DIR [RUN_DIR ...]

One row per run directory: target (and source), N, method, seed, device, test accuracy
(mean ± std over the test models), T, resets, the selected epoch, numerics version, commit
(and dirty flag), validation models per snapshot, and the resumes the run went through.
Only runs with a ``result.json`` are listed; the others are named as unfinished. A record in records/ is a
run directory too.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def row(run: Path) -> str | None:
    if not (run / "result.json").exists():
        return None
    res = json.loads((run / "result.json").read_text())
    cfg = json.loads((run / "config.json").read_text())
    v = cfg.get("versions", {})
    c = cfg["config"]
    commit = (v.get("git_commit") or "no git")[:7] + (" (dirty)" if v.get("git_dirty") else "")
    setting = (f"{c['source']} → " if c.get("source") else "") + f"{res['target']}-{res['base']}"
    method = {"second-order": "LD", "ridge": "LD RR"}.get(res["method"], res["method"])
    learn = c.get("learn", "labels")
    if learn == "images":  # the paper's "our DD": images from noise, fixed one-hot labels
        method = {"LD": "our DD", "LD RR": "our DD RR"}.get(method, method) + f" (images from {c.get('image_init')}"
        method += "" if c.get("image_lr", 1e-3) == 1e-3 else f", image lr {c['image_lr']:g}"
        method += ")"
    elif learn != "labels":
        method += f", {learn} ({c.get('image_init')} start, image lr {c.get('image_lr', 1e-3):g})"
    machine = cfg.get("device", "?") + "".join(f" → {r['device']}" for r in cfg.get("resumes", []))
    # DD and SLDD (distill/unrolled) have no resets and no selected epoch: their rows show "-" there.
    return (f"| {setting} | {method} | {res['seed']} | {c.get('validation_models', 1)} | {machine} | "
            f"**{res['accuracy_mean']:.2f} ± {res['accuracy_std']:.2f}** | {res['T']} | {res.get('resets', '-')} | {res.get('selected_epoch', '-')} | "
            f"{v.get('numerics_version', '-')} | `{commit}` | {res['distill_seconds'] / 60:.1f} | `{run.name}` |")


def main() -> None:
    print("| setting | method | seed | validation models | machine | test accuracy | T | resets | selected epoch | numerics | commit | loop minutes | run |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    unfinished = []
    for arg in sys.argv[1:]:
        r = row(Path(arg))
        if r is None:
            unfinished.append(arg)
        else:
            print(r)
    if unfinished:
        print(f"\nUnfinished: {', '.join(unfinished)}")


if __name__ == "__main__":
    main()
