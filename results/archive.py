"""Copy a finished run directory into results/runs/NAME as docs/results.md keeps it (see README.md here):
config.json without the split's index lists, result.json, metrics.jsonl gzipped, the kept snapshots and
the distilled set; no checkpoint.

Usage: python results/archive.py RUN_DIR [RUN_DIR ...]
"""
import gzip
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def archive(run: Path) -> Path:
    if not (run / "result.json").exists():
        sys.exit(f"{run} has no result.json: not finished (archive unfinished runs under in-progress/ with their checkpoint)")
    dest = HERE / "runs" / run.name
    dest.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((run / "config.json").read_text())
    split = cfg.get("split") or {}
    cfg["split"] = {k: v for k, v in split.items() if not (isinstance(v, list) and len(v) > 100)}  # the index lists
    (dest / "config.json").write_text(json.dumps(cfg, indent=1) + "\n")
    shutil.copy2(run / "result.json", dest / "result.json")
    shutil.copy2(run / "distilled.safetensors", dest / "distilled.safetensors")
    with open(run / "metrics.jsonl", "rb") as f, open(dest / "metrics.jsonl.gz", "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as g:  # mtime 0: the same run gives the same bytes
            shutil.copyfileobj(f, g)
    if (run / "snapshots").is_dir():
        shutil.copytree(run / "snapshots", dest / "snapshots", dirs_exist_ok=True)
    return dest


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(archive(Path(arg)))
