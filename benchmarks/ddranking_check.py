"""Check ``labeldistill export --format ddranking`` with the real DD-Ranking package (not in CI, not
a dependency: run it in an environment with ``pip install ddranking==0.2.0``, which brings
torchvision, timm, pandas and scipy).

Usage:
    python benchmarks/ddranking_check.py EXPORT_DIR [--full --data-root DIR --epochs 20]

Always (seconds, CPU): DD-Ranking's own ``TensorDataset`` / ``DataLoader`` read the exported files,
and its soft-label losses (``SoftCrossEntropyLoss`` and ``KLDivergenceLoss`` at temperature 1)
on a student's outputs equal the soft cross-entropy / KL divergence against the distilled labels
``p`` (our labels are probabilities; the export writes ``log p`` as logits). Prints one JSON line.

``--full``: its ``LabelRobustScoreSoft`` end to end (HLR, IOR, LRS) on the export, with an offline
shim for its data loading (its ``get_dataset`` downloads CIFAR through torchvision; the shim hands
it our CIFAR-10 npz files in its normalisation) and a ConvNet-3 teacher trained here in its format
(``--teacher-epochs``). Short schedules (``--epochs``) make it a smoke run, labelled as such; the
field's setting (300 epochs, 5 evaluations) wants a GPU.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F


class _IntKeys(dict):
    def __getitem__(self, key):
        return super().__getitem__(int(key))


def check_losses(export: Path) -> dict:
    from ddranking.loss import KLDivergenceLoss, SoftCrossEntropyLoss
    from ddranking.utils import TensorDataset

    images = torch.load(export / "images.pt", weights_only=True)
    logits = torch.load(export / "labels.pt", weights_only=True)
    doc = json.loads((export / "ddranking.json").read_text())
    data = TensorDataset(images, logits)
    loader = torch.utils.data.DataLoader(data, batch_size=len(data), shuffle=False)
    xb, yb = next(iter(loader))
    assert torch.equal(xb, images) and torch.equal(yb, logits), "DD-Ranking's loader changed the tensors"
    p = torch.softmax(logits.double(), -1)
    g = torch.Generator().manual_seed(0)
    student = torch.randn(len(data), logits.shape[1], generator=g, dtype=torch.float64)
    sce = SoftCrossEntropyLoss(temperature=1.0, scale_loss=False)(student, logits.double())
    ours_ce = -(p * F.log_softmax(student, -1)).sum(-1).mean()
    kl = KLDivergenceLoss(temperature=1.0, scale_loss=False)(student, logits.double())
    ours_kl = (p * (p.clamp_min(1e-300).log() - F.log_softmax(student, -1))).sum(-1).mean()
    ipc = doc["ipc"]
    hard = torch.arange(logits.shape[1]).repeat_interleave(ipc)  # DD-Ranking's hard labels for the blocks
    return {"images": list(images.shape), "ipc": ipc, "dataset": doc["dataset"],
            "sce_ddranking": float(sce), "sce_ours": float(ours_ce), "sce_diff": abs(float(sce - ours_ce)),
            "kl_ddranking": float(kl), "kl_ours": float(ours_kl), "kl_diff": abs(float(kl - ours_kl)),
            "argmax_matches_block_class": float((p.argmax(-1) == hard).double().mean())}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export", type=Path, help="a folder written by labeldistill export --format ddranking")
    ap.add_argument("--full", action="store_true", help="also run LabelRobustScoreSoft end to end (see the module docstring)")
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--teacher-epochs", type=int, default=1)
    ap.add_argument("--full-data-acc", type=float, default=None,
                    help="ConvNet-3's accuracy on all of CIFAR-10 (its HLR needs it; DD-Ranking 0.2.0 caches it only for "
                         "ImageNet / TinyImageNet). Default: let it train one (eval_full_data, a GPU job)")
    args = ap.parse_args(argv)
    try:
        import ddranking
    except ImportError:
        sys.exit("this check needs DD-Ranking: pip install ddranking==0.2.0 (in its own environment)")
    out = {"ddranking": getattr(ddranking, "__version__", "0.2.0"), "torch": torch.__version__, **check_losses(args.export)}
    out["losses_agree"] = out["sce_diff"] < 1e-9 and out["kl_diff"] < 1e-9
    if args.full:
        out["full"] = full_run(args)
    print(json.dumps(out))
    return out


def full_run(args: argparse.Namespace) -> dict:
    """LabelRobustScoreSoft on the export with our CIFAR-10 files behind its data loading (smoke settings)."""
    import numpy as np
    import ddranking.metrics.soft_label as sl
    from ddranking.utils import build_model

    export = args.export
    doc = json.loads((export / "ddranking.json").read_text())
    mean, std = torch.tensor(doc["normalisation"]["mean"]).view(1, 3, 1, 1), torch.tensor(doc["normalisation"]["std"]).view(1, 3, 1, 1)

    def tensors(name: str) -> torch.utils.data.TensorDataset:
        d = np.load(Path(args.data_root) / f"cifar10_{name}.npz")
        x = (torch.from_numpy(d["x"]).permute(0, 3, 1, 2).float() / 255 - mean) / std
        ds = torch.utils.data.TensorDataset(x, torch.from_numpy(d["y"]).long())
        ds.targets = [int(v) for v in d["y"]]  # torchvision's CIFAR10 attribute, which it reads
        return ds

    train, test = tensors("train"), tensors("test")

    def offline_get_dataset(dataset, data_path, im_size, use_zca, custom_val_trans, device):  # its signature, its tuple
        ident = {i: i for i in range(10)}
        return 3, (32, 32), doc["normalisation"]["mean"], doc["normalisation"]["std"], 10, train, test, test, ident, ident

    sl.get_dataset = offline_get_dataset
    real_random = sl.get_random_data_tensors

    def random_tensors(dataset_name, dataset, class_to_indices, ipc, eval_iter, saved_path=None):
        # DD-Ranking 0.2.0's soft_label.py calls this without its class_map argument (utils/data.py takes
        # (name, dataset, class_to_indices, ipc, class_map, eval_iter, saved_path)): pass the identity map.
        # (Our tensor datasets give 0-dim label tensors where torchvision's give ints: the map takes either.)
        return real_random(dataset_name, dataset, class_to_indices, ipc, _IntKeys({i: i for i in range(10)}), eval_iter, saved_path)

    sl.get_random_data_tensors = random_tensors
    if args.full_data_acc is not None:  # its cache of full-data accuracies, in place (sl imported the same dict)
        sl.REAL_DATA_ACC_CACHE["CIFAR10-ConvNet-3"] = args.full_data_acc
    teacher_dir = export / "teacher"
    (teacher_dir / "CIFAR10" / "ConvNet-3").mkdir(parents=True, exist_ok=True)  # its get_pretrained_model_path layout
    ckpt = teacher_dir / "CIFAR10" / "ConvNet-3" / "ckpt_best.pt"
    if not ckpt.exists():  # a teacher in its format (a state dict of its ConvNet-3), trained here once
        teacher = build_model(model_name="ConvNet-3", num_classes=10, im_size=(32, 32), pretrained=False, use_torchvision=False, device="cpu")
        opt = torch.optim.SGD(teacher.parameters(), lr=0.01, momentum=0.9)
        loader = torch.utils.data.DataLoader(train, batch_size=256, shuffle=True, generator=torch.Generator().manual_seed(0))
        for _ in range(args.teacher_epochs):
            for x, y in loader:
                opt.zero_grad()
                F.cross_entropy(teacher(x), y).backward()
                opt.step()
        torch.save(teacher.state_dict(), ckpt)
    metric = sl.LabelRobustScoreSoft(dataset="CIFAR10", real_data_path=str(args.data_root), ipc=doc["ipc"], model_name="ConvNet-3",
                                     soft_label_criterion="sce", loss_fn_kwargs={"temperature": 1.0, "scale_loss": False},
                                     data_aug_func=None, soft_label_mode="S", num_eval=1, num_epochs=args.epochs, use_zca=False,
                                     step_size=max(1, args.epochs // 2),  # its "step" scheduler needs it: lr x 0.1 at half, as DC
                                     random_data_format="tensor", random_data_path=str(export / "random"), save_path=str(export / "scores.csv"),
                                     teacher_dir=str(teacher_dir), teacher_model_names=["ConvNet-3"], num_workers=0, device="cpu",
                                     eval_full_data=args.full_data_acc is None)
    # DD-Ranking 0.2.0's soft-label mode "S" labels its random baseline with self.teacher_model
    # (metrics/soft_label.py, _generate_soft_labels), which it never sets (it builds self.teacher_models).
    metric.teacher_model = metric.teacher_models[0]
    images = torch.load(export / "images.pt", weights_only=True)
    labels = torch.load(export / "labels.pt", weights_only=True)
    result = metric.compute_metrics(image_tensor=images, soft_labels=labels)
    return {"epochs": args.epochs, "teacher_epochs": args.teacher_epochs, "full_data_acc": args.full_data_acc,
            "note": "smoke settings, not the field's",
            "result": {k: float(v) for k, v in (result or {}).items()} if isinstance(result, dict) else str(result)}


if __name__ == "__main__":
    main()
