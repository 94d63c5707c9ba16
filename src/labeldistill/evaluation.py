"""Evaluate a distilled set: fresh models (any architecture, either head, T or T +- delta steps).

A DD / SLDD set (one with a learned step schedule) trains its own way by default (the schedule's
steps, lrs and order, plain SGD, DD's 200 networks), or by one of the paper's sensitivity
variants (``variant=``, :func:`labeldistill.unrolled.evaluate_set`)."""
from __future__ import annotations

import math
from pathlib import Path

from .artifact import load
from .problem import run_target
from .engine import TrainRecipe, evaluate_labels, make_learner
from .errors import UserError
from .runs import atomic_write_json, read_json
from .numerics import float32_precision
from .runs.ledger import evaluation_ledger, evaluations_dir
from .runs.provenance import resolve_device, versions


def parse_steps(value: str | int | None, default: int | None) -> int | None:
    """An absolute T (``300``), a signed change of the distilled T (``+50``, ``-20``) or a fraction of it
    (``x0.5``, ``x10/30``: T x 10 / 30, rounded to the nearest step; DD's "first 10 of its 30 steps" for a
    label set). ``default``: the set's T, None for a set without one (then only an absolute T means anything)."""
    if value is None:
        return default
    text = str(value).strip()
    if default is None and not text.isdigit():
        raise UserError(f"--steps {value} changes the set's T, but this set has none (labels learned by students trained "
                        "the test's way): give a number of steps.")
    try:
        if text[:1] in "xX":
            num, _, den = text[1:].partition("/")
            frac = float(num) / (float(den) if den else 1.0)
            if not frac > 0 or frac == float("inf"):
                raise ValueError
            steps = int(math.floor(default * frac + 0.5))  # halves round up
        else:
            steps = default + int(text) if text[:1] in "+-" else int(text)
    except (ValueError, ZeroDivisionError):
        raise UserError(f"--steps takes a number of steps (300), a change of T (+50, -20) or a fraction of T (x0.5, x10/30), "
                        f"got '{value}'.") from None
    if steps < 1:
        raise UserError(f"--steps {value} gives {steps} training steps; it must be at least 1.")
    return steps


def evaluate(
    path: str | Path, *, arch: str | None = None, head: str | None = None, models: int | None = None, steps: str | int | None = None,
    target: str | None = None, data_root: str | Path | None = None, device: str = "auto", seed: int | None = None, save: bool = True,
    variant: str | None = None, protocol: str | None = None, progress: bool = False,
    optimizer: str | None = None, lr: float | None = None, order: int | None = None, label_temperature: float | None = None,
    snapshot: str | int | None = None,
) -> dict:
    """Train ``models`` fresh models on a distilled set and report test accuracy (%).

    Works on every kind of set (learned labels, learned images or both): the models train on
    the file's images (normalised as stored) with its labels.

    Args:
        path: a run directory or a distilled-set file.
        arch, head: architecture and head of the fresh models (default: the recipe's).
        steps: absolute T or a change such as ``"+50"`` (default: the distilled T).
        models: fresh models (default 20; a DD / SLDD set: its run's, 200).
        target: the test data; a run directory knows its own, an exported file needs it.
        save: for a run directory, write the result to ``RUN_DIR/evaluations/``.
        variant: DD / SLDD sets only: ``learned`` (the default), ``first-steps:N``,
            ``extended:K``, ``average-lr``, ``shuffle-within``, ``shuffle-across``,
            ``shuffle-steps-within``, ``shuffle-steps-across`` or ``like-ld``;
            recorded as ``variant`` in the result.
        protocol: how the fresh models train (``labeldistill.protocols``): ``paper`` (the default:
            Adam, T random minibatches, every number as before; a set learned by students trained the test's way,
            ``--method implicit``, defaults to its own test protocol: it has no T), ``dc`` or ``dc-dsa`` (ConvNet-3 unless
            ``arch``, SGD, fixed epochs, DSA and ZCA; 5 models unless ``models``). For a run directory (and
            ``save``) such an evaluation records each finished model in ``RUN_DIR/evaluations/ledger/``: run
            again after an interruption, it trains only the models it lacks.
        progress: a progress bar over the training of a fixed-epoch protocol's models, or a DD / SLDD set's networks.
        optimizer, lr: label sets under the paper protocol: train the fresh models with ``"sgd"``
            (plain SGD, one constant lr; ``lr`` None: chosen on the validation split from
            :data:`labeldistill.lrsearch.SGD_LRS`) or ``"adam"`` at another ``lr`` (default: the
            set's recipe, Adam 1e-3). The flexibility table's "another optimiser".
        order: label sets under the paper protocol: draw every model's minibatches from stream
            ``order`` of its seed: the same initialisations, another data order.
        label_temperature: label sets: train on ``softmax(log(labels) / t)`` instead of the labels
            (:func:`labeldistill.calibration.temper`; recorded, and part of the saved evaluation's name).
        snapshot: a run directory's validated snapshot instead of its selected set: its number, or
            ``"best-learned"`` (the loop's choice among the learned snapshots, the start candidate left out);
            its labels (images, when learned) and T. Recorded, and ``-snapK`` in the saved evaluation's name.
            A DD / SLDD run directory: ``"checkpoint"``, the set as it stands at the last checkpoint, finished or
            not (:func:`labeldistill.unrolled.run.checkpoint_set`); recorded as ``checkpoint_iteration``, ``-iterN``
            in the saved evaluation's name.
    Example:
        >>> labeldistill.evaluate("runs/mnist-ld", arch="alexnet", steps="+50")["accuracy_mean"]
        >>> labeldistill.evaluate("runs/mnist-dd", variant="first-steps:20")["accuracy_mean"]
    """
    path = Path(path)
    dev = resolve_device(device)
    if str(snapshot) == "checkpoint":  # a DD / SLDD run's set as it stands at its last checkpoint: a long run looked at before it ends
        from .unrolled.run import checkpoint_set

        ds, snapshot = checkpoint_set(path).to(dev), None
    else:
        ds = load(path, device=dev)
    picked = None
    if snapshot is not None:
        if not path.is_dir() or ds.schedule is not None:
            raise UserError("--snapshot picks a validated snapshot of a label-distillation run directory.")
        from .distill.validation import pick_snapshot

        snap, rec = pick_snapshot(path, snapshot, dev)
        ds.labels = snap.labels
        if ds.steps is not None:  # a snapshot of a set without a T has none either (its steps_t is the loop's placeholder)
            ds.steps = snap.steps_t
        if snap.images is not None:
            ds.images = snap.images
        picked = {"number": snap.number, "epoch": snap.epoch, "T": ds.steps, "val_accuracy": rec["val_accuracy"],
                  "asked": str(snapshot)}
    if ds.schedule is None and variant is not None:
        raise UserError(f"--variant applies only to DD / SLDD sets (a learned step schedule); {path} holds a label set.")
    custom = optimizer is not None or lr is not None or order is not None  # the paper protocol, another optimiser / order
    if custom and ds.schedule is not None:
        raise UserError("--optimizer / --lr / --order apply to label sets; a DD / SLDD set trains by its schedule "
                        "(--variant average-lr, shuffle-within, shuffle-across, like-ld).")
    if label_temperature is not None:
        from .calibration import parse_temperature, temper

        label_temperature = parse_temperature(label_temperature, flag="--label-temperature")
        if ds.schedule is not None or ds.learned == "images":
            raise UserError("--label-temperature applies to label sets (learned labels); this set's labels are fixed.")
        if label_temperature == "auto" and custom:
            raise UserError("--label-temperature auto chooses for the set's own training; drop --optimizer / --lr / --order.")
        if label_temperature != "auto":
            ds.labels = temper(ds.labels, float(label_temperature))
    if ds.steps is None:  # labels learned by students trained the test's way: no T was ever measured for them
        from .protocols import canonical_protocol

        protocol = canonical_protocol(protocol or ds.recipe["test_protocol"])
        if protocol == "paper" and (steps is None or not str(steps).strip().isdigit()):
            raise UserError(f"{path}'s labels were learned by students trained under {ds.recipe['test_protocol']} (--method "
                            f"{ds.recipe.get('method')}): they carry no T for the paper protocol; give --steps N (a number of steps).")
    run_dir = path if path.is_dir() else None
    record = read_json(run_dir / "config.json") if run_dir and (run_dir / "config.json").exists() else {}
    run_cfg = record.get("config", {})
    target = target or run_cfg.get("target")
    if target is None:
        raise UserError(f"{path} does not say which data to test on: pass --target (and --data-root).")
    if data_root is None:
        data_root = record.get("data_root")
    seed = seed if seed is not None else run_cfg.get("seed", 0)
    from .protocols import canonical_protocol, get_protocol

    proto = get_protocol(canonical_protocol(protocol))
    if not proto.is_paper:
        if custom:
            raise UserError(f"--optimizer / --lr / --order vary the paper protocol; --protocol {proto.name} fixes its own training.")
        if ds.schedule is not None:
            raise UserError(f"--protocol {proto.name} applies to label sets; a DD / SLDD set trains by its schedule (--variant).")
        return _evaluate_protocol(ds, proto, path, run_dir, run_cfg, arch=arch, head=head, models=models, steps=steps, target=target,
                                  data_root=data_root, device=dev, seed=seed, save=save, progress=progress,
                                  label_temperature=label_temperature, snapshot=picked)
    if ds.schedule is not None:
        return _evaluate_scheduled(ds, path, run_dir, run_cfg, arch=arch, head=head, models=models, steps=steps, target=target,
                                   data_root=data_root, device=dev, seed=seed, save=save, variant=variant, progress=progress)
    models = 20 if models is None else models
    arch = arch or ds.recipe.get("arch", "lenet")
    head = head or ds.recipe.get("head", "linear")
    t = parse_steps(steps, ds.steps)
    size = int(ds.images.shape[-1])
    data = run_target(target, data_root, run_cfg, seed, dev, size)
    if data.num_classes != ds.num_classes:
        raise UserError(f"{target} has {data.num_classes} classes but the distilled labels have {ds.num_classes}.")
    learner = make_learner(arch, int(ds.images.shape[1]), size, ds.num_classes, head=head)
    batch = int(ds.recipe.get("batch_size", min(50, len(ds))))
    train_lr, recipe, how = float(ds.recipe.get("lr", 1e-3)), None, {}
    with float32_precision(bool(run_cfg.get("allow_tf32", False)), bool(run_cfg.get("deterministic", False))) as floats:
        if custom:
            recipe, how = _other_training(learner, ds, data, optimizer=optimizer, lr=lr, order=order, steps=t, seed=seed, batch=batch)
            train_lr = recipe.lr
        if label_temperature == "auto":
            how["label_temperature_choice"] = _choose_label_temperature(ds, data, proto, learner, seed=seed, batch=batch,
                                                                        lr=train_lr, steps=t)
        ev = evaluate_labels(learner, ds.images, ds.labels, data.test.x, data.test.y, steps=t, models=models, seed=seed,
                             batch_size=batch, lr=train_lr, recipe=recipe)
    result = {**ev.to_dict(), "protocol": "paper", "arch": arch, "head": head, "learned": ds.learned, "steps_delta": None if ds.steps is None else t - ds.steps, "distilled_steps": ds.steps,
              "optimizer": recipe.optimizer if recipe else "adam", "lr": train_lr, **how,
              "target": data.name, "seed": seed, "source": str(path), "device": dev, "versions": versions(), "float_settings": floats}
    if label_temperature is not None:
        result["label_temperature"] = _chosen(label_temperature, how)
    if picked is not None:
        result["snapshot"] = picked
    if save and run_dir is not None:
        name = label_evaluation_file(arch, head, t, models, optimizer=optimizer, lr=lr, order=order, label_temperature=label_temperature)
        _save_evaluation(run_dir, name, result, run_cfg)
    return result


def label_evaluation_file(arch: str, head: str, steps: int, models: int, *, optimizer: str | None = None, lr: float | None = None,
                          order: int | None = None, label_temperature: float | None = None) -> str:
    """The file name under ``RUN_DIR/evaluations/`` of a label set's paper-protocol evaluation
    (``lenet-linear-T300-K20.json``; ``...-sgd-lrauto.json`` / ``...-order1.json`` / ``...-temp4.json`` for another
    optimiser / order / label temperature)."""
    name = f"{arch}-{head}-T{steps}-K{models}"
    if optimizer not in (None, "adam") or lr is not None:  # Adam at the set's own lr is the default file
        name += f"-{optimizer or 'adam'}-lr{'auto' if lr is None else f'{lr:g}'}"
    if order is not None:
        name += f"-order{order}"
    return name + _temperature_suffix(label_temperature) + ".json"


def _save_evaluation(run_dir: Path, name: str, result: dict, run_cfg: dict) -> None:
    """Write ``RUN_DIR/evaluations/NAME``; under a seed other than the run's own the name gains ``-seed{N}``: that is
    another measurement and must not overwrite the default one (the file ``reproduce`` reuses)."""
    if int(result["seed"]) != int(run_cfg.get("seed", 0)):
        name = name.removesuffix(".json") + f"-seed{int(result['seed'])}.json"
    if result.get("snapshot") is not None:  # another set than the run's selected one
        name = name.removesuffix(".json") + f"-snap{int(result['snapshot']['number'])}.json"
    atomic_write_json(evaluations_dir(run_dir) / name, result)


def _temperature_suffix(label_temperature: float | str | None) -> str:
    if label_temperature is None:
        return ""
    return f"-temp{label_temperature}" if isinstance(label_temperature, str) else f"-temp{label_temperature:g}"


def _choose_label_temperature(ds, data, proto, learner, *, seed: int, batch: int, lr: float, steps: int, zca=None,
                              ledger: Path | None = None) -> dict:
    """``--label-temperature auto``: choose on the validation split as ``distill --label-temperature auto`` does (the same
    scorer and seeds, so a run's labels get the same choice either way); ``ds.labels`` become the chosen labels."""
    from types import SimpleNamespace

    from .calibration import choose_label_temperature, validation_scorer
    from .seeding import derive_seed

    score = validation_scorer(SimpleNamespace(base_x=ds.images, target=data), proto=proto, student=learner,
                              seed=derive_seed(seed, "label-temperature"), batch=batch, lr=lr, zca=zca, steps=steps,
                              images=ds.images, ledger=ledger)
    ds.labels, record = choose_label_temperature(ds.labels, score)
    return record


def _chosen(label_temperature: float | str, how: dict) -> float:
    return how["label_temperature_choice"]["temperature"] if label_temperature == "auto" else float(label_temperature)


def _other_training(learner, ds, data, *, optimizer: str | None, lr: float | None, order: int | None, steps: int, seed: int,
                    batch: int) -> tuple[TrainRecipe, dict]:
    """The recipe of a paper-protocol evaluation with another optimiser / lr / data order, and what
    to record of it (an SGD lr left open is chosen on the validation split: :func:`labeldistill.lrsearch.choose_lr`)."""
    from .lrsearch import choose_lr

    name = optimizer or "adam"  # TrainRecipe refuses an unknown optimiser or a negative order
    how: dict = {"order": order}
    if lr is None and name == "sgd":
        lr, how["lr_search"] = choose_lr(learner, ds.images, ds.labels, data.val.x, data.val.y, steps=steps, seed=seed, batch=batch,
                                         order=order)
        how["lr_search"] = {f"{k:g}": v for k, v in how["lr_search"].items()}
    elif lr is None:
        lr = float(ds.recipe.get("lr", 1e-3))
    return TrainRecipe(optimizer=name, lr=float(lr), order=order), how


def _evaluate_protocol(ds, proto, path: Path, run_dir: Path | None, run_cfg: dict, *, arch, head, models, steps, target, data_root,
                       device, seed, save, progress: bool = False, label_temperature: float | None = None,
                       snapshot: dict | None = None) -> dict:
    """A label set under a non-paper protocol (SGD, epochs, DSA, ZCA: ``labeldistill.protocols``)."""
    from .models import MODELS, input_size_for
    from .protocols import evaluate_protocol, target_zca

    if head not in (None, "linear"):
        raise UserError(f"--protocol {proto.name} trains standard models (the linear head); drop --head {head}.")
    if steps is not None and proto.epochs is not None:  # the protocol fixes the training length: --steps would be ignored
        raise UserError(f"--steps applies to the paper protocol; --protocol {proto.name} trains for its fixed {proto.epochs} epochs.")
    if proto.needs_kornia and int(ds.images.shape[1]) == 3:
        from .protocols import require_kornia

        require_kornia(f"--protocol {proto.name}")
    arch = MODELS.canonical(arch or proto.arch or ds.recipe.get("arch", "lenet"))
    size = int(ds.images.shape[-1])
    need = input_size_for(arch, size)
    if need is not None and need != size:
        raise UserError(f"{arch} needs {need} px images but the set's are {size} px.")
    t = parse_steps(steps, ds.steps)
    data = run_target(target, data_root, run_cfg, seed, device, size)
    if data.num_classes != ds.num_classes:
        raise UserError(f"{target} has {data.num_classes} classes but the distilled labels have {ds.num_classes}.")
    learner = make_learner(arch, int(ds.images.shape[1]), size, ds.num_classes, head="linear")
    with float32_precision(bool(run_cfg.get("allow_tf32", False)), bool(run_cfg.get("deterministic", False))) as floats:
        zca = target_zca(proto, data, int(ds.images.shape[1]), ds.zca)
        how = {}
        ledger = evaluation_ledger(run_dir) if save and run_dir is not None else None
        batch, lr = int(ds.recipe.get("batch_size", min(50, len(ds)))), float(ds.recipe.get("lr", 1e-3))
        if label_temperature == "auto":
            how["label_temperature_choice"] = _choose_label_temperature(ds, data, proto, learner, seed=seed, batch=batch, lr=lr, steps=t,
                                                                        zca=zca, ledger=ledger)
        ev = evaluate_protocol(proto, learner, ds.images, ds.labels, data.test.x, data.test.y, steps=t, seed=seed, models=models,
                               batch_size=batch, lr=lr, zca=zca, ledger=ledger, progress=progress)
    result = {**ev.to_dict(), "arch": arch, "head": "linear", "learned": ds.learned, "distilled_steps": ds.steps, "target": data.name,
              "seed": seed, "source": str(path), "device": device, "versions": versions(), "float_settings": floats,
              "zca_source": None if zca is None else ("recorded in the set" if ds.zca is not None else "fitted on the target's training split")}
    if label_temperature is not None:
        result.update(label_temperature=_chosen(label_temperature, how), **how)
    if snapshot is not None:
        result["snapshot"] = snapshot
    if save and run_dir is not None:
        name = f"{proto.name}-{arch}-K{result['models']}{_temperature_suffix(label_temperature)}.json"
        _save_evaluation(run_dir, name, result, run_cfg)
    return result


def _evaluate_scheduled(ds, path: Path, run_dir: Path | None, run_cfg: dict, *, arch, head, models, steps, target, data_root, device,
                        seed, save, variant, progress: bool = False) -> dict:
    """A DD / SLDD set: its schedule (or a variant of it) on fresh networks (unrolled.evaluate_set)."""
    from .unrolled import evaluate_set, parse_variant
    from .unrolled.schedule import variant_name

    name = variant_name(*parse_variant(variant))
    if head is not None:
        raise UserError("--head applies to label sets; a DD / SLDD set trains whole networks (like-ld uses the linear head).")
    if steps is not None and not name.startswith("like-ld"):
        raise UserError("--steps applies to DD / SLDD sets only with --variant like-ld; use first-steps:N or extended:K.")
    t = None if steps is None else parse_steps(steps, ds.steps)
    models = int(ds.recipe.get("test_models", 200)) if models is None else int(models)
    if models < 1:
        raise UserError(f"--models must be at least 1, got {models}.")
    size = int(ds.images.shape[-1])
    data = run_target(target, data_root, run_cfg, seed, device, size)
    if data.num_classes != ds.num_classes:
        raise UserError(f"{target} has {data.num_classes} classes but the distilled labels have {ds.num_classes}.")
    if data.preprocessing.channels != int(ds.images.shape[1]):
        raise UserError(f"{target} has {data.preprocessing.channels}-channel images but the set's have {int(ds.images.shape[1])}.")
    iteration = ds.provenance.get("checkpoint_iteration")  # a set read from a checkpoint (evaluate(..., snapshot="checkpoint"))
    # The ledger keeps the finished set's test models; a checkpoint's set is another set, tested in one go.
    ledger = evaluation_ledger(run_dir) if save and run_dir is not None and iteration is None else None
    with float32_precision(bool(run_cfg.get("allow_tf32", False)), bool(run_cfg.get("deterministic", False))) as floats:
        ev = evaluate_set(ds, data, variant=name, arch=arch, models=models, seed=seed, steps=t,
                          group=int(run_cfg.get("test_group", 50)), ledger=ledger, progress=progress)
    result = {**ev, "method": ds.recipe.get("method"), "learned": ds.learned, "distilled_steps": ds.steps, "target": data.name,
              "seed": seed, "source": str(path), "device": device, "versions": versions(), "float_settings": floats}
    if iteration is not None:
        result["checkpoint_iteration"] = int(iteration)
    if save and run_dir is not None:
        tag = name.replace(":", "")
        fixed = f"-T{t}" if t is not None else ""
        at = f"-iter{int(iteration)}" if iteration is not None else ""
        _save_evaluation(run_dir, f"{ev['arch']}-{tag}{fixed}-K{models}{at}.json", result, run_cfg)
    return result
