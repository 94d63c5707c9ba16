#!/usr/bin/env bash
# Lay out .devdata/ for a GPU loan of three calls (docs/benchmarks.md, "The next loans"), idempotently, and print the
# calls. A call carries the checkout (about 3 MB without records/) and the paths it names, at most 64 MiB in all; the
# machine keeps what earlier calls carried while it stays warm (30 s after a call), so the data travel in parts.
# The default (session 32): the loan goes to issue 18's CIFAR-10 field table, the issue's GPU deliverable (since
# session 34 the CPU makes its rows too, in resumable parts over sessions; a loan makes them in minutes):
#   call 1: p1 + p2 -> true;  call 2: p3 + p4 -> true;  call 3: p5 (test file, kornia's wheels) -> field_cifar10_gpu.sh
# With --dd-only the whole loan goes to the unrolled runs: since session 41 none is left (DD finished on CPUs in
# session 36, SLDD in session 41), so only a rerun uses it (DD=1 / SLDD=1 in the command start them anew; about
# 14,000 kernels an outer iteration, so some tens of ms each even as a graph: a run may need most of a loan):
#   call 1: p1 + p2 -> true;  call 2: p3 + p4 -> true;  call 3: p5 + p6 -> dd_cifar10_gpu.sh
# With --checks, the order of sessions 24-31 (issue 19's device checks, since resolved, then DD):
#   call 1: MNIST's two files + p1 + p6 (the parked SLDD run; 49 MB with the code)  -> device_checks.sh
#   call 2: p2 + p3 (63 MB)                                -> true
#   call 3: p4 + p5 (test file, the parked DD run; 60 MB)  -> dd_cifar10_gpu.sh (issue 16)
# Usage (repository root): bash gpu/prepare_loan.sh [--dd-only | --checks] [SHARED_DATA_DIR]   (default ../shared/data)
set -eu
MODE=field
case "${1:-}" in --dd-only) MODE=dd; shift ;; --checks) MODE=checks; shift ;; esac
S=${1:-../shared/data}
PY=${PYTHON:-python3}
mkdir -p .devdata
for f in mnist_train mnist_test; do [ -f ".devdata/$f.npz" ] || cp "$S/$f.npz" .devdata/; done
if [ ! -f .devdata/p4/cifar10_train.part4.npz ]; then
  rm -rf .devdata/p1 .devdata/p2 .devdata/p3 .devdata/p4
  $PY gpu/npz_parts.py split "$S/cifar10_train.npz" .devdata --parts 4
fi
mkdir -p .devdata/p5
[ -f .devdata/p5/cifar10_test.npz ] || cp "$S/cifar10_test.npz" .devdata/p5/
if [ -d records/in-progress/cifar10-dd-100-s0 ]; then  # always the parked run as it is now (4.5 MB)
  rm -rf .devdata/p5/dd_run && $PY records/archive.py restore cifar10-dd-100-s0 .devdata/p5/dd_run
fi
if [ -d records/in-progress/cifar10-sldd-100-s0 ]; then  # the parked SLDD run (session 27's CPU lanes), 4.5 MB
  rm -rf .devdata/p6 && mkdir -p .devdata/p6 && $PY records/archive.py restore cifar10-sldd-100-s0 .devdata/p6/sldd_run
fi
if [ $MODE = field ] && ! ls .devdata/p5/whl/kornia-*.whl > /dev/null 2>&1; then  # the GPU machine reaches no network
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .devdata/p5/whl kornia==0.9.0 kornia_rs==0.2.0
fi
du -sh .devdata/mnist_*.npz .devdata/p*
echo "Now move the run records out of the working tree (they would not leave room): rm -r records/runs records/in-progress"
echo "(git checkout records brings them back after the loan), then, with no pause between the calls:"
case $MODE in
field) cat <<'EOF'
  1. carry [".devdata/p1", ".devdata/p2"]: true
  2. carry [".devdata/p3", ".devdata/p4"]: true
  3. carry [".devdata/p5"], timeout_s = what is left (at most 600):
     WORK_DIR=/tmp/field bash gpu/field_cifar10_gpu.sh .devdata $OUT
  4. only if status says 4+ minutes are left: carry [".devdata/p5"], timeout_s = what is left - 30:
     WORK_DIR=/tmp/field bash gpu/field_cifar10_gpu.sh .devdata $OUT
     (the same rows go on where call 3 stopped: their checkpoints, teacher and ledgers stay in WORK_DIR; or, for
     sets made here at seeds 1-2 with ROWS=... SEEDS=1,2: ROWS="" QIN=<(that - 60) / 2>, Qin et al.'s own evaluation)
EOF
;;
dd) cat <<'EOF'
  1. carry [".devdata/p1", ".devdata/p2"]: true
  2. carry [".devdata/p3", ".devdata/p4"]: true
  3. carry [".devdata/p5", ".devdata/p6"], timeout_s = what is left (at most 600; if time is left after it, the same command again):
     DEADLINE=... WORK_DIR=/tmp/dd bash gpu/dd_cifar10_gpu.sh .devdata $OUT
EOF
;;
checks) cat <<'EOF'
  1. carry [".devdata/mnist_train.npz", ".devdata/mnist_test.npz", ".devdata/p1", ".devdata/p6"], timeout_s <= 600:
     STAGES="tests grouped_conv profile_batched batched_ridge" DEADLINE=... WORK_DIR=/tmp/dc bash gpu/device_checks.sh .devdata $OUT
  2. carry [".devdata/p2", ".devdata/p3"]: true
  3. carry [".devdata/p4", ".devdata/p5"], timeout_s = what is left:
     DEADLINE=... WORK_DIR=/tmp/dd bash gpu/dd_cifar10_gpu.sh .devdata $OUT
EOF
;;
esac
