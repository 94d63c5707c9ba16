"""``--format ddranking``: what DD-Ranking's soft-label evaluator reads (``LabelRobustScoreSoft``).

Facts from DD-Ranking 0.2.0's code (NUS-HPC-AI-Lab/DD-Ranking: ``metrics/soft_label.py``,
``utils/data.py``, ``loss/sce.py`` and ``loss/kl.py``):

* ``compute_metrics(image_tensor=torch.load("images.pt"), soft_labels=torch.load("labels.pt"))``
  with ``soft_label_mode="S"`` (one soft label per image);
* the images are ``ipc`` per class in class order (it builds the hard labels as class ``i`` for
  the ``i``-th block of ``ipc``), 3 x 32 x 32, normalised with its CIFAR constants (mean
  0.4914 / 0.4822 / 0.4465, std 0.2023 / 0.1994 / 0.2010, for CIFAR-10 and CIFAR-100) when
  ``use_zca`` is off;
* soft labels are *logits*: its losses take ``softmax(labels / T)`` (T: ``loss_fn_kwargs``'
  temperature). Ours are probabilities ``p``, so we write ``log p`` (clamped at 1e-12): with
  T = 1 the evaluator trains on exactly ``p``; another T sharpens or flattens them.

Only CIFAR-10 / CIFAR-100 sets with class-balanced images whose target classes are known can be
written (DD-Ranking supports CIFAR-10 / CIFAR-100 / TinyImageNet; its loaders are those
datasets'). ``ddranking.json`` beside the tensors says what they are and how to call the evaluator.
The images leave unwhitened: DD-Ranking fits its own ZCA when asked (``use_zca``).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..artifact import DistilledSet
from ..errors import UserError
from ..runs.files import atomic_write_bytes
from . import register_format

MEAN = (0.4914, 0.4822, 0.4465)  # DD-Ranking's CIFAR-10 / CIFAR-100 normalisation (utils/data.py)
STD = (0.2023, 0.1994, 0.2010)
DATASETS = {10: "CIFAR10", 100: "CIFAR100"}
LOG_FLOOR = 1e-12


def image_classes(ds: DistilledSet) -> torch.Tensor:
    """The target class of each image: the base images' true classes, or the fixed one-hot labels of learned images."""
    prov = ds.provenance or {}
    if prov.get("base_labels") is not None and not prov.get("cross_dataset"):
        return torch.as_tensor(prov["base_labels"], dtype=torch.long)
    if ds.learned == "images":  # fixed one-hot labels: their class
        return ds.labels.argmax(-1)
    raise UserError("DD-Ranking reads images per class, in class order; this set's images have no known target class "
                    "(a cross-dataset base set, or learned images without their classes).")


def to_ddranking(ds: DistilledSet) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(images, logits, description) in DD-Ranking's layout: class-major, its normalisation, log-probabilities."""
    c, h, w = (int(v) for v in ds.images.shape[1:])
    if (c, h, w) != (3, 32, 32) or ds.num_classes not in DATASETS:
        raise UserError(f"DD-Ranking's soft-label evaluation takes CIFAR-10 / CIFAR-100 sets (3 x 32 x 32, 10 or 100 classes); "
                        f"this one has {c} x {h} x {w} images and {ds.num_classes} classes.")
    classes = image_classes(ds)
    counts = torch.bincount(classes, minlength=ds.num_classes)
    ipc = int(counts[0])
    if not bool((counts == ipc).all()) or ipc < 1:
        raise UserError(f"DD-Ranking needs the same number of images per class (ipc); this set has {counts.tolist()}.")
    order = torch.sort(classes, stable=True).indices  # class-major, each class in the set's own order
    pixels = ds.preprocessing.denormalise(ds.images.float())
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    images = ((pixels - mean) / std)[order].contiguous()
    logits = ds.labels.float().clamp_min(LOG_FLOOR).log()[order].contiguous()
    doc = {
        "format": "ddranking-soft-label", "dataset": DATASETS[ds.num_classes], "ipc": ipc, "images": list(images.shape),
        "order": [int(i) for i in order],  # row r of the files is row order[r] of the distilled set
        "normalisation": {"mean": list(MEAN), "std": list(STD), "use_zca": False},
        "labels": f"log-probabilities (log p, p clamped at {LOG_FLOOR}): DD-Ranking trains on softmax(labels / T); "
                  "T = 1 reproduces the distilled labels exactly",
        "call": "LabelRobustScoreSoft(dataset=..., ipc=ipc, soft_label_mode='S', soft_label_criterion='sce', "
                "loss_fn_kwargs={'temperature': 1.0, 'scale_loss': False}, use_zca=False, ...).compute_metrics("
                "image_tensor=torch.load('images.pt'), soft_labels=torch.load('labels.pt'))",
        "learned": ds.learned, "steps": ds.steps, "recipe": ds.recipe, "source": "labeldistill export --format ddranking",
    }
    return images, logits, doc


@register_format("ddranking")
def write(ds: DistilledSet, out: str | Path) -> tuple[Path, list[str]]:
    """Write OUT/images.pt, OUT/labels.pt (plain tensors: ``torch.load(..., weights_only=True)`` reads them) and OUT/ddranking.json."""
    import io

    images, logits, doc = to_ddranking(ds)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--format ddranking writes a folder; {out} is a file.")
    out.mkdir(parents=True, exist_ok=True)
    for name, t in (("images.pt", images), ("labels.pt", logits)):
        buf = io.BytesIO()
        torch.save(t, buf)
        atomic_write_bytes(out / name, buf.getvalue())
    atomic_write_bytes(out / "ddranking.json", (json.dumps(doc, indent=1) + "\n").encode())
    return out, [f"wrote {out}/images.pt, labels.pt, ddranking.json: {doc['dataset']}, ipc {doc['ipc']}, images class-major in "
                 "DD-Ranking's normalisation, labels as log-probabilities (its softmax with temperature 1 gives ours back)"]
