"""Copy a finished run directory into results/runs/NAME as docs/results.md keeps it (see README.md here):
config.json without the split's index lists, result.json, machine.json (the machine of each session: what
says which runs may be compared), metrics.jsonl gzipped, the kept snapshots and the distilled set; no checkpoint. Snapshots are kept when they fit in SNAPSHOT_MB (label runs: about
1 MB); a run that learned images has 25 MB of them, which git should not carry: they are left out and
snapshots-left-out.txt says so (the distilled set holds the selected one).

A run that a session's end would cut off goes under in-progress/NAME whole, checkpoint included, so that
the next session (perhaps on a fresh machine: runs/ is not in the repository) resumes it: --in-progress.
Progress is a checkpoint (a distillation) or a model ledger (a fixed-epoch protocol's models, recorded one
by one: a baseline's ledger/, or a finished run's evaluations/ledger/ while it is re-tested).

Usage: python results/archive.py [--in-progress] RUN_DIR[:NAME] [RUN_DIR[:NAME] ...]   (NAME: the record's name, default the folder's)
"""
import gzip
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SNAPSHOT_MB = 4.0
IN_PROGRESS_MB = 64.0  # a parked run over this is refused: git should not carry it (stop it elsewhere)


def archive(run: Path, name: str | None = None) -> Path:
    if not (run / "result.json").exists():
        sys.exit(f"{run} has no result.json: not finished (archive unfinished runs under in-progress/ with their checkpoint)")
    dest = HERE / "runs" / (name or run.name)
    dest.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((run / "config.json").read_text())
    split = cfg.get("split") or {}
    cfg["split"] = {k: v for k, v in split.items() if not (isinstance(v, list) and len(v) > 100)}  # the index lists
    (dest / "config.json").write_text(json.dumps(cfg, indent=1) + "\n")
    shutil.copy2(run / "result.json", dest / "result.json")
    shutil.copy2(run / "distilled.safetensors", dest / "distilled.safetensors")
    if (run / "machine.json").exists():  # runs made before machine records have none
        shutil.copy2(run / "machine.json", dest / "machine.json")
    with open(run / "metrics.jsonl", "rb") as f, open(dest / "metrics.jsonl.gz", "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as g:  # mtime 0: the same run gives the same bytes
            shutil.copyfileobj(f, g)
    if (run / "snapshots").is_dir():
        files = sorted((run / "snapshots").iterdir())
        mb = sum(f.stat().st_size for f in files) / 2**20
        if mb <= SNAPSHOT_MB:
            shutil.copytree(run / "snapshots", dest / "snapshots", dirs_exist_ok=True)
        else:
            (dest / "snapshots-left-out.txt").write_text(
                f"{len(files)} label/image snapshots ({mb:.1f} MB) left out of the record (over {SNAPSHOT_MB} MB); "
                "distilled.safetensors holds the selected one.\n")
    return dest


def park(run: Path, name: str | None = None) -> Path:
    """Copy an unfinished run or evaluation, as it is (checkpoint or model ledger, metrics, snapshots,
    machine.json), into in-progress/NAME."""
    retest = list((run / "evaluations" / "ledger").glob("*.jsonl"))  # a finished run being re-tested
    ledgers = retest + list((run / "ledger").glob("*.jsonl"))
    if (run / "result.json").exists() and not retest:
        sys.exit(f"{run} is finished: archive it into runs/ instead")
    if not (run / "config.json").exists() and not ledgers:
        sys.exit(f"{run} is not a run directory (no config.json) and holds no model ledger")
    if not any(run.glob("checkpoint*")) and not ledgers:
        sys.exit(f"{run} has no checkpoint: stop it with one Ctrl-C (SIGINT) first, so that it writes one")
    mb = sum(f.stat().st_size for f in run.rglob("*") if f.is_file()) / 2**20
    if mb > IN_PROGRESS_MB:
        sys.exit(f"{run} holds {mb:.0f} MB, over {IN_PROGRESS_MB:.0f} MB: too big for the repository")
    dest = HERE / "in-progress" / (name or run.name)
    if dest.exists():
        shutil.rmtree(dest)  # an older park of the same run: the newer checkpoint replaces it whole
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns(".lock"))  # a lock file means nothing elsewhere
    return dest


if __name__ == "__main__":
    args = sys.argv[1:]
    keep = park if args[:1] == ["--in-progress"] else archive
    for arg in args[1:] if keep is park else args:
        path, _, name = arg.partition(":")
        print(keep(Path(path), name or None))
