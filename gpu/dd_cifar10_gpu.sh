#!/usr/bin/env bash
# Issue 16's GPU deliverable, as one prepared script for a loan (nothing is left for it since session 41: DD finished
# on CPUs in session 36, SLDD in session 41; each runs here only from a parked run, or anew with DD=1 / SLDD=1):
# original DD on CIFAR-10 (100 images = 10 steps x 10 classes, 30 unrolled AlexCifarNet steps, 400 outer epochs =
# 17,600 outer iterations; paper's rerun 35.20 ± 1.09),
# tested on 200 fresh AlexCifarNets and, from the same run, on 200 LeNets (Table 15: `reproduce 15`); then SLDD on
# CIFAR-10 (Table 1's cell, paper 39.8 ± 0.8) with whatever time is left. Both runs checkpoint and resume: stopped at
# the deadline (SIGINT), the same command in a later call of the same loan (the machine still warm, the same WORK_DIR)
# goes on where they stopped. What finished is packed into RESULTS_DIR/dd_cifar10.tgz (small files only).
#
# The data do not fit one call (the checkout and its carried paths: 64 MiB; CIFAR-10's training file is 117 MB), so
# they travel in parts over consecutive calls, while the machine stays warm (30 s after a call). Here:
#   python gpu/npz_parts.py split ../shared/data/cifar10_train.npz .devdata --parts 4   # p1..p4: 28-31 MB each (LZMA)
#   mkdir -p .devdata/p5 && cp ../shared/data/cifar10_test.npz .devdata/p5/                     # 23.5 MB
#   python records/archive.py restore cifar10-dd-100-s0 .devdata/p5/dd_run                       # the parked run, 4.5 MB
#   python records/archive.py restore cifar10-sldd-100-s0 .devdata/p6/sldd_run                   # the parked SLDD run, 4.5 MB
#   rm -r records/runs records/in-progress   (they would not leave room; git checkout records restores them)
# then three `run` calls in a row (session 26 did exactly this, the first call doing device_checks.sh's stages with the
# MNIST files beside p1): carry [".devdata/p1", ".devdata/p6"], command "true";  carry [".devdata/p2", ".devdata/p3"], command "true";
#   carry [".devdata/p4", ".devdata/p5"], command "DEADLINE=... WORK_DIR=/tmp/dd bash gpu/dd_cifar10_gpu.sh .devdata $OUT";
#   and, if the budget allows, the same command again (no carry needed: the data and /tmp/dd are still there).
# Speed: eager, an outer iteration took 0.31 s on an H200 (session 26: 1,460 of 17,600 in 450 s, host-bound); the
# trainer now replays each one as a CUDA graph (UnrolledDistiller(cuda_graph=True)), not yet timed on a GPU. The
# log says how far a call got (outer iteration / 17,600).
# Rehearsal on a CPU (tiny, nothing measured): DEVICE=cpu T_DD=60 T_SLDD=30 DEADLINE=150 bash gpu/dd_cifar10_gpu.sh DIR OUT
set -u
D=$(cd "$1" && pwd)
R=$(mkdir -p "$2" && cd "$2" && pwd)
DEV=${DEVICE:-cuda}
DEADLINE=${DEADLINE:-575}  # seconds after the start by which everything has stopped and been packed
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
START=$SECONDS
W=${WORK_DIR:-$(mktemp -d)}; mkdir -p "$W/data"
stamp() { echo "[$(( SECONDS - START )) s] $*" | tee -a "$W/session.log"; }
left() { local l=$(( DEADLINE - 25 - (SECONDS - START) )); [ $l -lt 1 ] && l=1; echo $l; }  # 25 s for stopping and packing
cap() { local l; l=$(left); [ "$1" -lt "$l" ] && l=$1; echo "$l"; }
pack() {  # small files only (a file comes back from $OUT only under 16 MiB): checkpoints and the data stay behind
  (cd "$W" && find . -type f -size +4096k > skipped.txt; find . -type f -size -4097k ! -name '*.tmp' ! -path './data/*' \
     | tar czf "$R/dd_cifar10.tgz.tmp" -T -) && mv "$R/dd_cifar10.tgz.tmp" "$R/dd_cifar10.tgz" && cp "$W/session.log" "$R/session.log"
}
progress() { grep -h '"outer"\|"iteration"' "$1"/runs/*/metrics.jsonl 2>/dev/null | tail -n 1 | cut -c1-160; }

. gpu/cifar10_parts.sh
[ -f "$W/data/cifar10_train.npz" ] || cifar10_into "$D" "$W/data" || exit 1  # a later call of the loan has them already
{ nvidia-smi 2>/dev/null; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no gpu')"; } > "$W/machine.txt" 2>&1
stamp "machine: $(tail -n 1 "$W/machine.txt")"

# A DD run parked by an earlier loan (records/in-progress/cifar10-dd-100-s0, restored into DATA_DIR/p5/dd_run by
# `python records/archive.py restore cifar10-dd-100-s0 .devdata/p5/dd_run`) goes on where it stopped.
if [ -f "$D/p5/dd_run/checkpoint.safetensors" ] && [ ! -d "$W/t15/runs/cifar10_dd_100" ]; then
  mkdir -p "$W/t15/runs" && cp -r "$D/p5/dd_run" "$W/t15/runs/cifar10_dd_100" && stamp "resuming the carried DD run: $(progress "$W/t15")"
fi
# Table 15: the DD run (AlexCifarNet) and its LeNet test; resumes the run directory when a previous call stopped it.
# Only with a parked DD run carried, or DD=1: the CIFAR-10 DD run finished on CPUs in session 36
# (records/runs/cifar10-dd-100-s0), and without a parked run reproduce 15 would start a new one from scratch.
if [ -d "$W/t15/runs/cifar10_dd_100" ] || [ "${DD:-0}" = 1 ]; then
  timeout -s INT -k 20 "$(cap "${T_DD:-540}")" $PY -m labeldistill reproduce 15 --data-root "$W/data" --device "$DEV" \
    --out "$W/t15" --json >> "$W/t15.log" 2>&1
  stamp "reproduce 15 (DD, CIFAR-10): rc=$? $(progress "$W/t15")"; pack
else
  stamp "no parked DD run carried: DD skipped (DD=1 runs it from the start)"
fi

# SLDD, Table 1's cell, with the time left (resumable the same way). A parked SLDD run (records/in-progress/
# cifar10-sldd-100-s0, CPU lanes since session 27; prepare_loan.sh restores it into DATA_DIR/p6/sldd_run) goes on.
if [ -f "$D/p6/sldd_run/checkpoint.safetensors" ] && [ ! -d "$W/t1/runs/cifar10_sldd_100" ]; then
  mkdir -p "$W/t1/runs" && cp -r "$D/p6/sldd_run" "$W/t1/runs/cifar10_sldd_100" && stamp "resuming the carried SLDD run: $(progress "$W/t1")"
fi
# Only with a parked SLDD run carried, or SLDD=1: the CIFAR-10 SLDD run finished on CPUs in session 41
# (records/runs/cifar10-sldd-100-s0), and without a parked run reproduce 1 would start a new one from scratch.
if [ ! -d "$W/t1/runs/cifar10_sldd_100" ] && [ "${SLDD:-0}" != 1 ]; then
  stamp "no parked SLDD run carried: SLDD skipped (SLDD=1 runs it from the start)"
elif [ "$(left)" -gt 30 ]; then
  timeout -s INT -k 20 "$(cap "${T_SLDD:-540}")" $PY -m labeldistill reproduce 1 --only cifar10/sldd/100 --data-root "$W/data" \
    --device "$DEV" --out "$W/t1" --json >> "$W/t1.log" 2>&1
  stamp "reproduce 1 cifar10/sldd/100: rc=$? $(progress "$W/t1")"
fi
pack; stamp "packed $(du -h "$R/dd_cifar10.tgz" | cut -f1); left behind: $(wc -l < "$W/skipped.txt") file(s) over 4 MiB"
cp "$W/session.log" "$R/session.log"
