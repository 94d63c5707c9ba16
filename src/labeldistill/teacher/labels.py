"""The teacher's soft labels of the base images, ``softmax(logits / temperature)``, with the temperature and the
labelling epoch given or chosen on the validation split by the students they train."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from ..calibration import TEMPERATURES, choose_best, choose_temperature, grid_edge, validation_scorer
from ..engine import Learner, ModelState, predict
from ..errors import UserError
from . import config  # config.TEACHER_EPOCHS read at call time: one setting for the training and the labels
from .config import default_teacher_arch, parse_teacher_epoch, teacher_config
from .train import train_teacher, train_teacher_epochs


def teacher_labels(learner: Learner, state: ModelState, x: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``softmax(teacher(x) / temperature)``: N x C probability vectors (float32)."""
    if not temperature > 0:
        raise UserError(f"--temperature must be positive, got {temperature}.")
    return torch.softmax(predict(learner, state, x)[0].float() / temperature, dim=-1)


def teacher_soft_labels(problem, *, proto, zca, student: Learner, seed: int, arch: str | None, epochs: int, patience: int,
                        temperature: float | str, batch: int, lr: float, ledger: Path | None = None,
                        grid: tuple[float, ...] = TEMPERATURES, epoch: int | str = "best",
                        progress: bool = False, recipe: str = "adam", teacher_lr: float | None = None
                        ) -> tuple[torch.Tensor, dict]:
    """The teacher's soft labels for ``problem``'s base images, and a record (the teacher's, the temperature and,
    with ``"auto"``, every candidate's validation accuracy).

    ``proto``: the protocol the labels will be tested under (it decides how a temperature is scored);
    ``arch``: the teacher's architecture (None: :func:`default_teacher_arch`);
    ``zca``: its whitening (the teacher trains and labels whitened images); ``student``: the learner
    scored (linear head); ``batch`` / ``lr``: the student's minibatch size and lr under the paper protocol;
    ``ledger``: a folder where the temperature choice under a fixed-epoch protocol keeps each finished student
    (:class:`~labeldistill.runs.ledger.ModelLedger`), so an interrupted choice resumes;
    ``grid``: the temperatures ``"auto"`` scores (a check beyond the default grid's end:
    ``studies/temperature_beyond_grid.py``);
    ``epoch``: which of the teacher's weights label: ``"best"`` (its best validation accuracy), an epoch number, or
    ``"auto"``: the epoch whose labels train the best student (Qin et al.'s early-stopped expert), scored like a
    temperature on :data:`TEACHER_EPOCHS` (those trained) and the best epoch. With both ``"auto"``, one coordinate
    step each: the temperature at the best epoch (the students ``epoch="best"`` trains, which the ledger keeps), the
    epoch at that temperature, then the temperature again at the chosen epoch where it is another.
    ``progress``: bars over the teacher's epochs and each validation student's training.
    ``recipe`` / ``teacher_lr``: how the teacher trains (:data:`TEACHER_RECIPES`; its lr, else the recipe's).
    """
    target = problem.target
    arch = arch or default_teacher_arch(target.name, target.preprocessing.channels, int(target.train.x.shape[-1]))
    cfg = teacher_config(arch, seed=seed, epochs=epochs, patience=patience, recipe=recipe, lr=teacher_lr)
    epoch = parse_teacher_epoch(epoch)
    if epoch == "best":
        t_learner, t_state, teacher = train_teacher(target, cfg, zca=zca, progress=progress)
        states = {int(teacher["best_epoch"]): t_state}
    else:
        # The grid ``auto`` scores, and an epoch asked for by number (kept with them, for later requests).
        wanted = set(config.TEACHER_EPOCHS) | ({epoch} if isinstance(epoch, int) else set())
        t_learner, states, teacher = train_teacher_epochs(target, cfg, zca=zca, progress=progress, epochs=wanted)
        if isinstance(epoch, int) and epoch not in states:
            raise UserError(f"--teacher-epoch {epoch}: the teacher trained {max(states)} epochs (it stops {patience} after its "
                            f"best, epoch {teacher['best_epoch']}; --teacher-patience lets it go on).")
    bx = problem.base_x if zca is None else zca.apply(problem.base_x)
    logits_at = lambda e: predict(t_learner, states[e], bx)[0].float()  # noqa: E731
    best_epoch = int(teacher["best_epoch"])
    chosen = best_epoch if epoch in ("best", "auto") else int(epoch)
    record: dict = {"teacher": teacher}
    score = None
    if temperature == "auto" or epoch == "auto":
        score = validation_scorer(problem, proto=proto, student=student, seed=seed, batch=batch, lr=lr, zca=zca, ledger=ledger,
                                  progress=progress)

    def choose_t(e: int) -> tuple[float, dict]:
        t0 = time.perf_counter()
        t, scores = choose_temperature(logits_at(e), score, grid)  # type: ignore[arg-type]
        return t, {"grid": list(grid), "val_accuracy": scores, "chosen": t, "at_grid_edge": grid_edge(t, scores, grid),
                   "seconds": round(time.perf_counter() - t0, 3),
                   "how": "one student per temperature on the validation split, trained as the test trains",
                   **({} if epoch == "best" else {"epoch": e})}

    if temperature == "auto":
        temperature, record["temperature_choice"] = choose_t(chosen)
    if epoch == "auto":
        t0 = time.perf_counter()
        candidates = sorted({e for e in config.TEACHER_EPOCHS if e in states} | {best_epoch})  # the earliest wins ties
        chosen, scores = choose_best(candidates, lambda e: score(torch.softmax(logits_at(e) / float(temperature), dim=-1)))  # type: ignore[misc, arg-type]
        record["epoch_choice"] = {"grid": candidates, "val_accuracy": scores,
                                  "chosen": chosen, "temperature": float(temperature),  # type: ignore[arg-type]
                                  "seconds": round(time.perf_counter() - t0, 3),
                                  "how": "one student per teacher epoch on the validation split, trained as the test trains"}
        if "temperature_choice" in record and chosen != best_epoch:  # the temperature again, for the epoch chosen
            record["temperature_choice_at_best_epoch"] = record["temperature_choice"]
            temperature, record["temperature_choice"] = choose_t(chosen)
    if epoch != "best":  # (records of the default keep their shape: the best epoch is the teacher record's)
        record["epoch"] = chosen
    record["temperature"] = float(temperature)  # type: ignore[arg-type]
    return torch.softmax(logits_at(chosen) / float(temperature), dim=-1), record  # type: ignore[arg-type]
