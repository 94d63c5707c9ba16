"""How a teacher trains: its settings, the named recipes, its early-stop rule, the default architecture, and which of
its epochs may label (``--teacher-epoch``)."""
from __future__ import annotations

from dataclasses import dataclass

from ..engine.augment import DSAParams
from ..engine.recipe import TrainRecipe
from ..errors import UserError


@dataclass(frozen=True)
class TeacherConfig:
    """How a teacher trains: minibatches of ``batch_size`` over the whole training split, at most ``epochs`` epochs,
    keeping the epoch of best validation accuracy and stopping ``patience`` epochs after it; by ``optimizer``
    (``"adam"`` or ``"sgd"``) at ``lr`` with ``momentum`` (SGD), on the images as they are (``augment="none"``) or
    on per-sample DSA views (``"dsa"``, no flips for one-channel images). :data:`TEACHER_RECIPES` names two ways."""

    arch: str
    seed: int = 0
    epochs: int = 30
    patience: int = 3
    batch_size: int = 256
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.0
    augment: str = "none"

    def __post_init__(self) -> None:
        if self.augment not in ("none", "dsa"):
            raise UserError(f"A teacher trains on images as they are (none) or on DSA views (dsa); got {self.augment!r}.")
        self.train_recipe(3)  # the engine's own checks of the optimiser, lr and momentum, now rather than at training

    def train_recipe(self, channels: int) -> TrainRecipe:
        """The engine's :class:`TrainRecipe` of this training, for images with ``channels`` channels."""
        dsa = None if self.augment == "none" else DSAParams().for_channels(channels)
        return TrainRecipe(optimizer=self.optimizer, lr=self.lr, momentum=self.momentum, epochs=self.epochs, augmentation=dsa)


# How a teacher trains, by name (``--teacher-recipe``). "adam": the default, a cheap teacher (Adam, no augmentation).
# "expert": the expert of MTT's buffer.py as Qin et al. 2024 train it for their CIFAR-10 labels (train_expert/buffer.py
# and softlabel/sample_scripts.md of sunnytqin/no-distillation): plain SGD (no momentum, no weight decay) at lr 1e-3,
# minibatches of 256, DSA views (color_crop_cutout_flip_scale_rotate), on ZCA-whitened images where the protocol
# whitens; its labelling epoch is then chosen by the students (--teacher-epoch auto). Slow to converge by design: give
# it --teacher-epochs (Qin et al.'s CIFAR-10 expert ran 400; its 1-image-a-class labels came from epoch 20).
TEACHER_RECIPES: dict[str, dict] = {
    "adam": {"optimizer": "adam", "lr": 1e-3, "momentum": 0.0, "augment": "none"},
    "expert": {"optimizer": "sgd", "lr": 1e-3, "momentum": 0.0, "augment": "dsa"},
}
_ADDED_FIELDS = ("optimizer", "momentum", "augment")  # added in session 38: in a teacher's key only where not the default


def check_teacher_recipe(recipe: str, lr: float | None = None) -> None:
    """A one-line error for an unknown recipe or a bad lr, before any work is done."""
    teacher_config("any", seed=0, epochs=1, patience=1, recipe=recipe, lr=lr)


def teacher_config(arch: str, *, seed: int, epochs: int, patience: int, recipe: str = "adam",
                   lr: float | None = None) -> TeacherConfig:
    """The :class:`TeacherConfig` of a named recipe (:data:`TEACHER_RECIPES`), its lr replaced by ``lr`` when given."""
    if recipe not in TEACHER_RECIPES:
        raise UserError(f"Unknown teacher recipe {recipe!r}. Known: {', '.join(TEACHER_RECIPES)}.")
    way = dict(TEACHER_RECIPES[recipe])
    if lr is not None:
        way["lr"] = float(lr)
    return TeacherConfig(arch=arch, seed=seed, epochs=epochs, patience=patience, **way)


def _stops_by(curve: dict[int, float], patience: int) -> int | None:
    """The epoch at which a training of this validation ``curve`` stops for ``patience`` (``patience`` epochs after its
    first best: a tie is no improvement), or None where it would not stop within it. ``_train_teacher``'s observer
    asks it after each epoch, and :func:`_shorter_teacher` of a finished teacher's curve, so both follow one rule."""
    best_epoch, best_val = 0, float("-inf")
    for e in sorted(curve):
        if curve[e] > best_val:
            best_epoch, best_val = e, curve[e]
        if e - best_epoch >= patience:
            return e
    return None


def default_teacher_arch(target_name: str, channels: int, image_size: int) -> str:
    """The teacher's architecture when none is given: the target's default (LeNet for digits, AlexCifarNet for colour), under
    every protocol, where it takes the images at the size they are loaded (else ConvNet-3, which takes any size from 8 px).
    A cheap teacher by default: on one core of our 2-core CPU an MNIST epoch (50,000 images, minibatches of 256) takes 9 s
    with LeNet and about 110 s with ConvNet-3 (session 45; 570 s with the code of session 9), so the field's ConvNet-3
    expert (``--teacher-arch convnet3``, 32 epochs) costs an hour there, LeNet minutes (docs/design-notes.md, "Teacher labels")."""
    from ..models import input_size_for
    from ..paper_defaults import default_arch

    arch = default_arch(target_name, channels)
    need = input_size_for(arch, image_size)
    return arch if need is None or need == image_size else "convnet3"


# The teacher epochs epoch="auto" scores (those trained, plus the best validation epoch): Qin et al.'s experts label
# best early in their training, well before their best accuracy, so the grid is dense early and sparse late.
TEACHER_EPOCHS = (1, 2, 4, 8, 16, 32, 64)


def parse_teacher_epoch(value: object, flag: str = "--teacher-epoch") -> int | str:
    """``"best"`` (the epoch of best validation accuracy, the default), ``"auto"`` (chosen by the students it labels,
    on the validation split) or a positive epoch number."""
    if isinstance(value, str) and value.strip().lower() in ("best", "auto"):
        return value.strip().lower()
    try:
        e = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        e = 0
    if e < 1 or (isinstance(value, float) and value != e):
        raise UserError(f"{flag} must be best, auto or a positive epoch number, got {value!r}.")
    return e
