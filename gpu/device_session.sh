#!/usr/bin/env bash
# One GPU session, as run on 2026-11-27 (docs/benchmarks.md, docs/results.md): the tests
# marked gpu, the benchmark, the full MNIST-100 protocol of each method timed alone, then
# the remaining acceptance runs side by side until a deadline. Unfinished runs are stopped
# with SIGINT (they write a checkpoint and can be resumed anywhere with --resume).
#
# Usage (repository root, data files in DATA_DIR as <name>_train.npz / <name>_test.npz):
#   DEADLINE=520 bash gpu/device_session.sh DATA_DIR RESULTS_DIR
set -u
DR=$(cd "$1" && pwd)
R=$(mkdir -p "$2" && cd "$2" && pwd)
DEADLINE=${DEADLINE:-520}  # seconds after the start by which every run is stopped
DEV=${DEVICE:-cuda}  # cpu only to rehearse the script
START=$SECONDS
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
PY=${PYTHON:-python3}
LD="$PY -m labeldistill"
RP=$R/reproduce  # reproduce's output folder (runs/, cells/, tables)
mkdir -p "$R/logs" "$R/runs" "$RP"
left() { local l=$(( DEADLINE - (SECONDS - START) )); [ $l -lt 1 ] && l=1; echo $l; }  # (timeout 0 would mean none)
stamp() { echo "[$(( SECONDS - START )) s] $*" | tee -a "$R/logs/session.log"; }

{ nvidia-smi; $PY -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(), 'numpy', numpy.__version__)"; } > "$R/logs/machine.txt" 2>&1
stamp "machine: $(tail -1 "$R/logs/machine.txt")"

# 1. Tests that need a GPU (the CUDA-graph step against the eager one), then the whole suite's GPU-relevant files.
timeout 150 $PY -m pytest -q -p no:cacheprovider -m gpu tests > "$R/logs/pytest_gpu.log" 2>&1
rc=$?
stamp "pytest -m gpu: rc=$rc ($(tail -1 "$R/logs/pytest_gpu.log"))"
if [ $rc -ne 0 ] && [ -n "${OUT:-}" ]; then  # (only in the device machine's disposable copy of the tree)
  # Correctness first: without a passing graph test, every run below uses eager steps.
  sed -i 's/cuda_graph: bool = True/cuda_graph: bool = False/' src/labeldistill/distill/config.py
  stamp "CUDA graphs disabled for this session"
fi

# 2. The benchmark (alone on the machine).
timeout "${T_BENCH:-200}" $PY benchmarks/bench_protocol.py --data-root "$DR" --device "$DEV" --json > "$R/logs/bench.log" 2>&1
stamp "benchmark: rc=$?"

# 3. The full MNIST-100 protocol of each method, alone, timed end to end.
full() {  # name, then distill arguments
  local name=$1; shift
  timeout -s INT -k 15 "$(left)" $LD distill --target mnist --data-root "$DR" --device "$DEV" --out "$R/runs/$name" --json "$@" \
    > "$R/logs/$name.log" 2>&1
  stamp "$name: rc=$? $(grep -o '"accuracy_mean": [0-9.]*' "$R/runs/$name/result.json" 2>/dev/null) $(grep -o '"seconds": [0-9.]*' "$R/runs/$name/result.json" 2>/dev/null | head -1)"
}
full mnist-ldrr-100-s0 --base 100 --method ridge --seed 0
timeout -s INT -k 15 "$(left)" $LD reproduce 1 --only mnist/ld/100 --data-root "$DR" --device "$DEV" --out "$RP" > "$R/logs/repro_mnist_ld_100.log" 2>&1
stamp "reproduce mnist/ld/100: rc=$? $(grep -o '"seconds": [0-9.]*' "$RP/runs/mnist_ld_100/result.json" 2>/dev/null | head -1)"

# 4. Everything else side by side until the deadline.
bg() {  # log name, then a command
  local name=$1; shift
  ( timeout -s INT -k 15 "$(left)" "$@" > "$R/logs/$name.log" 2>&1; echo "$name rc=$?" >> "$R/logs/session.log" ) &
}
bg repro_cifar10_ld_100 $LD reproduce 1 --only cifar10/ld/100 --data-root "$DR" --device "$DEV" --out "$RP"
bg repro_cifar10_baseline_100 $LD reproduce 1 --only cifar10/baseline/100 --data-root "$DR" --device "$DEV" --out "$RP"
bg repro_mnist_ld_10 $LD reproduce 1 --only mnist/ld/10 --data-root "$DR" --device "$DEV" --out "$RP"
bg repro_mnist_baselines_10 $LD reproduce 1 --only mnist/baseline/10 mnist/baseline-ls/10 --data-root "$DR" --device "$DEV" --out "$RP"
for s in 1 2; do
  bg mnist-ld-100-s$s $LD distill --target mnist --base 100 --method second-order --seed $s --data-root "$DR" --device "$DEV" --out "$R/runs/mnist-ld-100-s$s" --json
  bg mnist-ld-10-s$s $LD distill --target mnist --base 10 --method second-order --seed $s --data-root "$DR" --device "$DEV" --out "$R/runs/mnist-ld-10-s$s" --json
  bg mnist-ldrr-100-s$s $LD distill --target mnist --base 100 --method ridge --seed $s --data-root "$DR" --device "$DEV" --out "$R/runs/mnist-ldrr-100-s$s" --json
done
# Table 1's MNIST rows, reduced protocol (baselines shared with full-protocol runs are left to those runs).
quick() { local n=$1; shift; bg "quick_$n" $LD reproduce 1 --quick --only "$@" --data-root "$DR" --device "$DEV" --out "$RP"; }
quick 10 mnist/ld/10 mnist/ld-rr/10 mnist/baseline-rr/10 mnist/baseline-rr-ls/10
quick 100 mnist/ld/100 mnist/ld-rr/100 mnist/baseline-rr-ls/100
for n in 20 50 200 500; do
  quick $n mnist/ld/$n mnist/ld-rr/$n mnist/baseline/$n mnist/baseline-ls/$n mnist/baseline-rr/$n mnist/baseline-rr-ls/$n
done
wait
stamp "all done"
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv >> "$R/logs/machine.txt" 2>&1
