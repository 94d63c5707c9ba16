#!/usr/bin/env bash
# The GPU checks that wait for a loan, as one prepared script for one `run` call (timeout_s 600; it ends by DEADLINE,
# 560 s after its start, packing included):
#   1. the tests marked gpu (CUDA-graph steps, labels and images, against eager ones; stacked runs vs alone), and
#      whether a GPU run is bit-reproducible alone and stacked (benchmarks/gpu_determinism.py, default and
#      deterministic mode), while Table 2's CIFAR-100 stand-in, LD RR, 100 base images (issue 14) starts beside them;
#   2. stacks (issue 19): MNIST-100 LD RR and LD, seeds 0-7 stacked, full protocol, against seed 0 alone
#      (benchmarks/bench_stack.py; seed 0 alone kept as a run directory: the same-seed CPU/GPU pair of issue 14,
#      compared with the CPU runs of seed 0). The stand-in is paused (SIGSTOP) meanwhile, so that the stack and the
#      run alone have the card to themselves (its own wall time then means nothing; its numbers do not move);
#   3. the stand-in resumes until the deadline; unfinished, it is stopped with SIGINT (a checkpoint; not brought back).
# What finished is packed into RESULTS_DIR/device_checks.tgz.
#
# Usage (repository root; DATA_DIR holds mnist_train/test.npz and cifar100_test.npz):
#   bash benchmarks/device_checks.sh DATA_DIR RESULTS_DIR
# On a lent machine (the copy of the checkout, data included, must stay under 64 MiB: the code is 3 MB, the three
# files 38 MB, the run records up to 46 MB), prepare here, then one `run` call with carry
# [".devdata"] and timeout_s 600:
#   mkdir -p .devdata && cp ../shared/data/{mnist_train,mnist_test,cifar100_test}.npz .devdata/   (/.devdata/ is ignored)
#   rm -r records/runs records/in-progress   (they would not leave room; git checkout records restores them)
#   bash benchmarks/device_checks.sh .devdata $OUT
# RESULTS_DIR gets session.log and device_checks.tgz only (what comes back from $OUT is at most 8 files); the work
# folder is WORK_DIR (default a fresh temporary folder).
# Rehearsal on a CPU (tiny settings, nothing measured): DEVICE=cpu EPOCHS=1 K=2 QUICK=1 bash benchmarks/device_checks.sh ...
set -u
DR=$(cd "$1" && pwd)
R=$(mkdir -p "$2" && cd "$2" && pwd)
DEV=${DEVICE:-cuda}
EPOCHS=${EPOCHS:-0}  # 0: the paper's epochs (full protocol)
K=${K:-8}
QUICK=${QUICK:+--quick}
DEADLINE=${DEADLINE:-560}  # seconds after the start by which everything has stopped and been packed
# Every timeout has -k: SIGTERM only asks a run to checkpoint and stop (runs/interrupt.py), and a process stuck in a
# failed CUDA call never gets there (2026-12-04: a stack that hit an illegal memory access held the call to its limit).
export PYTHONPATH=$PWD/src:$PWD/benchmarks PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
START=$SECONDS
W=${WORK_DIR:-$(mktemp -d)}; mkdir -p "$W"
stamp() { echo "[$(( SECONDS - START )) s] $*" | tee -a "$W/session.log"; }
left() { local l=$(( DEADLINE - 25 - (SECONDS - START) )); [ $l -lt 1 ] && l=1; echo $l; }  # 25 s kept for stopping and packing
cap() { local l; l=$(left); [ "$1" -lt "$l" ] && l=$1; echo "$l"; }  # a step's own limit, within the deadline
# Small files only: configs, results, metrics, distilled sets, logs. A file comes back from $OUT only under 16 MiB,
# so anything over 4 MiB stays behind (checkpoints, a ZCA cache: 38 MB for CIFAR), and the list says what did.
# Packed after every stage: a stage that outlives the call's limit must not take the earlier stages' files with it.
pack() {
  (cd "$W" && find . -type f -size +4096k > skipped.txt; find . -type f -size -4097k ! -name '*.tmp' | tar czf "$R/device_checks.tgz.tmp" -T -) \
    && mv "$R/device_checks.tgz.tmp" "$R/device_checks.tgz" && cp "$W/session.log" "$R/session.log"
}

{ nvidia-smi 2>/dev/null; $PY -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no gpu', 'numpy', numpy.__version__)"; } > "$W/machine.txt" 2>&1
stamp "machine: $(tail -n 1 "$W/machine.txt")"

# The stand-in in its own process group (setsid), so that it can be paused, resumed and stopped as a whole.
setsid $PY -m labeldistill reproduce 2 --stand-in --only cifar100/ld-rr/100 $QUICK --data-root "$DR" --device "$DEV" \
  --out "$W/reproduce" > "$W/t2_cifar100.log" 2>&1 &
T2=$!
finished() { ! kill -0 "$T2" 2>/dev/null; }
# (setsid makes the group only once it runs: wait for it, or a signal to the group would find none)
for _ in $(seq 50); do [ "$(ps -o pgid= -p "$T2" 2>/dev/null | tr -d ' ')" = "$T2" ] && break; finished && break; sleep 0.1; done
stamp "reproduce 2 cifar100/ld-rr/100 started (process group $(ps -o pgid= -p "$T2" | tr -d ' '))"

if [ "$DEV" != cpu ]; then  # the files that hold tests marked gpu (collecting the whole suite would import extras)
  LABELDISTILL_TEST_DATA=$DR timeout -k 10 "$(cap 100)" $PY -m pytest -q -p no:cacheprovider -m gpu tests/test_distill_step.py tests/test_engine.py \
    tests/test_image_distillation.py tests/test_stack.py > "$W/pytest_gpu.log" 2>&1
  stamp "pytest -m gpu: rc=$? ($(tail -n 1 "$W/pytest_gpu.log"))"; pack
fi

# Is a GPU run bit-reproducible, alone and stacked, by default and in deterministic mode? (the stack test's tolerance)
timeout -k 10 "$(cap 60)" $PY benchmarks/gpu_determinism.py --data-root "$DR" --device "$DEV" > "$W/gpu_determinism.log" 2>&1
stamp "gpu_determinism: rc=$? $(tail -n 1 "$W/gpu_determinism.log" | grep -o '"alone_twice_max_label_diff.*')"
CUBLAS_WORKSPACE_CONFIG=:4096:8 timeout -k 10 "$(cap 60)" $PY benchmarks/gpu_determinism.py --deterministic --data-root "$DR" \
  --device "$DEV" > "$W/gpu_determinism_det.log" 2>&1
stamp "gpu_determinism --deterministic: rc=$? $(tail -n 1 "$W/gpu_determinism_det.log" | grep -o '"alone_twice_max_label_diff.*')"; pack

finished || { kill -STOP -- -"$T2"; stamp "stand-in paused"; }
timeout -k 10 "$(cap 360)" $PY benchmarks/bench_stack.py --data-root "$DR" --device "$DEV" --k "$K" --epochs "$EPOCHS" --alone one \
  --method ridge,second-order --keep "$W/alone" --out "$W/bench_stack.json" > "$W/bench_stack.log" 2>&1
stamp "bench_stack: rc=$? $(grep -c 'K=' "$W/bench_stack.log") measurement(s)"; pack

if ! finished; then
  kill -CONT -- -"$T2"; stamp "stand-in resumed"
  while ! finished && [ "$(left)" -gt 1 ]; do sleep 1; done
  if ! finished; then
    kill -INT -- -"$T2"; stamp "stand-in stopped at the deadline (SIGINT)"
    for _ in $(seq 15); do finished && break; sleep 1; done
    finished || kill -KILL -- -"$T2"
  fi
fi
wait "$T2"; stamp "reproduce 2 cifar100/ld-rr/100: rc=$? ($(cat "$W"/reproduce/runs/*/metrics.jsonl 2>/dev/null | grep -c '"kind":"step"') loop steps logged, $(ls "$W"/reproduce/runs/*/result.json 2>/dev/null | wc -l) result)"

pack; stamp "packed $(du -h "$R/device_checks.tgz" | cut -f1); left behind: $(wc -l < "$W/skipped.txt") file(s) over 4 MiB"
cp "$W/session.log" "$R/session.log"
