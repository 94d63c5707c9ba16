"""A cell whose run is the mean of other rows' label sets, tested under its ``@protocol``.

Label sets learned on the same images from different starts average into a set that can beat each of them
(:func:`labeldistill.average_labels`, docs/design-notes.md "The mean of label sets"). A ``mean`` method names the rows it
averages (``METHODS[m]["parts"]``); its cell's parts are those rows' cells with the same settings, so they share their
runs with the table (computed first where they are not finished). Its run directory holds::

    distilled.safetensors   the mean (provenance: each part's content hash, ``averaged_from``)
    config.json             {"format", "config": MeanSettings, "parts": [{cell, run_slug, content_sha256}], "versions"}
    result.json             the protocol's test of the mean (``evaluate``), with "config" and "parts"
    evaluations/            the test's file and model ledger (an interrupted test resumes)

Its cost is its parts' (their distillations and teachers: nothing else makes it) and its own test.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..ensemble import MEAN_RUN_FORMAT as FORMAT
from ..errors import UserError


@dataclass
class MeanSettings:
    """What a mean of label sets is: its parts' runs (their slugs in ``OUT/runs``) and the protocol that tests it."""

    target: str
    base: int
    parts: tuple[str, ...]
    protocol: str
    seed: int = 0
    split: tuple[float, float, float] | None = None
    device: str = "auto"


def make_mean(plan, opts, ensure_part: Callable[[object], dict]) -> None:
    """Finish each part's run (``ensure_part``), write their mean into the plan's run directory and test it under the
    cell's protocol (``evaluate``: its model ledger lets an interrupted test go on)."""
    from ..artifact import FILE_NAME, load
    from ..ensemble import average_labels
    from ..evaluation import evaluate
    from ..protocols import get_protocol
    from ..runs import atomic_write_json
    from ..runs.provenance import versions

    out, run_dir, cfg = Path(opts.out), plan.run_dir(opts.out), plan.config
    for part in plan.parts:
        ensure_part(part)
    sets = [load(p.run_dir(out)) for p in plan.parts]
    mean = average_labels(sets, [p.cell.name for p in plan.parts])
    run_dir.mkdir(parents=True, exist_ok=True)
    mean.save(run_dir / FILE_NAME)
    parts = [{"cell": p.cell.name, "run_slug": p.run_slug, "content_sha256": s.content_sha256()} for p, s in zip(plan.parts, sets)]
    record = {"format": FORMAT, "config": plan.expected_config(), "parts": parts, "data_root": opts.data_root,
              "versions": versions()}
    atomic_write_json(run_dir / "config.json", record)
    proto = get_protocol(cfg.protocol)
    if proto.epochs is None:
        raise UserError(f"A mean of label sets is tested under a fixed-epoch protocol (dc, dc-dsa), not {proto.name}.")
    result = evaluate(run_dir, protocol=proto.name, models=proto.models, data_root=opts.data_root, device=opts.device or "auto",
                      progress=opts.progress)
    atomic_write_json(run_dir / "result.json", {**result, "test_seconds": result.get("seconds"), "config": record["config"],
                                                "parts": parts})


def changed_parts(plan, out: Path) -> list[str]:
    """The finished parts of a mean whose sets are no longer the ones it averaged (their runs made again since): their
    cells. A part not finished now is not compared (the mean is made again when it is, if it changed). Each part's
    hash is the one its set file records in its header (which ``load`` verifies): no set is read."""
    from ..artifact import FILE_NAME
    from ..runs import read_json
    from ..runs.tensorstate import header_metadata

    stored = {p.get("cell"): p.get("content_sha256") for p in (read_json(plan.run_dir(out) / "config.json").get("parts") or [])}
    return [p.cell.name for p in plan.parts if (p.run_dir(out) / "result.json").exists()
            and header_metadata(p.run_dir(out) / FILE_NAME).get("sha256") != stored.get(p.cell.name)]


def mean_settings(cell, parts: list, split, device: str) -> MeanSettings:
    """The settings of a mean cell's run, from its cell and its parts' plans."""
    return MeanSettings(target=parts[0].config.target, base=cell.base, parts=tuple(p.run_slug for p in parts),
                        protocol=cell.protocol or "paper", seed=cell.seed, split=split, device=device)


__all__ = ["FORMAT", "MeanSettings", "changed_parts", "make_mean", "mean_settings"]
