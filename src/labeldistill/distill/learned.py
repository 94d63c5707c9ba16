"""What the online loop learns (``--learn``): the labels, the images, or both.

The paper learns labels for fixed real images (LD), and for comparison uses the same online
loop to learn images with fixed one-hot labels ("our DD", Appendix C, Tables 4 and 17).
Each choice is a registry entry naming one class per part of the synthetic set
(:mod:`.images`, :mod:`.labels`); the loop and the strategies only see a
:class:`SyntheticSet` and the :class:`~.strategies.base.Wrt` it asks gradients for.

=================  =============================  ====================================  ===========
``learn``          images                          labels                                image init
=================  =============================  ====================================  ===========
``labels``         the base images (fixed)         learned, uniform 1/C at the start     --
``images``         learned pixels, Adam 1e-3        one-hot, fixed                        ``uniform``
``images+labels``  learned pixels, Adam 1e-3        learned, uniform 1/C at the start     ``real``
=================  =============================  ====================================  ===========

Image initialisation (``image_init``): ``uniform`` draws every pixel uniformly in [0, 1]
(the original DD's random start; the seed's own ``synthetic-images`` stream); ``real`` starts
from the base images (the run's usual base set, un-normalised to pixel space). Fixed labels
are classes in turn (image i has class i % C, N / C per class) except for ``real`` images of
the target's own dataset, which keep their true classes (the base set is class-balanced).
Cross-dataset base images have no target class, so they get classes in turn as well.
Why ``images+labels`` starts from real images: with uniform labels *and* noise images
nothing tells one class from another at the start; from real images it is LD with the
images free to move as well. Either default can be overridden with ``--image-init``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..problem import Problem
from ..registry import Registry
from ..seeding import torch_generator
from .images import FixedImages, LearnedImages
from .labels import LABEL_PARAMS, FixedLabels
from .quantity import Quantity
from .strategies.base import StepOutput, Wrt

IMAGE_INITS = ("uniform", "real")
IMAGE_RESET_WINDOW = 50  # the paper's window for its image distillation, whatever the dataset and N
# Adam lr of learned images by their start: the paper's 1e-3 from uniform noise; 1e-4 when refining the real base
# images, where 1e-3 rewrites them and loses 5 points on MNIST-100 (chosen on validation; docs/results.md, session 7).
IMAGE_LRS = {"uniform": 1e-3, "real": 1e-4}


def default_image_lr(image_init: str | None) -> float:
    """The image lr a run uses when none is given (``IMAGE_LRS``; 1e-3 when no images are learned: unused)."""
    return IMAGE_LRS.get(image_init or "uniform", IMAGE_LRS["uniform"])


@dataclass(frozen=True)
class LearnSpec:
    """A ``--learn`` choice: whether the images and the labels are learned, and the default image init."""

    name: str
    images: bool
    labels: bool
    default_image_init: str | None


LEARN: Registry[LearnSpec] = Registry("learned quantity")


def register_learn(name: str, *, images: bool, labels: bool, default_image_init: str | None) -> LearnSpec:
    spec = LearnSpec(name, images, labels, default_image_init)
    LEARN.register(name)(spec)
    return spec


register_learn("labels", images=False, labels=True, default_image_init=None)
register_learn("images", images=True, labels=False, default_image_init="uniform")
register_learn("images+labels", images=True, labels=True, default_image_init="real")


def list_learn() -> list[str]:
    return LEARN.names()


@dataclass
class SyntheticSet:
    """The set the loop distils: images and labels, each learned or fixed."""

    images: Quantity
    labels: Quantity
    learn: str
    image_init: str | None

    @property
    def wrt(self) -> Wrt:
        return Wrt(images=self.images.learned, labels=self.labels.learned)

    @property
    def learns_images(self) -> bool:
        return self.images.learned

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The inner minibatch ``rows`` as models see it: (normalised images, label distributions)."""
        return self.images.batch(rows), self.labels.batch(rows)

    def step(self, rows: torch.Tensor, out: StepOutput) -> None:
        """Update every learned part from the step's meta-gradients."""
        self.images.step(rows, out.image_grad)
        self.labels.step(rows, out.label_grad)

    @staticmethod
    def monitored_grad(out: StepOutput) -> torch.Tensor:
        """The meta-gradient whose variance the step records: the labels' when learned, else the images'."""
        return out.grads()[0]

    def initial_images(self) -> torch.Tensor | None:
        """The learned images before learning (normalised), None when the images are the fixed base images."""
        return self.images.initial if isinstance(self.images, LearnedImages) else None

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [*self.images.optimizers(), *self.labels.optimizers()]

    def state_dict(self) -> dict[str, Any]:
        return {**self.images.state_dict(), **self.labels.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.images.load_state_dict(state)
        self.labels.load_state_dict(state)

    def provenance(self) -> dict[str, Any]:
        """What was learned and how the images started (recorded with the distilled set)."""
        return {"learned": self.learn, "image_init": self.image_init}


def build_synthetic(learn: str, problem: Problem, *, seed: int, image_init: str | None = None, label_lr: float = 1e-3,
                    image_lr: float | None = None, device: str | torch.device = "cpu", initial_labels: torch.Tensor | None = None,
                    label_param: str = "probabilities") -> SyntheticSet:
    """The synthetic set of a run at its start.

    Args:
        learn: a :func:`list_learn` choice.
        problem: the target and the base images.
        seed: the run seed (uniform images come from its ``synthetic-images`` stream).
        image_init: ``uniform`` or ``real``; None: the choice's default.
        image_lr: Adam lr of learned images; None: :func:`default_image_lr` of their start.
        initial_labels: where learned labels start (:mod:`.label_init`); None: uniform 1/C.
        label_param: what Adam steps for learned labels: "probabilities" (the paper's) or "logits" (:class:`.labels.LogitLabels`).
    """
    spec = LEARN.get(learn)
    t = problem.target
    init = (image_init or spec.default_image_init) if spec.images else None
    images: Quantity
    labels: Quantity
    if spec.images:
        lr = default_image_lr(init) if image_lr is None else image_lr
        images = LearnedImages(initial_pixels(init, problem, seed), t.preprocessing, lr=lr, device=device)
    else:
        images = FixedImages(problem.base_x)
    if spec.labels:
        labels = LABEL_PARAMS[label_param](problem.n_base, t.num_classes, lr=label_lr, device=device, init=initial_labels)
    else:
        own = init == "real" and not problem.cross_dataset
        classes = problem.base_y.cpu() if own else FixedLabels.balanced(problem.n_base, t.num_classes)
        labels = FixedLabels(classes, t.num_classes, device=device)
    return SyntheticSet(images, labels, spec.name, init)


def initial_pixels(init: str | None, problem: Problem, seed: int) -> torch.Tensor:
    """N x C x H x W starting images in pixel space [0, 1]."""
    if init == "uniform":
        # Drawn on the CPU from the run's own stream: the same images on every device.
        g = torch_generator(seed, "synthetic-images")
        return torch.rand(tuple(problem.base_x.shape), generator=g, dtype=torch.float32)
    if init == "real":
        return problem.target.preprocessing.denormalise(problem.base_x.detach())
    raise ValueError(f"Unknown image init {init!r}. Known: {', '.join(IMAGE_INITS)}.")
