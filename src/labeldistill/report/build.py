"""``make_report`` (one run) and ``compare_runs`` (several runs side by side)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..distill.loop import CHECKPOINT
from ..errors import UserError
from . import figures as F
from .document import Document
from .load import Run, base_images, load_run, selected_base

RUN_FIGURES = ("labels_grid.png", "label_heatmap.png", "prototypes.png", "training_curves.png", "steps_accuracy.png", "grad_variance.png",
               "learned_images.png", "step_images.png", "lr_schedule.png", "outer_loss.png")
COMPARE_FIGURES = ("compare_curves.png", "grad_variance.png", "base_sets.png")


def _fmt_acc(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{float(mean):.2f} ± {float(std or 0.0):.2f} %"


def _prepare_out(out: Path, names: Sequence[str]) -> Path:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory.")
    out.mkdir(parents=True, exist_ok=True)
    for name in names:  # figures from an earlier report that may not apply any more
        (out / name).unlink(missing_ok=True)
    return out


def selected_validation(run: Run) -> dict | None:
    """The validation record of the labels the run kept (the last one marked selected)."""
    chosen = [v for v in run.validations if v.get("selected")]
    if run.result is not None and run.result.get("selected_epoch") is not None:
        same = [v for v in chosen if v.get("epoch") == run.result["selected_epoch"]]
        chosen = same or chosen
    return chosen[-1] if chosen else None


def _describe(run: Run) -> str:
    c = run.config
    src = f"{c.get('source')} → {c.get('target')}" if run.cross_dataset else str(c.get("target"))
    return f"{src}, {c.get('base')} base images, {c.get('method')}"


def curve_data(run: Run) -> dict:
    steps, err = run.step_array(), run.error_array()
    rs, _ = run.resets()
    sel = selected_validation(run)
    return {"label": run.name, "steps": steps, "window": run.window,
            "accuracy": F.moving_average(100.0 - err, run.window, F.segment_starts(steps, rs)) if len(steps) else np.zeros(0),
            "val_steps": np.array([int(v["step"]) for v in run.validations]),
            "val_accuracy": np.array([float(v["val_accuracy"]) for v in run.validations]),
            "selected_step": int(sel["step"]) if sel else None}


def _summary_rows(run: Run) -> list[list[str]]:
    c, r = run.config, run.result or {}
    rs, t_i = run.resets()
    sel = selected_validation(run)
    ds = run.distilled
    rows = [
        ["run directory", str(run.path)],
        ["target", str(c.get("target"))],
        ["base images", f"{c.get('base')} from {c.get('source') if run.cross_dataset else c.get('target')}"
                        + (" (cross-dataset)" if run.cross_dataset else " (within-dataset)")],
        ["method", str(c.get("method"))],
        ["architecture / head", f"{run.get('arch')} / {r.get('head', '-')}"],
        ["epochs", f"{run.steps[-1]['epoch'] if run.steps else 0} of {c.get('epochs')}"],
        ["steps", str(len(run.steps))],
        ["resets (T_i)", "none (students trained the test's way are never reset)" if run.students else
                         f"{len(rs)}" + (f" ({', '.join(str(int(t)) for t in t_i[-8:])}{', …' if len(t_i) > 8 else ''})" if len(t_i) else "")],
        ["selected labels", f"epoch {sel['epoch']}, validation accuracy {float(sel['val_accuracy']):.2f} %" if sel else "-"],
        ["T (training steps)", f"- (none: tested under {c.get('test_protocol')}'s fixed epochs)" if run.students else
                               str(r.get("T", ds.steps if ds is not None else "-"))],
        ["test accuracy", f"{_fmt_acc(r.get('accuracy_mean'), r.get('accuracy_std'))}"
                          + (f" ({r.get('models')} models)" if r.get("models") else "") if r else "- (no result.json yet)"],
    ]
    if r.get("seconds_per_step"):
        rows.append(["seconds per step", f"{float(r['seconds_per_step']):.4f}"])
    return rows


def steps_series(run: Run) -> dict[str, list[tuple[int, float, float]]]:
    """Test accuracy per (arch, head) against steps, from evaluations/*.json and result.json."""
    series: dict[str, dict[int, tuple[int, float, float]]] = {}
    for e in run.evaluations:
        key = f"{e.get('arch', '?')} / {e.get('head', '?')}"
        series.setdefault(key, {})[int(e["steps"])] = (int(e["steps"]), float(e["accuracy_mean"]), float(e.get("accuracy_std", 0.0)))
    r = run.result
    if r and r.get("accuracy_mean") is not None and r.get("T") is not None and not run.students:
        key = f"{r.get('arch', '?')} / {r.get('head', '?')}"
        series.setdefault(key, {}).setdefault(int(r["T"]), (int(r["T"]), float(r["accuracy_mean"]), float(r.get("accuracy_std", 0.0))))
    return {k: sorted(v.values()) for k, v in series.items()}


def make_report(run_dir: str | Path, out: str | Path | None = None, *, max_images: int = F.MAX_GRID_IMAGES) -> Path:
    """Write the figures, ``report.md`` and a self-contained ``report.html`` for one run.

    Args:
        run_dir: a run directory made by ``labeldistill distill`` (finished or still running).
        out: where to write (default ``RUN_DIR/report``).
        max_images: most base images in the label grid.
    Returns:
        The path of ``report.md`` (``report.html`` and the PNGs are beside it).
    Example:
        >>> labeldistill.report.make_report("runs/mnist-rr")
        PosixPath('runs/mnist-rr/report/report.md')
    """
    if max_images < 1:
        raise UserError(f"max_images must be at least 1 (got {max_images}).")
    run = load_run(run_dir)
    out = _prepare_out(Path(out) if out is not None else run.path / "report", RUN_FIGURES)
    if run.unrolled:
        return _unrolled_report(run, out, max_images)
    what = {"labels": "Label", "images": "Image", "images+labels": "Image and label"}.get(run.learned, "Label")
    doc = Document(f"{what} distillation report: {run.name}")
    doc.para(_describe(run) + ".")
    doc.table(["setting", "value"], _summary_rows(run))
    ds = run.distilled

    doc.heading("Learned labels")
    if ds is None:
        doc.para("`distilled.safetensors` is not there yet (the run has not finished): the label figures are left out.")
    else:
        prov = ds.provenance
        images, labels = base_images(ds), ds.labels.detach().float().cpu().numpy()
        base_classes, base_labels = prov.get("base_classes"), prov.get("base_labels")
        has_base = (isinstance(base_classes, list) and isinstance(base_labels, list) and len(base_labels) == len(ds)
                    and any(0 <= int(v) < len(base_classes) for v in base_labels))
        names = [str(base_classes[i]) if 0 <= int(i) < len(base_classes) else "?" for i in base_labels] if has_base else None
        p = F.label_grid(images, labels, ds.class_names, out / "labels_grid.png", base_names=names, same_classes=not run.cross_dataset,
                         max_images=max_images, context=_describe(run))
        shown = min(len(ds), max_images)
        doc.figure(p, f"Base images with their learned labels (Figure 8 of the paper): {shown} of {len(ds)} images"
                      + (f", capped at {max_images}." if shown < len(ds) else "."))
        if has_base:
            sub, agree = None, None
            if not run.cross_dataset:
                agree = F.argmax_agreement(labels, np.asarray(base_labels))
                sub = f"argmax of the learned label = the true class for {100 * agree:.0f}% of the {len(ds)} base images"
            p = F.label_heatmap(labels, np.asarray(base_labels), [str(c) for c in base_classes], ds.class_names, out / "label_heatmap.png",
                                context=_describe(run), note=sub)
            doc.figure(p, "Mean learned label of the base images of each original class (rows) over the target classes (columns); "
                          f"values of at least {F.ANNOTATE_MIN} are printed (Figures 6 and 7 of the paper).")
            if agree is not None:
                doc.para(f"The argmax of the learned label equals the base image's true class for **{100 * agree:.1f}%** "
                         f"of the {len(ds)} base images (the paper reports e.g. 63% for RR against 84% for second-order "
                         "in one scenario: the labels recover the true class only in part and add information).")
        else:
            doc.para("The distilled set does not record the base images' own classes (`base_labels`): no heat map.")
        if run.cross_dataset:
            p = F.prototype_figure(images, labels, ds.class_names, out / "prototypes.png", context=_describe(run))
            doc.figure(p, "One prototype per target class: the base images (denormalised) averaged pixel-wise with that class's "
                          "label entries as weights, normalised per class, shown contrast-stretched; below, the difference from "
                          "the plain mean of the base images (Figure 9 of the paper).")

    if ds is not None and run.learned != "labels":
        _learned_images_section(doc, run, ds, out)

    doc.heading("Training")
    rs, t_i = run.resets()
    sel = selected_validation(run)
    final_t = None if run.students else (run.result or {}).get("T", ds.steps if ds is not None else (int(sel["T"]) if sel and "T" in sel else None))
    # Students have no reset window: their average spans a fifth of the run (a 25-step run's 50-step "average" was its running mean).
    window = min(run.window, max(1, len(run.steps) // 5)) if run.students else run.window
    start = ((run.result or {}).get("start_candidate") or {}).get("val_accuracy")
    p = F.training_curves(run.step_array(), run.error_array(), out / "training_curves.png", window=window, reset_steps=rs, t_i=t_i,
                          validations=run.validations, selected_step=int(sel["step"]) if sel else None, final_t=final_t,
                          context=_describe(run), students=run.students, start_accuracy=None if start is None else float(start))
    start_text = " The dashed line: the start labels' validation accuracy, which the selected snapshot had to beat." if start is not None else ""
    if run.students:
        doc.figure(p, f"Top: accuracy of the students (trained the {run.config.get('test_protocol')} way, never reset) on the "
                      f"target minibatches, moving average over {window} steps. Bottom: validation accuracy of the label "
                      f"snapshots, the selected one starred.{start_text}")
    else:
        doc.figure(p, f"Top: accuracy of the persistent model on the target minibatches, moving average over {run.window} steps "
                      "(the reset window), resets as dashed lines. Middle: validation accuracy of the label snapshots, the "
                      f"selected one starred.{start_text} Bottom: T_i recorded at each reset.")
    gs, gv = run.grad_var()
    if len(gs):
        p = F.grad_variance([(run.name, gs, gv)], out / "grad_variance.png", context=_describe(run))
        doc.figure(p, "Variance of the label meta-gradient over training, log scale (Figure 3 of the paper).")

    series = steps_series(run)
    if len({s for pts in series.values() for s, _, _ in pts}) >= 2:
        doc.heading("Test accuracy against training steps")
        p = F.steps_accuracy(series, out / "steps_accuracy.png", distilled_steps=final_t,
                             context=_describe(run))
        doc.figure(p, "Test accuracy (mean ± std over fresh models) against the number of training steps (Figure 2a of the paper).")
        rows = [[e["file"], str(e.get("arch")), str(e.get("head")), str(e["steps"]), _fmt_acc(e["accuracy_mean"], e.get("accuracy_std")),
                 str(e.get("models", "-"))] for e in sorted(run.evaluations, key=lambda e: (str(e.get("arch")), str(e.get("head")), int(e["steps"])))]
        if rows:
            doc.table(["evaluation", "arch", "head", "steps", "test accuracy", "models"], rows)
    md, _ = doc.write(out)
    return md


def _classes(ds) -> np.ndarray:
    """The class each image of a set stands for: its fixed label, else its learned label's argmax."""
    return ds.labels.detach().float().cpu().numpy().argmax(1)


def _pixels(ds, images) -> np.ndarray:
    return ds.preprocessing.denormalise(images.detach().float().cpu()).permute(0, 2, 3, 1).numpy()


def _learned_images_section(doc: Document, run: Run, ds, out: Path) -> None:
    """Learned images beside the images they started from, per class (runs with learned images)."""
    doc.heading("Learned images")
    if ds.initial_images is None:
        where = "in step order below" if run.unrolled else "in the label grid only"
        doc.para(f"The distilled set does not keep the initial images (`initial_images`): the learned images are shown {where}.")
        return
    labels_fixed = run.learned == "images"
    p = F.learned_vs_initial(_pixels(ds, ds.initial_images), _pixels(ds, ds.images), _classes(ds), ds.class_names,
                             out / "learned_images.png", context=_describe_any(run), init=ds.image_init)
    doc.figure(p, f"Each learned image (red frame) beside the image it started from ({ds.image_init or 'initial'}), by the "
                  + ("class of its fixed one-hot label." if labels_fixed else "argmax of its learned label."))
    change = (ds.images - ds.initial_images).float()
    doc.para(f"Mean absolute change per pixel (normalised units): {change.abs().mean().item():.3f}; "
             f"images {len(ds)}, learned: {ds.learned}, start: {ds.image_init}.")


def _describe_any(run: Run) -> str:
    if run.unrolled:
        c = run.config
        return f"{c.get('target')}, {c.get('base')} images, {str(c.get('method')).upper()} ({c.get('arch')})"
    return _describe(run)


def _unrolled_report(run: Run, out: Path, max_images: int) -> Path:
    """A DD / SLDD run: its images (learned vs initial, in step order), the learned lr schedule,
    the outer loss, and its test by the schedule's variants (evaluations/)."""
    c, r, ds = run.config, run.result or {}, run.distilled
    u = c.get("unrolled") or {}
    method = str(c.get("method")).upper()
    doc = Document(f"{method} report: {run.name}")
    context = _describe_any(run)
    doc.para(context + ".")
    its = run.outer[-1]["iteration"] if run.outer else 0
    steps, per_class = u.get("steps"), u.get("images_per_class")
    classes = c["base"] // (steps * per_class) if c.get("base") and steps and per_class else "?"
    rows = [["run directory", str(run.path)], ["target", str(c.get("target"))], ["method", f"{method} (unrolled, labeldistill.unrolled)"],
            ["architecture", str(c.get("arch"))], ["images", f"{c.get('base')} = {steps} steps x {classes} classes x "
                                                             f"{per_class} per class"],
            ["inner steps T", f"{(steps or 0) * (u.get('epochs') or 0)} ({steps} steps x {u.get('epochs')} epochs)"],
            ["outer iterations", f"{its} (of {c.get('epochs')} outer epochs)"],
            ["test accuracy", (f"{_fmt_acc(r.get('accuracy_mean'), r.get('accuracy_std'))} ({r.get('models')} networks, "
                               f"{r.get('std', 'sample')} std)") if r else "- (no result.json yet)"]]
    if r.get("distill_seconds") is not None:
        rows.append(["training time", f"{float(r['distill_seconds']) / 60:.1f} min on {r.get('device', '?')}"])
    doc.table(["setting", "value"], rows)
    if ds is None and (run.path / CHECKPOINT).is_file():  # a run still going: its images and schedule as of the last checkpoint
        from ..unrolled.run import checkpoint_set

        ds = checkpoint_set(run.path)
        doc.para(f"The run has not finished: the figures show its set at outer iteration {ds.provenance['checkpoint_iteration']}, "
                 "its last checkpoint (`labeldistill evaluate RUN --snapshot checkpoint` tests that set).")
    if ds is None:
        doc.para("`distilled.safetensors` is not there yet (the run has not finished): the image and schedule figures are left out.")
    else:
        _learned_images_section(doc, run, ds, out)
        if ds.schedule is not None and ds.schedule.order is not None:
            doc.heading("Images in step order and the learned schedule")
            epoch = ds.schedule.epoch_length or len(ds.schedule.lrs)
            p = F.step_order_images(_pixels(ds, ds.images), ds.schedule.order, ds.schedule.lrs, epoch, ds.class_names, _classes(ds),
                                    out / "step_images.png", context=context)
            doc.figure(p, "The images each inner step trains on, in the order a fresh network sees them (one row per step of an "
                          "epoch); the row label gives that step's learned lr in every epoch.")
            p = F.lr_schedule(ds.schedule.lrs, epoch, out / "lr_schedule.png", context=context)
            doc.figure(p, "The learned learning rate of each of the T inner steps (softplus of the raw lrs), coloured by epoch; "
                          "the dashed line is their mean, which Table 11's 'average' variant uses at every step.")
            doc.table(["step", "lr"], [[str(t), f"{lr:.5g}"] for t, lr in enumerate(ds.schedule.lrs)])
        if ds.learned == "images+labels":
            images, labels = base_images(ds), ds.labels.detach().float().cpu().numpy()
            p = F.label_grid(images, labels, ds.class_names, out / "labels_grid.png", max_images=max_images, context=context)
            doc.figure(p, "SLDD's learned images with their learned soft labels.")
    doc.heading("Training")
    if run.outer:
        p = F.outer_loss(np.array([o["iteration"] for o in run.outer]), np.array([o["loss"] for o in run.outer]),
                         out / "outer_loss.png", context=context)
        doc.figure(p, "The target-minibatch loss of a fresh network after the unrolled steps, at each outer iteration.")
    else:
        doc.para("No outer iterations logged yet.")
    evals = [e for e in run.evaluations if e.get("variant") is not None]
    if evals:
        doc.heading("Tests by the paper's variants (Tables 10-12, 15)")
        doc.table(["evaluation", "variant", "arch", "steps (moving)", "test accuracy", "networks"],
                  [[e["file"], str(e.get("variant")), str(e.get("arch")), f"{e.get('steps', '-')} ({e.get('moving_steps', '-')})",
                    _fmt_acc(e["accuracy_mean"], e.get("accuracy_std")), str(e.get("models", "-"))] for e in evals])
    md, _ = doc.write(out)
    return md


def _labels(runs: Sequence[Run]) -> list[str]:
    labels = [r.name for r in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{r.path.resolve().parent.name}/{r.name}" for r in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{lab} [{i + 1}]" for i, lab in enumerate(labels)]
    return labels


def default_compare_out(run_dirs: Sequence[str | Path]) -> Path:
    names = "-vs-".join(Path(d).resolve().name for d in run_dirs)
    return Path(run_dirs[0]).resolve().parent / ("compare-" + (names if len(names) <= 80 else names[:80] + f"-{len(run_dirs)}runs"))


def compare_runs(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Several runs side by side: curves overlaid, a results table, the label meta-gradient variance.

    Returns:
        The path of ``report.md`` in ``out`` (default: ``compare-A-vs-B`` next to the first run).
    Example:
        >>> labeldistill.report.compare_runs(["runs/mnist-rr", "runs/mnist-so"], "runs/rr-vs-so")
    """
    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    if not run_dirs:
        raise UserError("compare_runs needs at least one run directory.")
    runs = [load_run(d, distilled=False) for d in run_dirs]
    out = _prepare_out(Path(out) if out is not None else default_compare_out(run_dirs), COMPARE_FIGURES)
    labels = _labels(runs)
    doc = Document("Label distillation: " + " vs ".join(labels))
    doc.heading("Results")
    rows = []
    for lab, run in zip(labels, runs):
        r = run.result or {}
        sel = selected_validation(run)
        _, gv = run.grad_var()
        rows.append([lab, str(run.config.get("target")), str(run.config.get("source") or "-"), str(run.config.get("method")),
                     f"{run.get('arch')} / {r.get('head', '-')}", str(run.config.get("base")), str(len(run.steps)),
                     str(len(run.resets()[0])), "-" if run.students or r.get("T") is None else str(r["T"]), _fmt_acc(r.get("accuracy_mean"), r.get("accuracy_std")),
                     f"{float(sel['val_accuracy']):.2f} %" if sel else "-",
                     f"{float(r['seconds_per_step']):.4f}" if r.get("seconds_per_step") else "-",
                     f"{float(np.median(gv)):.2e}" if len(gv) else "-"])
    doc.table(["run", "target", "source", "method", "arch / head", "base", "steps", "resets", "T", "test accuracy",
               "selected val. acc.", "s / step", "median Var[grad]"], rows)
    data = [{**curve_data(run), "label": lab, "legend": f"{lab} ({run.config.get('method')}, window {run.window})"}
            for lab, run in zip(labels, runs)]
    p = F.compare_curves(data, out / "compare_curves.png", context=" vs ".join(labels))
    doc.figure(p, "Top: moving-average accuracy of each run's persistent model on the target minibatches (over its reset window). "
                  "Bottom: validation accuracy of the label snapshots; stars mark the selected labels.")
    gvs = [(lab, *run.grad_var()) for lab, run in zip(labels, runs)]
    gvs = [g for g in gvs if len(g[1])]
    if gvs:
        p = F.grad_variance(gvs, out / "grad_variance.png", context=" vs ".join(g[0] for g in gvs))
        missing = [lab for lab, run in zip(labels, runs) if not len(run.grad_var()[0])]
        doc.figure(p, "Variance of the label meta-gradient over training, log scale (Figure 3 of the paper)"
                      + (f"; not recorded by {', '.join(missing)}." if missing else "."))
    else:
        doc.para("None of the runs recorded the label meta-gradient variance (`grad_var_every` was 0).")
    _compare_base_sets(doc, runs, labels, out)
    md, _ = doc.write(out)
    return md


def _compare_base_sets(doc: Document, runs: Sequence[Run], labels: Sequence[str], out: Path) -> None:
    """The selected base images of the runs side by side (from each run's distilled set)."""
    doc.heading("Base images")
    sets, missing = [], []
    for lab, run in zip(labels, runs):
        b = selected_base(run)
        if b is None:
            missing.append(lab)
        else:
            sets.append({**b, "label": lab})
    if not sets:
        doc.para("No run has its distilled set yet (`distilled.safetensors`): the base images are not shown.")
        return
    p = F.base_sets(sets, out / "base_sets.png", context=" vs ".join(s["label"] for s in sets))
    rows = [[s["label"], str(s["selector"]), str(len(s["images"])), (s["sha256"] or "-")[:16]] for s in sets]
    doc.table(["run", "base selector", "base images", "base set sha256"], rows)
    doc.figure(p, "The base images of each run, by class; a green frame marks an image that every other shown run also has."
                  + (f" Not shown (no distilled set yet): {', '.join(missing)}." if missing else ""))


__all__ = ["make_report", "compare_runs", "default_compare_out"]

