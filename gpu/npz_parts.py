"""Split a dataset file (npz: ``x`` uint8, ``y`` int64) into parts small enough to carry, and join them back, checked.

A GPU machine here takes at most 64 MiB with each call (the checkout and the carried paths together); CIFAR-10's
training file is 117 MB. Carried part by part in consecutive calls (the machine keeps what earlier calls left while
it stays warm), the parts are joined there into the original arrays, verified against the SHA-256 of the original's
``x`` and ``y`` recorded in the manifest.

    python gpu/npz_parts.py split ../shared/data/cifar10_train.npz .devdata --parts 2   # .devdata/p1/, p2/
    python gpu/npz_parts.py join .devdata cifar10_train .devdata/cifar10_train.npz     # there
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zipfile
from pathlib import Path

import numpy as np


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _savez_lzma(path: Path, **arrays: np.ndarray) -> None:
    """An npz that ``np.load`` reads, LZMA-compressed as our data files are (``np.savez_compressed``'s deflate makes
    CIFAR-10's images 21 % larger: two halves would no longer fit a call)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_LZMA) as z:
        for name, a in arrays.items():
            with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(a), allow_pickle=False)


def split(path: Path, out: Path, parts: int) -> list[Path]:
    """Part i (1-based) goes to ``out/p{i}/STEM.part{i}.npz`` (contiguous rows), the manifest into ``out/p1/``."""
    d = np.load(path)
    x, y = d["x"], d["y"]
    edges = np.linspace(0, len(y), parts + 1).astype(int)
    written = []
    for i in range(parts):
        folder = out / f"p{i + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        f = folder / f"{path.stem}.part{i + 1}.npz"
        _savez_lzma(f, x=x[edges[i]:edges[i + 1]], y=y[edges[i]:edges[i + 1]])
        written.append(f)
    manifest = {"name": path.stem, "parts": parts, "rows": len(y), "x_sha256": _digest(x), "y_sha256": _digest(y),
                "x_shape": list(x.shape), "x_dtype": str(x.dtype), "y_dtype": str(y.dtype)}
    (out / "p1" / f"{path.stem}.manifest.json").write_text(json.dumps(manifest, indent=1))
    return written


def join(root: Path, name: str, dest: Path) -> None:
    manifest = json.loads((root / "p1" / f"{name}.manifest.json").read_text())
    files = [root / f"p{i + 1}" / f"{name}.part{i + 1}.npz" for i in range(manifest["parts"])]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        sys.exit(f"npz_parts: missing part(s) {', '.join(missing)} (carry each p<i> folder in a call before this one)")
    loaded = [np.load(f) for f in files]
    x = np.concatenate([d["x"] for d in loaded])
    y = np.concatenate([d["y"] for d in loaded])
    if _digest(x) != manifest["x_sha256"] or _digest(y) != manifest["y_sha256"]:
        sys.exit(f"npz_parts: the joined {name} does not match its manifest's SHA-256")
    np.savez(dest, x=x, y=y)
    print(f"joined {name}: {len(y)} rows from {len(files)} parts, SHA-256 checked -> {dest}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split")
    s.add_argument("file", type=Path)
    s.add_argument("out", type=Path)
    s.add_argument("--parts", type=int, default=2)
    j = sub.add_parser("join")
    j.add_argument("root", type=Path)
    j.add_argument("name")
    j.add_argument("dest", type=Path)
    a = ap.parse_args()
    if a.cmd == "split":
        for f in split(a.file, a.out, a.parts):
            print(f, f.stat().st_size)
    else:
        join(a.root, a.name, a.dest)


if __name__ == "__main__":
    main()
