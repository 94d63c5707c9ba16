# Sourced by the CIFAR-10 loan scripts (field_cifar10_gpu.sh, dd_cifar10_gpu.sh): CIFAR-10's two files into a folder,
# from the parts that travelled over several calls (gpu/npz_parts.py: p1/, p2/ the training file in LZMA parts,
# the test file whole in one more p<i>/), or, in a rehearsal, from the files as they are.
# Usage: cifar10_into DATA_DIR DEST_DIR   (PY: the Python to run; returns non-zero when a join fails its check)
cifar10_into() {
  local d=$1 dest=$2
  mkdir -p "$dest"
  if [ -f "$d/p1/cifar10_train.manifest.json" ]; then
    ${PY:-python3} gpu/npz_parts.py join "$d" cifar10_train "$dest/cifar10_train.npz" || return 1
    cp "$d"/p*/cifar10_test.npz "$dest/"  # the test file travels whole, in whichever part folder had room
  else
    cp "$d"/cifar10_t*.npz "$dest/"
  fi
}
