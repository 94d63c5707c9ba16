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
# RESULTS_DIR/summary.json (wall times, each side's machine, commit, per-cell comparison); prints the summary.
# Set ORDER=local-first to run the local table first (the default is Ray first). SIDE=ray or SIDE=local runs one side
# only (the other's outputs, kept from an earlier call, are compared when present): the two sides may then run in
# different sessions, and summary.json's cell_seconds (each side's cells, summed) says whether the machine computed at
# the same speed in both, which is what makes their wall times comparable.
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

fresh() {  # a timed side starts from an empty folder: finished runs found there would be reused, not timed
  [ ! -e "$R/$1" ] || { echo "$R/$1 exists: remove it to time the $1 side again" >&2; exit 1; }
  # this machine as runs record it, and the day: sides run in different sessions must show one kind of machine
  $PY -c 'import datetime, json; from labeldistill.experiments.machine import describe_machine
print(json.dumps({**describe_machine("cpu"), "day": str(datetime.date.today())}))' > "$R/$1.machine.json"
}

run_ray() {
  fresh ray
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
  fresh local
  local t0=$(date +%s.%N)
  $PY -m labeldistill reproduce "$@" --executor local --device cpu --data-root "$DR" --out "$R/local" --json > "$R/local.log" 2>&1
  echo "$? $(echo "$(date +%s.%N) - $t0" | bc)" > "$R/local.time"
}

case "${SIDE:-both}" in
  ray) run_ray "$@" ;;
  local) run_local "$@" ;;
  both) if [ "${ORDER:-ray-first}" = local-first ]; then run_local "$@"; run_ray "$@"; else run_ray "$@"; run_local "$@"; fi ;;
  *) echo "SIDE must be ray, local or both" >&2; exit 2 ;;
esac

$PY - "$R" "$*" <<'EOF'
import json, subprocess, sys
from pathlib import Path
from labeldistill.experiments.machine import Machine, comparable
r, args = Path(sys.argv[1]), sys.argv[2]
def records(out):  # cell slug -> its stored record
    return {f.stem: json.loads(f.read_text()) for f in sorted((out / "cells").glob("*.json"))}
def numbers(rec):  # the numbers a cell reports (its stored result minus provenance and times)
    res = rec.get("result") or {}
    return {k: res.get(k) for k in ("accuracies", "accuracy_mean", "accuracy_std", "T", "T_list", "steps")}
summary = {"reproduce": args,  # each side's machine and code (the commits its cells name) are under its own key
           "summary_commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()}
recs = {}
for side in ("ray", "local"):
    if not (r / f"{side}.time").exists():
        continue
    rc, wall = (r / f"{side}.time").read_text().split()
    recs[side] = records(r / side)
    summary[side] = {"exit": int(rc), "wall_seconds": round(float(wall), 1), "cells": len(recs[side]),
                     # the cells' own run times summed: equal on both sides when the machine ran at one speed
                     "cell_seconds": round(sum(x.get("cell_seconds") or 0.0 for x in recs[side].values()), 1),
                     "machine": json.loads((r / f"{side}.machine.json").read_text()) if (r / f"{side}.machine.json").exists() else None,
                     "finished_at": max((x.get("finished_at") or "" for x in recs[side].values()), default=None),
                     "commits": sorted({f"{x.get('git_commit')}{' (dirty)' if x.get('git_dirty') else ''}" for x in recs[side].values()})}
if len(recs) == 2:
    a, b = recs["ray"], recs["local"]
    summary["same_cells"] = sorted(a) == sorted(b)
    summary["different_numbers"] = [k for k in a if k in b and numbers(a[k]) != numbers(b[k])]
    summary["speedup_local_over_ray"] = round(summary["local"]["wall_seconds"] / max(summary["ray"]["wall_seconds"], 1e-9), 2)
    summary["cell_seconds_ray_over_local"] = round(summary["ray"]["cell_seconds"] / max(summary["local"]["cell_seconds"], 1e-9), 3)
    # the rule by which Table 4 divides two runs' times (nothing assumed: a side without its record is not comparable)
    m = {side: summary[side]["machine"] or {} for side in recs}
    ok, why = comparable(*(Machine(device=x.get("device"), name=x.get("name"), platform=x.get("platform"), cpus=x.get("cpus"),
                                   capability=x.get("cpu_capability")) for x in (m["ray"], m["local"])))
    summary["same_machine"] = ok and not why
    summary["same_machine_why_not"] = why or None
(r / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary))
EOF
