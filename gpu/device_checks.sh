#!/usr/bin/env bash
# The GPU checks that wait for a loan, as one prepared script for one `run` call (timeout_s 600; it ends by DEADLINE,
# 560 s after its start, packing included). Issue 19 (many runs at once), in order of what matters most:
#   tests: the tests marked gpu (CUDA-graph steps, labels and images, against eager ones; stacked runs vs alone, by
#      default within 1e-6 and bit for bit in deterministic mode; a stack of 12; batched stacks against lockstep; DD's
#      outer iterations as a CUDA graph against eager ones);
#   grouped_conv: LeNet's convolutions for K runs in the forms a batched step can take (bench_grouped_conv.py: vmap's
#      grouped convolution, the same in channels-last, K separate ones), with and without cudnn.benchmark (seconds);
#   profile_batched: what a batched round of K runs costs on the card against one run's step (profile_stack.py
#      --batched): wall, host and kernel time per round, kernels per round, the top kernels, whether the step replays
#      as a captured graph; then again with cudnn.benchmark;
#   batched_ridge: MNIST-100 LD RR, seeds 0-7 as one batched step per round (one kernel per layer for all K runs), full
#      protocol, against seed 0 alone (benchmarks/bench_stack.py), validation and test seconds inside;
#   batched_so: the same for MNIST-100 LD (second order);
#   lockstep: the LD RR stack in lockstep (a stream per run; validations and tests of all runs together);
#   profile: what bounds a stack's loop in lockstep (profile_stack.py);
#   deterministic: the cost of deterministic mode: LD RR seed 0, full protocol, twice alone with --deterministic (the
#      same labels bit for bit is the check; the wall time against a run alone is the cost).
# Each stage has its own limit within the deadline; what finished is packed into RESULTS_DIR/device_checks.tgz after
# every stage (a stage that outlives the call must not take the earlier ones with it).
#
# Usage (repository root; DATA_DIR holds mnist_train.npz and mnist_test.npz):
#   bash gpu/device_checks.sh DATA_DIR RESULTS_DIR
# On a lent machine: prepare here (the checkout with its run records, about 37 MB, and the two files, 11.5 MB, stay
# under the 64 MiB a call carries), then one `run` call with carry [".devdata"] and timeout_s 600:
#   mkdir -p .devdata && cp ../shared/data/{mnist_train,mnist_test}.npz .devdata/   (/.devdata/ is ignored)
#   WORK_DIR=/tmp/dc bash gpu/device_checks.sh .devdata $OUT
# RESULTS_DIR gets session.log and device_checks.tgz only (what comes back from $OUT is at most 8 files).
# STAGES picks stages by name (default all, in this order): tests grouped_conv profile_batched batched_ridge batched_so lockstep
# profile deterministic; e.g. STAGES="tests profile_batched batched_ridge" when a loan must leave time for other work.
# Session 26's loan ran "tests batched_ridge batched_so": the batched stack of 8 did not finish within 146 s (the run
# alone: 43 s), so profile_batched (what a batched round costs on the card: kernels, busy time, host time) goes first.
# Rehearsal on a CPU (tiny settings, nothing measured): DEVICE=cpu EPOCHS=1 K=2 ROUNDS=3 bash gpu/device_checks.sh ...
set -u
DR=$(cd "$1" && pwd)
R=$(mkdir -p "$2" && cd "$2" && pwd)
DEV=${DEVICE:-cuda}
EPOCHS=${EPOCHS:-0}  # 0: the paper's epochs (full protocol)
K=${K:-8}
STAGES=" ${STAGES:-tests grouped_conv profile_batched batched_ridge batched_so lockstep profile deterministic} "
DEADLINE=${DEADLINE:-560}  # seconds after the start by which everything has stopped and been packed
# Every timeout has -k: SIGTERM only asks a run to checkpoint and stop (runs/interrupt.py), and a process stuck in a
# failed CUDA call never gets there (2026-12-04: a stack that hit an illegal memory access held the call to its limit).
export PYTHONPATH=$PWD/src:$PWD/benchmarks PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
START=$SECONDS
W=${WORK_DIR:-$(mktemp -d)}; mkdir -p "$W"
want() { [[ "$STAGES" == *" $1 "* ]]; }
stamp() { echo "[$(( SECONDS - START )) s] $*" | tee -a "$W/session.log"; }
left() { local l=$(( DEADLINE - 15 - (SECONDS - START) )); [ $l -lt 1 ] && l=1; echo $l; }  # 15 s kept for packing
cap() { local l; l=$(left); [ "$1" -lt "$l" ] && l=$1; echo "$l"; }  # a stage's own limit, within the deadline
# Small files only (a file comes back from $OUT only under 16 MiB): anything over 4 MiB stays behind, listed.
pack() {
  (cd "$W" && find . -type f -size +4096k > skipped.txt; find . -type f -size -4097k ! -name '*.tmp' | tar czf "$R/device_checks.tgz.tmp" -T -) \
    && mv "$R/device_checks.tgz.tmp" "$R/device_checks.tgz" && cp "$W/session.log" "$R/session.log"
}
bench() {  # NAME LIMIT ARGS...: one bench_stack.py measurement
  local name=$1 limit=$2; shift 2
  timeout -k 10 "$(cap "$limit")" $PY benchmarks/bench_stack.py --data-root "$DR" --device "$DEV" --epochs "$EPOCHS" \
    --out "$W/$name.json" --progress "$@" > "$W/$name.log" 2>&1
  local rc=$?
  stamp "$name: rc=$rc $(grep -h 'K=' "$W/$name.log" | tail -n 1)"
  [ $rc = 0 ] || stamp "  cut short; its last progress: $(tr '\r' '\n' < "$W/$name.log" | grep -h 'step' | tail -n 1)"
  pack
}

{ nvidia-smi 2>/dev/null; $PY -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no gpu', 'numpy', numpy.__version__)"; } > "$W/machine.txt" 2>&1
stamp "machine: $(tail -n 1 "$W/machine.txt")"

if want tests && [ "$DEV" != cpu ]; then  # the files that hold tests marked gpu (collecting the whole suite would import extras)
  LABELDISTILL_TEST_DATA=$DR timeout -k 10 "$(cap 100)" $PY -m pytest -q -p no:cacheprovider -m gpu tests/test_distill_step.py tests/test_engine.py \
    tests/test_image_distillation.py tests/test_stack.py tests/test_batched.py tests/test_unrolled_resume.py > "$W/pytest_gpu.log" 2>&1
  stamp "pytest -m gpu: rc=$? ($(tail -n 1 "$W/pytest_gpu.log"))"; pack
fi

want grouped_conv && { timeout -k 10 "$(cap 40)" $PY benchmarks/bench_grouped_conv.py --device "$DEV" --k "$K" \
  --reps "${ROUNDS:-20}" --out "$W/grouped_conv.json" > "$W/grouped_conv.log" 2>&1
  stamp "grouped_conv: rc=$? $(grep -h '^conv' "$W/grouped_conv.log" | tr '\n' ' ')"; pack; }
# profile_batched: as the runs are (cudnn.benchmark off), then with cudnn.benchmark (the grouped convolutions' algorithms)
for cb in "" --cudnn-benchmark; do
  want profile_batched && { timeout -k 10 "$(cap 75)" $PY benchmarks/profile_stack.py --data-root "$DR" --device "$DEV" --k "1,$K" \
    --rounds "${ROUNDS:-60}" --batched $cb --out "$W/profile_batched$cb.json" > "$W/profile_batched$cb.log" 2>&1
    stamp "profile_batched $cb: rc=$? $(grep -h '^K=' "$W/profile_batched$cb.log" | tr '\n' ' ')"; pack; }
done
want batched_ridge && bench stack_ridge_batched 200 --k "$K" --alone one --method ridge --batched
want batched_so && bench stack_second_order_batched 200 --k "$K" --alone one --method second-order --batched --keep "$W/alone"
want lockstep && bench stack_ridge 220 --k "$K" --alone one --method ridge --keep "$W/alone"
want profile && { timeout -k 10 "$(cap 60)" $PY benchmarks/profile_stack.py --data-root "$DR" --device "$DEV" --k "1,$K" --rounds "${ROUNDS:-60}" \
  --out "$W/profile_stack.json" > "$W/profile_stack.log" 2>&1
stamp "profile_stack: rc=$? $(grep -h '^K=' "$W/profile_stack.log" | tr '\n' ' ')"; pack; }
want deterministic && bench deterministic_ridge 110 --k 1 --alone one --method ridge --deterministic

pack; stamp "packed $(du -h "$R/device_checks.tgz" | cut -f1); left behind: $(wc -l < "$W/skipped.txt") file(s) over 4 MiB"
cp "$W/session.log" "$R/session.log"
