"""The distilled set: images + labels + how to train on them, in one safe file.

Format (version 2, or 3 for a set without a T): one safetensors file whose tensors are

* ``images``: N x C x H x W float32, normalised with ``preprocessing`` (what models see);
* ``labels``: N x C float32 probabilities;
* ``initial_images`` (optional): N x C x H x W, normalised likewise: learned images before
  learning (a report shows learned against initial);
* ``zca_mean`` / ``zca_matrix`` (optional, with a ``zca`` entry in the document): the ZCA
  whitening the set's evaluation protocol uses (``labeldistill.protocols.ZCA``: fitted on the
  target's training split), so the set means the same thing wherever it is loaded. A set
  without one is written exactly as before; readers before this addition refuse a set with one;

and whose header metadata holds a JSON document with the format version, the number of
training steps T, the preprocessing, class names, the recommended training recipe,
provenance, what was learned (``learned``: "labels", "images" or "images+labels"), how learned
images started (``image_init``: null, "uniform", "real" or "normal") and an optional per-step training
``schedule`` (:class:`Schedule`), plus a SHA-256 over all of it. Nothing is pickled; ``load``
refuses a file whose contents do not match its hash or whose format is newer than this
library, and reads version-1 files (labels for base images: ``learned = "labels"``).

Version 3 differs from 2 in one thing: ``steps`` may be null. A set learned by students trained the test protocol's
way (``--method implicit``) was never selected for a number of the paper protocol's steps; it trains by the fixed
epochs of its recipe's ``test_protocol``, and saying "T = 1" would let a reader train it for one step. Only such a set
is written as version 3 (a set with a T is written byte for byte as before, and readers before version 3 refuse one
without with "upgrade"); version-2 files of such sets (written with the placeholder T = 1 before version 3) are read
with ``steps = None``.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch.utils.data import TensorDataset

from .data import Preprocessing
from .errors import ArtifactError, UserError
from .protocols.zca import ZCA
from .runs.files import atomic_write_bytes
from .runs.tensorstate import content_digest

FORMAT = "labeldistill.distilled-set"
FORMAT_VERSION = 3  # the newest this library reads; a set with a T is still written as version 2 (``written_version``)
FILE_NAME = "distilled.safetensors"
RESULT_FILE = "result.json"
LEARNED = ("labels", "images", "images+labels")
IMAGE_INITS = ("uniform", "real", "normal")  # normal: N(0, 1) in normalised space (DD / SLDD)
SCHEDULE_KINDS = ("per-step",)


@dataclass(frozen=True)
class Schedule:
    """A fixed per-step training schedule (the original DD trains with learned per-step
    learning rates on its images in a fixed order; LD sets have none).

    Args:
        kind: ``"per-step"``: step t uses learning rate ``lrs[t]``.
        lrs: one learning rate per training step (finite, at least 0); T = len(lrs).
        order: None (random minibatches as usual) or, per step, the rows of the set it trains on
            (``labeldistill.unrolled.Schedule.steps``).
        epoch_length: steps per pass over the set, if the schedule repeats one (DD: its distill steps).
    Example:
        >>> Schedule("per-step", lrs=[0.01] * 30, order=[[i % 10] for i in range(30)])
    """

    kind: str
    lrs: tuple[float, ...]
    order: tuple[tuple[int, ...], ...] | None = None
    epoch_length: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise UserError(f"Unknown schedule kind {self.kind!r}. Known: {', '.join(SCHEDULE_KINDS)}.")
        try:
            lrs = tuple(float(v) for v in self.lrs)
            order = None if self.order is None else tuple(tuple(_index(i) for i in rows) for rows in self.order)
        except (TypeError, ValueError, OverflowError) as e:
            raise UserError(f"A schedule needs a list of numbers 'lrs' and a list of index lists 'order' ({e}).") from None
        if not lrs or not all(math.isfinite(v) and v >= 0 for v in lrs):
            raise UserError(f"Schedule learning rates must be a non-empty list of finite numbers >= 0, got {list(self.lrs)!r}.")
        if order is not None and (len(order) != len(lrs) or not all(order)):
            raise UserError(f"A schedule's order needs one non-empty list of rows per step ({len(lrs)} steps), got {len(order)}.")
        if self.epoch_length is not None and (isinstance(self.epoch_length, bool) or not isinstance(self.epoch_length, int)
                                              or not 1 <= self.epoch_length <= len(lrs)):
            raise UserError(f"A schedule's epoch_length must be an integer from 1 to its {len(lrs)} steps, got {self.epoch_length!r}.")
        object.__setattr__(self, "lrs", lrs)
        object.__setattr__(self, "order", order)

    @property
    def steps(self) -> int:
        return len(self.lrs)

    def check(self, n: int, steps: int) -> None:
        """Raise unless the schedule fits a set of ``n`` examples trained for ``steps`` steps."""
        if self.steps != steps:
            raise UserError(f"The schedule has {self.steps} steps but the set says T = {steps}.")
        if self.order is not None and any(not 0 <= i < n for rows in self.order for i in rows):
            raise UserError(f"A schedule's order names rows outside the set's {n} examples.")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "lrs": list(self.lrs), "order": None if self.order is None else [list(r) for r in self.order],
                "epoch_length": self.epoch_length}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schedule:
        if not isinstance(d, dict) or set(d) - {"kind", "lrs", "order", "epoch_length"} or "kind" not in d or "lrs" not in d:
            raise UserError(f"A schedule is an object with 'kind', 'lrs' and optionally 'order' and 'epoch_length', got {d!r}.")
        if not isinstance(d["lrs"], list) or (d.get("order") is not None and not all(isinstance(r, list) for r in d["order"])):
            raise UserError("A schedule's 'lrs' is a list of numbers and its 'order' a list of lists of rows.")
        return cls(d["kind"], d["lrs"], d.get("order"), d.get("epoch_length"))


def _index(i: Any) -> int:
    if isinstance(i, bool) or not isinstance(i, int):
        raise ValueError(f"row {i!r} is not an integer")
    return i


@dataclass
class DistilledSet:
    """N images with labels: real base images with learned soft labels (LD), or learned images.

    Attributes:
        images: N x C x H x W, normalised with ``preprocessing``.
        labels: N x C probabilities over ``class_names``.
        steps: T, the number of training steps the set was selected for; None for a set that has none (labels learned by
            students trained the test's way, ``--method implicit``): it trains by its recipe's ``test_protocol``.
        recipe: how the paper trains on them (optimizer, lr, batch size, arch, head).
        provenance: where the images come from (dataset, indices, licence note; indices are
            None for images learned from uniform noise), and what was learned.
        learned: "labels" (the base images are real), "images" or "images+labels".
        image_init: how learned images started ("uniform" noise, "real" base images, or "normal":
            N(0, 1) in normalised space, as DD / SLDD start), else None.
        initial_images: learned images before learning (normalised), if kept.
        schedule: a fixed per-step training schedule (:class:`Schedule`), if the method has one.
        zca: the ZCA whitening of the set's test protocol (``dc-dsa`` on colour data), if any:
            its ``applied_to_images`` says whether ``images`` are already whitened.
        evaluation: the test result (``distill``'s return, or ``load(RUN_DIR)`` from the run's
            result.json); never saved in the file.
    Example:
        >>> ds = labeldistill.load("runs/mnist-rr")
        >>> loader = torch.utils.data.DataLoader(ds.to_dataset(), batch_size=50, shuffle=True)
    """

    images: torch.Tensor
    labels: torch.Tensor
    steps: int | None
    preprocessing: Preprocessing
    class_names: list[str]
    recipe: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = field(default=None, repr=False, compare=False)  # test result; never saved
    learned: str = "labels"
    image_init: str | None = None
    initial_images: torch.Tensor | None = field(default=None, repr=False)
    schedule: Schedule | None = None
    zca: ZCA | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.learned not in LEARNED:
            raise UserError(f"Unknown learned {self.learned!r}. Known: {', '.join(LEARNED)}.")
        if self.image_init is not None and self.image_init not in IMAGE_INITS:
            raise UserError(f"Unknown image_init {self.image_init!r}. Known: {', '.join(IMAGE_INITS)} (or None).")
        if self.initial_images is not None and tuple(self.initial_images.shape) != tuple(self.images.shape):
            raise UserError(f"initial_images {tuple(self.initial_images.shape)} must have the images' shape {tuple(self.images.shape)}.")
        if self.steps is None:  # what trains it then is its test protocol's fixed epochs
            if self.schedule is not None:
                raise UserError("A set with a per-step schedule has T = the schedule's steps, not None.")
            if self.recipe.get("test_protocol") in (None, "paper"):
                raise UserError("A set without a T (steps None) trains by its recipe's test_protocol (a fixed-epoch protocol "
                                "such as dc-dsa); this recipe names none.")
        if self.schedule is not None:
            self.schedule.check(len(self), int(self.steps))
        if self.zca is not None and tuple(self.zca.shape) != tuple(self.images.shape[1:]):
            raise UserError(f"The ZCA whitens {tuple(self.zca.shape)} images but the set's are {tuple(self.images.shape[1:])}.")

    @property
    def num_classes(self) -> int:
        return int(self.labels.shape[1])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to_dataset(self) -> TensorDataset:
        """A torch Dataset of (image, label distribution) pairs for any training loop."""
        return TensorDataset(self.images, self.labels)

    def to(self, device: str | torch.device) -> DistilledSet:
        initial = None if self.initial_images is None else self.initial_images.to(device)
        return dataclasses.replace(self, images=self.images.to(device), labels=self.labels.to(device), initial_images=initial,
                                   class_names=list(self.class_names), recipe=dict(self.recipe), provenance=dict(self.provenance),
                                   zca=None if self.zca is None else self.zca.to(device))

    # -- file format ------------------------------------------------------------------
    @property
    def written_version(self) -> int:
        """The format version this set is written as: 3 only for a set without a T (its one new field value)."""
        return 2 if self.steps is not None else 3

    def _document(self) -> dict[str, Any]:
        doc = {
            "format": FORMAT, "format_version": self.written_version, "steps": None if self.steps is None else int(self.steps),
            "preprocessing": self.preprocessing.to_dict(), "class_names": list(self.class_names),
            "recipe": self.recipe, "provenance": self.provenance,
            "learned": self.learned, "image_init": self.image_init,
            "schedule": None if self.schedule is None else self.schedule.to_dict(),
        }
        if self.zca is not None:  # only then: a set without one is byte for byte what it was
            doc["zca"] = self.zca.document()
        return doc

    def _tensors(self) -> dict[str, torch.Tensor]:
        out = {"images": self.images, "labels": self.labels}
        if self.initial_images is not None:
            out["initial_images"] = self.initial_images
        if self.zca is not None:
            out.update(self.zca.tensors())
        return {k: t.detach().float().cpu().contiguous() for k, t in out.items()}

    def content_sha256(self) -> str:
        """The hash :meth:`save` writes into the file (and :func:`load` verifies): of the document and every tensor."""
        return content_digest(json.dumps(self._document(), sort_keys=True), self._tensors())

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        tensors = self._tensors()
        doc = json.dumps(self._document(), sort_keys=True)
        meta = {"labeldistill": doc, "sha256": content_digest(doc, tensors)}
        atomic_write_bytes(path, st_save(tensors, metadata=meta))
        return path


def load(path: str | Path, device: str | torch.device = "cpu") -> DistilledSet:
    """Read a distilled set from a run directory or a ``.safetensors`` file, verifying it.

    From a run directory, ``evaluation`` holds the run's test result (its ``result.json``,
    without the config), as ``distill`` returned it.

    Example:
        >>> ds = labeldistill.load("runs/mnist-ld")
        >>> ds.images.shape, ds.labels.shape, ds.steps, ds.learned, ds.evaluation["accuracy_mean"]
    """
    path = Path(path)
    run_dir = path if path.is_dir() else None
    if run_dir is not None:
        path = path / FILE_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if run_dir is not None and (run_dir / "checkpoint.safetensors").is_file():  # a run still going, or stopped
            raise ArtifactError(f"{run_dir} has not finished: no {FILE_NAME} yet, only a checkpoint. Finish it with 'labeldistill "
                                f"distill --resume {run_dir}'; a DD / SLDD run's set so far: 'labeldistill evaluate {run_dir} "
                                "--snapshot checkpoint', 'labeldistill report'.") from None
        raise ArtifactError(f"{path} not found: pass a run directory made by 'labeldistill distill' or an exported file.") from None
    except IsADirectoryError:
        raise ArtifactError(f"{path} is a directory without {FILE_NAME}.") from None
    try:
        tensors = st_load(raw)
        header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
        meta = header["__metadata__"]
        doc_json = meta["labeldistill"]
        doc = json.loads(doc_json)
        version = int(doc["format_version"])
    except (SafetensorError, KeyError, TypeError, ValueError, json.JSONDecodeError, UnicodeDecodeError, OverflowError):
        raise ArtifactError(f"{path} is not a labeldistill distilled-set file (unreadable or truncated).") from None
    if doc.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not a labeldistill distilled-set file (format {doc.get('format')!r}).")
    if version > FORMAT_VERSION:
        raise ArtifactError(f"{path} has format version {version}, newer than this library reads ({FORMAT_VERSION}): upgrade labeldistill.")
    allowed = {"images", "labels"} | ({"initial_images"} if version >= 2 else set())
    has_zca = version >= 2 and isinstance(doc, dict) and doc.get("zca") is not None
    if has_zca:
        allowed |= {"zca_mean", "zca_matrix"}
    if has_zca != ({"zca_mean", "zca_matrix"} <= set(tensors)):
        raise ArtifactError(f"{path} does not match its recorded hash: it is corrupt or was modified.")
    if not {"images", "labels"} <= set(tensors) <= allowed or content_digest(doc_json, tensors) != meta.get("sha256"):
        raise ArtifactError(f"{path} does not match its recorded hash: it is corrupt or was modified.")
    images, labels = tensors["images"], tensors["labels"]
    if images.dim() != 4 or labels.dim() != 2 or images.shape[0] != labels.shape[0]:
        raise ArtifactError(f"{path} holds images {tuple(images.shape)} and labels {tuple(labels.shape)} that do not match.")
    initial = tensors.get("initial_images")
    try:
        pre = Preprocessing.from_dict(doc["preprocessing"])
        # Version 1 knew only labels learned for real base images.
        learned, image_init = (doc["learned"], doc["image_init"]) if version >= 2 else ("labels", None)
        schedule = Schedule.from_dict(doc["schedule"]) if version >= 2 and doc["schedule"] is not None else None
        zca = ZCA.from_parts(doc["zca"], tensors).to(device) if has_zca else None
        recipe = dict(doc.get("recipe", {}))
        steps = None if doc["steps"] is None and version >= 3 else int(doc["steps"])
        if version == 2 and _trained_by_students(recipe):
            steps = None  # written before version 3 with the placeholder T = 1
        ds = DistilledSet(images.to(device), labels.to(device), steps, pre, list(doc["class_names"]),
                          recipe, dict(doc.get("provenance", {})), learned=learned, image_init=image_init,
                          initial_images=None if initial is None else initial.to(device), schedule=schedule, zca=zca)
    except (KeyError, TypeError, ValueError, UserError) as e:
        raise ArtifactError(f"{path} has an invalid field ({e}).") from None
    if run_dir is not None:
        ds.evaluation = _run_result(run_dir)
    return ds


# The methods whose version-2 sets carry the placeholder T = 1: those with students trained the test's way when version 3
# came (session 33). A fixed list, not the strategy registry: it describes files already written; any later such method
# writes version 3.
_V2_STUDENT_METHODS = ("implicit", "ld-implicit")


def _trained_by_students(recipe: dict[str, Any]) -> bool:
    """Whether a version-2 set's labels were learned by students trained the test's way: its T is the placeholder 1."""
    return recipe.get("method") in _V2_STUDENT_METHODS and recipe.get("test_protocol") not in (None, "paper")


def _run_result(run_dir: Path) -> dict[str, Any] | None:
    """The run's test result (result.json without its config), or None for a run without one."""
    try:
        result = json.loads((run_dir / RESULT_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{run_dir / RESULT_FILE} is unreadable ({type(e).__name__}).") from None
    if not isinstance(result, dict):
        raise ArtifactError(f"{run_dir / RESULT_FILE} is not a JSON object.")
    result.pop("config", None)
    return result
