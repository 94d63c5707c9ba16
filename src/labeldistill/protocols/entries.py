"""The registered evaluation protocols, one entry each."""
from __future__ import annotations

from ..engine.augment import DSAParams
from ._base import Protocol, register_protocol

PAPER = register_protocol(Protocol(
    name="paper",
    description="the paper's: Adam (lr 1e-3, or the set's own), T random minibatches of N_i (T and N_i from the set), "
                "no augmentation, 20 models",
    models=20,
    references=("Bohdal, Yang & Hospedales 2020, Flexible Dataset Distillation: Learn Labels Instead of Images",),
))

DC = register_protocol(Protocol(
    name="dc",
    description="DatasetCondensation's: ConvNet-3, SGD (lr 0.01, momentum 0.9, weight decay 5e-4), minibatches of 256, "
                "300 epochs, lr x 0.1 from epoch 150, no augmentation, soft cross-entropy, 5 models",
    optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4, epochs=300, batch_size=256,
    lr_decay_at=(0.5,), reset_momentum_at_decay=True, models=5, arch="convnet3", search_steps=False,
    references=("Zhao, Mopuri & Bilen 2021, Dataset Condensation with Gradient Matching (evaluate_synset)",),
))

DC_DSA = register_protocol(Protocol(
    name="dc-dsa",
    description="DSA / MTT's: as dc for 1,000 epochs with DSA color_crop_cutout_flip_scale_rotate (no flip for digits) and "
                "ZCA whitening (eps 0.1) of colour datasets, 5 models",
    optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4, epochs=1000, batch_size=256,
    lr_decay_at=(0.5,), reset_momentum_at_decay=True, augmentation=DSAParams(), flip_digits=False, zca_eps=0.1,
    models=5, arch="convnet3", search_steps=False,
    references=("Zhao & Bilen 2021, Dataset Condensation with Differentiable Siamese Augmentation",
                "Cazenavette et al. 2022, Dataset Distillation by Matching Training Trajectories (ZCA, eps 0.1)"),
), aliases=("dsa",))

QIN2024 = register_protocol(Protocol(
    name="qin2024",
    description="Qin et al. 2024's evaluation of soft-label sets: as dc-dsa for 3,000 epochs, lr 0.01 x 0.3 at each quarter "
                "(a StepLR: the optimiser and its momentum kept), DSA, ZCA for colour datasets, 5 models; the number is each "
                "model's final accuracy, and its best of 15 test checks (every 200 epochs and the end: Qin et al.'s "
                "reporting, chosen on the test set) is shown beside it",
    optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4, epochs=3000, batch_size=256,
    lr_decay_at=(0.25, 0.5, 0.75), lr_decay_factor=0.3, reset_momentum_at_decay=False, augmentation=DSAParams(),
    flip_digits=False, zca_eps=0.1, models=5, arch="convnet3", search_steps=False, test_check_every=200,
    references=(("Qin, Deng & Alvarez-Melis 2024, A Label is Worth a Thousand Images in Dataset Distillation "
                 "(sunnytqin/no-distillation: softlabel/utils.py evaluate_synset, softlabel/sample_scripts.md)"),),
))
