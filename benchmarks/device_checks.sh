#!/usr/bin/env bash
# The GPU checks that wait for a loan, as one prepared script for one `run` call (about 9 minutes):
#   1. the tests marked gpu (CUDA-graph steps, labels and images, against eager ones; stacked runs vs alone);
#   2. stacks (issue 19): MNIST-100 LD RR and LD, seeds 0-7 stacked, full protocol, against seed 0 alone
#      (benchmarks/bench_stack.py; seed 0 alone kept as a run directory: the same-seed CPU/GPU pair of
#      issue 14 item 4, compared with results/runs/mnist-ldrr-100-s0 / mnist-ld-100-s0 made on the CPU);
#   3. Table 2's CIFAR-100 stand-in, LD RR, 100 base images (issue 14);
#   4. the image step's speed beside the label step's (issue 15).
# Every step has its own timeout; what finished is packed into RESULTS_DIR/device_checks.tgz.
#
# Usage (repository root; DATA_DIR holds mnist_train/test.npz and cifar100_test.npz):
#   bash benchmarks/device_checks.sh DATA_DIR RESULTS_DIR
# On a lent machine (the copy of the checkout, data included, must stay under 64 MiB: main holds the code alone,
# 3 MB, and the three files are 40 MB), prepare here, then one `run` call with carry [".devdata"] and timeout_s 600:
#   mkdir -p .devdata && cp ../shared/data/{mnist_train,mnist_test,cifar100_test}.npz .devdata/   (/.devdata/ is ignored)
#   rm -r records/in-progress   (a parked CPU checkpoint, up to 20 MB, would not leave room; git checkout records restores it)
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
export PYTHONPATH=$PWD/src:$PWD/benchmarks PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
START=$SECONDS
W=${WORK_DIR:-$(mktemp -d)}; mkdir -p "$W"
stamp() { echo "[$(( SECONDS - START )) s] $*" | tee -a "$W/session.log"; }

{ nvidia-smi 2>/dev/null; $PY -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no gpu', 'numpy', numpy.__version__)"; } > "$W/machine.txt" 2>&1
stamp "machine: $(tail -n 1 "$W/machine.txt")"

if [ "$DEV" != cpu ]; then
  timeout 120 $PY -m pytest -q -p no:cacheprovider -m gpu tests > "$W/pytest_gpu.log" 2>&1
  stamp "pytest -m gpu: rc=$? ($(tail -n 1 "$W/pytest_gpu.log"))"
fi

timeout "${T_STACK:-330}" $PY benchmarks/bench_stack.py --data-root "$DR" --device "$DEV" --k "$K" --epochs "$EPOCHS" --alone one \
  --method ridge,second-order --keep "$W/alone" --out "$W/bench_stack.json" > "$W/bench_stack.log" 2>&1
stamp "bench_stack: rc=$? $(grep -c 'K=' "$W/bench_stack.log") measurement(s)"

timeout -s INT -k 15 "${T_T2:-150}" $PY -m labeldistill reproduce 2 --stand-in --only cifar100/ld-rr/100 $QUICK --data-root "$DR" \
  --device "$DEV" --out "$W/reproduce" > "$W/t2_cifar100.log" 2>&1
stamp "reproduce 2 cifar100/ld-rr/100: rc=$?"

timeout "${T_IMG:-60}" $PY benchmarks/bench_image_step.py --data-root "$DR" --device "$DEV" > "$W/bench_image_step.log" 2>&1
stamp "bench_image_step: rc=$?"

# Small files only: configs, results, metrics, distilled sets, logs. A file comes back from $OUT only under 16 MiB,
# so anything over 4 MiB stays behind (checkpoints, a ZCA cache: 38 MB for CIFAR), and the list says what did.
(cd "$W" && find . -type f -size +4096k > skipped.txt; find . -type f -size -4097k ! -name '*.tmp' | tar czf "$R/device_checks.tgz" -T -) \
  && stamp "packed $(du -h "$R/device_checks.tgz" | cut -f1); left behind: $(wc -l < "$W/skipped.txt") file(s) over 4 MiB"
cp "$W/session.log" "$R/session.log"
