#!/usr/bin/env bash
# Issue 19's Ray acceptance: one reproduce table on a local two-process Ray cluster (a head and a
# worker node on 127.0.0.1, one CPU each) beside the same table with --executor local (one process,
# one cell after another), from empty output folders; wall time of each and whether every cell's
# numbers are the same. One thread per cell in both (OMP_NUM_THREADS=1), as the executors pin it.
#
# Usage (repository root; nothing else running, or the wall times mean little):
#   bash benchmarks/ray_vs_local.sh DATA_ROOT RESULTS_DIR [reproduce arguments...]
#   bash benchmarks/ray_vs_local.sh /work/shared/data runs/ray-quick 1 --quick --only mnist   # the acceptance
#   bash benchmarks/ray_vs_local.sh /work/shared/data /tmp/ray-smoke 1 --quick --only mnist/baseline/10 mnist/baseline/20   # a rehearsal
# Writes RESULTS_DIR/{ray,local}/ (reproduce outputs), RESULTS_DIR/{ray,local}.log and
# RESULTS_DIR/summary.json (wall times, machine, commit, per-cell comparison); prints the summary.
# Set ORDER=local-first to run the local table first (the default is Ray first).
set -u
DR=$(cd "$1" && pwd)
R=$(mkdir -p "$2" && cd "$2" && pwd)
shift 2
export PYTHONPATH=$PWD/src OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 LABELDISTILL_DATA=$DR
export RAY_AUTH_MODE=disabled  # a loopback cluster of this machine only (Ray 2.5x+ asks for a token by default)
PY=${PYTHON:-python3}
PORT=${RAY_PORT:-6390}
RAY=$(dirname "$(command -v $PY)")/ray
[ -x "$RAY" ] || RAY=ray

run_ray() {
  $RAY stop --force > /dev/null 2>&1
  $RAY start --head --node-ip-address 127.0.0.1 --port "$PORT" --num-cpus 1 --include-dashboard false --disable-usage-stats > "$R/ray-start.log" 2>&1 || { cat "$R/ray-start.log"; exit 1; }
  $RAY start --address "127.0.0.1:$PORT" --node-ip-address 127.0.0.1 --num-cpus 1 --disable-usage-stats >> "$R/ray-start.log" 2>&1 || { cat "$R/ray-start.log"; exit 1; }
  local t0=$(date +%s.%N)
  $PY -m labeldistill reproduce "$@" --executor ray --address "127.0.0.1:$PORT" --device cpu --data-root "$DR" --out "$R/ray" --json > "$R/ray.log" 2>&1
  local rc=$?
  echo "$rc $(echo "$(date +%s.%N) - $t0" | bc)" > "$R/ray.time"
  $RAY stop --force > /dev/null 2>&1
}

run_local() {
  local t0=$(date +%s.%N)
  $PY -m labeldistill reproduce "$@" --executor local --device cpu --data-root "$DR" --out "$R/local" --json > "$R/local.log" 2>&1
  echo "$? $(echo "$(date +%s.%N) - $t0" | bc)" > "$R/local.time"
}

if [ "${ORDER:-ray-first}" = local-first ]; then run_local "$@"; run_ray "$@"; else run_ray "$@"; run_local "$@"; fi

$PY - "$R" "$*" <<'EOF'
import json, os, platform, subprocess, sys
from pathlib import Path
r, args = Path(sys.argv[1]), sys.argv[2]
def cells(out):  # cell slug -> the numbers a cell reports (its stored record minus provenance and times)
    found = {}
    for f in sorted((out / "cells").glob("*.json")):
        rec = json.loads(f.read_text())
        res = rec.get("result") or {}
        found[f.stem] = {k: res.get(k) for k in ("accuracies", "accuracy_mean", "accuracy_std", "T", "T_list", "steps")}
    return found
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine()) \
    if os.path.exists("/proc/cpuinfo") else platform.machine()
summary = {"reproduce": args, "machine": {"cpu": cpu, "cores": os.cpu_count()},
           "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()}
for side in ("ray", "local"):
    rc, wall = (r / f"{side}.time").read_text().split()
    summary[side] = {"exit": int(rc), "wall_seconds": round(float(wall), 1), "cells": len(cells(r / side))}
a, b = cells(r / "ray"), cells(r / "local")
summary["same_cells"] = sorted(a) == sorted(b)
summary["different_numbers"] = [k for k in a if k in b and a[k] != b[k]]
summary["speedup_local_over_ray"] = round(summary["local"]["wall_seconds"] / max(summary["ray"]["wall_seconds"], 1e-9), 2)
(r / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary))
EOF
