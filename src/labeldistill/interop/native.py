"""``--format labeldistill`` (the default): the library's own distilled-set file (safetensors + JSON, hashed)."""
from __future__ import annotations

from pathlib import Path

from ..artifact import DistilledSet
from . import register_format


@register_format("labeldistill")
def write(ds: DistilledSet, out: str | Path) -> tuple[Path, list[str]]:
    path = ds.save(Path(out))
    what = "learned labels" if ds.learned == "labels" else f"learned {ds.learned}"
    if ds.recipe.get("method") == "baseline":  # baseline --save-set: true, smoothed or a teacher's labels, given
        what = "a baseline's labels (not learned)"
    t = f"T={ds.steps}" if ds.steps is not None else f"no T (trains by {ds.recipe['test_protocol']})"
    return path, [f"wrote {path}: {len(ds)} images, {ds.num_classes} classes, {what}, {t} (no target paths or metrics)"]
