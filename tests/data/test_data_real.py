"""The one test on real data: the shared MNIST test file (../shared/data from the repo root)."""

from pathlib import Path

import numpy as np

from labeldistill.data import load_target

MNIST_TEST = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mnist_test.npz"


def test_real_mnist_test_file_as_npz_spec():
    d = load_target(f"npz:{MNIST_TEST}", seed=0)
    assert (len(d.train), len(d.val), len(d.test)) == (8000, 1000, 1000)
    assert d.num_classes == 10 and d.preprocessing.size == 28 and d.preprocessing.channels == 1
    # measured on the training split: close to MNIST's known statistics, and centred after normalising
    assert abs(d.preprocessing.mean[0] - 0.1325) < 0.005 and abs(d.preprocessing.std[0] - 0.310) < 0.01
    assert abs(float(d.train.x.mean())) < 1e-4 and abs(float(d.train.x.std()) - 1) < 1e-3
    assert abs(float(d.test.x.mean())) < 0.05
    counts = np.bincount(d.val.y.numpy())
    assert counts.min() >= 89 and counts.max() <= 114  # stratified: about a tenth of 892..1135 per class
