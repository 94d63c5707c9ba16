"""Keep a run directory's record in main (records/), and put a parked run back to resume it.

    python records/archive.py store RUN_DIR NAME                 # a finished run -> records/runs/NAME
    python records/archive.py store RUN_DIR NAME --in-progress   # with its checkpoint -> records/in-progress/NAME
    python records/archive.py restore NAME RUN_DIR               # records/in-progress/NAME -> RUN_DIR (then resume)
    python records/archive.py park OUT NAME                      # a reproduce --out folder (many runs) -> records/in-progress/NAME
    python records/archive.py unpark NAME OUT                    # records/in-progress/NAME -> OUT (then the same reproduce command)
    python records/archive.py size                               # what records/ holds; runs/ against its budget
    python records/archive.py compact                            # old records' JSON with long lists on one line

Why main: a session's machine can be replaced, and only main is carried over (session 23 lost the
`results` branch, which lived in one machine's clone). A record stays a run directory that the library reads
(`labeldistill report records/runs/NAME`), and small: the metrics log is gzipped (as the library reads it),
files over 2 MB are left out (listed in the manifest) except the distilled set and, for a parked run, the
checkpoint, and finished records keep to a budget, because every tracked file travels with each call to a
lent GPU machine.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gzip
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUDGET_MB = 44.0          # finished records (runs/; each MNIST run about 1.2 MB, most of it the split's indices in
                          # config.json, 0.5 MB on one line: `compact` rewrote the older records' 0.9 MB a line per index in
                          # session 36; CIFAR-100's 160 label snapshots 6.4 MB): tracked files travel with every
                          # GPU call (64 MiB with the code), so `rm -r records/runs records/in-progress` in the
                          # working tree before a call that carries data. 40 MB until session 33, which kept every
                          # record docs/results.md cites and added the implicit method's --students 3 run
LARGE_MB = 2.0            # files above this are left out, except the ones a record exists for
KEEP = {"distilled.safetensors", "result.json", "config.json", "checkpoint.safetensors"}  # whatever their size
SKIP = {".lock"}
GZIP_SUFFIXES = (".jsonl",)  # runs.metrics reads metrics.jsonl.gz; JSON stays plain for every other reader


def _commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(HERE), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _size_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20


def store(run_dir: Path, name: str, in_progress: bool) -> Path:
    if not run_dir.is_dir():
        sys.exit(f"error: {run_dir} is not a run directory")
    dest = HERE / ("in-progress" if in_progress else "runs") / name
    if dest.exists():
        shutil.rmtree(dest)  # a record is replaced whole, never merged with an older one
    files, left_out = {}, []
    for src in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        rel = src.relative_to(run_dir).as_posix()
        if src.name in SKIP or src.name.startswith(".") and src.name.endswith(".tmp"):
            continue
        if src.name == "checkpoint.safetensors" and not in_progress:
            continue  # a finished run resumes nothing: its record is the result, not the state to go on from
        mb = src.stat().st_size / 2**20
        if mb > LARGE_MB and src.name not in KEEP:
            left_out.append(f"{rel} ({mb:.1f} MB)")
            continue
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        raw = src.read_bytes()  # read once: the digest is of exactly the bytes stored, even if the run writes on
        files[rel] = hashlib.sha256(raw).hexdigest()
        if src.suffix in GZIP_SUFFIXES:
            out = out.with_name(out.name + ".gz")
            raw = gzip.compress(raw, mtime=0)  # mtime 0: the same file gives the same blob
        out.write_bytes(raw)
    manifest = {"source": str(run_dir), "stored": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "main_commit": _commit(), "in_progress": in_progress, "files": files, "left_out": left_out}
    (dest / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    total = _size_mb(HERE / "runs") if (HERE / "runs").is_dir() else 0.0
    print(f"{dest.relative_to(HERE.parent)}: {_size_mb(dest):.2f} MB; records/runs {total:.1f} of {BUDGET_MB:.0f} MB"
          + (f"; left out: {', '.join(left_out)}" if left_out else ""))
    if total > BUDGET_MB:
        sys.exit(f"error: records/runs is {total:.1f} MB, over its {BUDGET_MB:.0f} MB budget; leave large files out "
                 "or keep fewer runs")
    return dest


def restore(name: str, run_dir: Path) -> None:
    src = HERE / "in-progress" / name
    if not (src / "MANIFEST.json").is_file():
        sys.exit(f"error: no parked run {name!r} in {src.parent}")
    if run_dir.exists() and any(run_dir.iterdir()):
        sys.exit(f"error: {run_dir} exists and is not empty; restore into a new folder")
    manifest = json.loads((src / "MANIFEST.json").read_text())
    contents = {}
    for rel, digest in manifest["files"].items():
        gz = src / (rel + ".gz")
        raw = gzip.decompress(gz.read_bytes()) if gz.is_file() else (src / rel).read_bytes()
        if hashlib.sha256(raw).hexdigest() != digest:  # all checked before any is written: a damaged record restores nothing
            sys.exit(f"error: {rel} does not match its recorded sha256; the record is damaged")
        contents[rel] = raw
    for rel, raw in contents.items():
        out = run_dir / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(raw)
    print(f"restored {len(manifest['files'])} files into {run_dir}; resume it with the command in its record")


def _caches(root: Path) -> set[Path]:
    """Folders of ``root`` that the library remakes from the data alone, never parked: decoded datasets (a folder with
    a ``.complete`` marker, data/cache.py) and ZCA fits (``zca/``)."""
    return {p.parent for p in root.rglob(".complete")} | {p for p in root.rglob("zca") if p.is_dir()}


def _rewritten(p: Path) -> bool:
    """A finished run's large set (a CIFAR-10 set carries its 38 MB ZCA) and its result, beside the run's checkpoint:
    left out, since resuming the run from that checkpoint writes both again (session 50's parks did so by hand)."""
    set_file = p.parent / "distilled.safetensors"
    return (p.name in ("distilled.safetensors", "result.json") and (p.parent / "checkpoint.safetensors").is_file()
            and set_file.is_file() and set_file.stat().st_size > LARGE_MB * 2**20)


def _parked_files(root: Path) -> dict[str, Path]:
    caches = _caches(root)
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in SKIP and not (p.name.startswith(".") and p.name.endswith(".tmp"))
            and not any(c in p.parents for c in caches) and not _rewritten(p)}


def park(out: Path, name: str, delete: bool) -> None:
    """Mirror a folder of many runs (``reproduce --out``: cells, run directories with their checkpoints, teachers) into
    ``records/in-progress/NAME`` as plain files (but a finished run's large set and result beside its checkpoint, which
    its resume rewrites), writing only those that changed, so a park's commit holds just what the
    session made. Files the park has and OUT lacks are kept unless ``delete`` (a parked teacher's partial file, say,
    that a later session finished): a park is never shrunk by a wrong OUT."""
    if not out.is_dir():
        sys.exit(f"error: {out} is not a folder")
    dest = HERE / "in-progress" / name
    if (dest / "MANIFEST.json").is_file():
        sys.exit(f"error: records/in-progress/{name} is a parked run (store / restore), not a parked folder")
    files = _parked_files(out)
    have = {q.relative_to(dest).as_posix(): q for q in dest.rglob("*") if q.is_file()} if dest.is_dir() else {}
    written = 0
    for rel, src in files.items():
        raw = src.read_bytes()
        target = dest / rel
        if rel in have and target.read_bytes() == raw:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(raw)
        written += 1
    gone = sorted(set(have) - set(files))
    for rel in gone if delete else ():
        (dest / rel).unlink()
    print(f"records/in-progress/{name}: {written} files written, {len(files) - written} unchanged, {_size_mb(dest):.1f} MB"
          + (f"; {len(gone)} not in {out} {'removed' if delete else 'kept (--delete removes them)'}" if gone else ""))


def unpark(name: str, out: Path) -> None:
    """Put a parked folder back where its reproduce command reads it (OUT new or empty)."""
    src = HERE / "in-progress" / name
    if not src.is_dir() or (src / "MANIFEST.json").is_file():
        sys.exit(f"error: no parked folder {name!r} in {src.parent} (a parked run: restore)")
    if out.exists() and any(out.iterdir()):
        sys.exit(f"error: {out} exists and is not empty; unpark into a new folder")
    shutil.copytree(src, out, dirs_exist_ok=True)
    print(f"unparked {len(_parked_files(out))} files into {out}; go on with the reproduce command that made them")


def compact() -> None:
    """Rewrite the records' JSON files that the library would now write shorter (runs.files.dumps: a long list of
    numbers on one line; a run's split indices took a line each, half of an MNIST record's bytes) with the very same
    JSON values, and update each manifest: the file's new digest, and under ``rewritten`` its digest as stored, so the
    record says what changed and git history keeps the old bytes. Needs the library (it writes what a run writes)."""
    from labeldistill.runs.files import dumps  # lazily: store / restore run without the library or torch

    saved, when, commit = 0, _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), _commit()
    for manifest_path in sorted(HERE.glob("*/*/MANIFEST.json")):
        record, manifest = manifest_path.parent, json.loads(manifest_path.read_text())
        changed = {}
        for rel in sorted(manifest["files"]):
            path = record / rel
            if path.suffix != ".json" or not path.is_file():
                continue
            old = path.read_bytes()
            value = json.loads(old)
            new = (dumps(value) + "\n").encode()
            if len(new) >= len(old):
                continue
            if json.loads(new) != value:  # never: dumps writes the values it read; checked all the same
                sys.exit(f"error: {path} would not keep its values when rewritten")
            path.write_bytes(new)
            digest = hashlib.sha256(new).hexdigest()
            changed[rel] = {"was_sha256": manifest["files"][rel], "on": when, "main_commit": commit,
                            "why": "long lists of numbers on one line (runs.files.dumps); the same JSON values"}
            manifest["files"][rel] = digest
            saved += len(old) - len(new)
        if changed:
            manifest.setdefault("rewritten", {}).update(changed)
            manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
            print(f"{record.relative_to(HERE)}: {', '.join(changed)}")
    print(f"saved {saved / 2**20:.2f} MB; records/runs {_size_mb(HERE / 'runs'):.1f} of {BUDGET_MB:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("store")
    s.add_argument("run_dir", type=Path)
    s.add_argument("name")
    s.add_argument("--in-progress", action="store_true", help="keep the checkpoint, to resume in a later session")
    r = sub.add_parser("restore")
    r.add_argument("name")
    r.add_argument("run_dir", type=Path)
    k = sub.add_parser("park", help="mirror a folder of many runs (reproduce --out) into records/in-progress/NAME")
    k.add_argument("out", type=Path)
    k.add_argument("name")
    k.add_argument("--delete", action="store_true", help="also remove parked files that OUT no longer has")
    u = sub.add_parser("unpark")
    u.add_argument("name")
    u.add_argument("out", type=Path)
    sub.add_parser("size")
    sub.add_parser("compact", help="rewrite old records' JSON with long lists on one line (the same values)")
    a = ap.parse_args()
    if a.cmd == "store":
        store(a.run_dir, a.name, a.in_progress)
    elif a.cmd == "restore":
        restore(a.name, a.run_dir)
    elif a.cmd == "park":
        park(a.out, a.name, a.delete)
    elif a.cmd == "unpark":
        unpark(a.name, a.out)
    elif a.cmd == "compact":
        compact()
    else:
        for d in sorted(p for p in HERE.glob("*/*") if p.is_dir()):
            print(f"{_size_mb(d):8.2f} MB  {d.relative_to(HERE)}")
        print(f"{_size_mb(HERE / 'runs'):8.2f} MB  records/runs (budget {BUDGET_MB:.0f} MB; in-progress/ is not counted)")


if __name__ == "__main__":
    main()
