"""The named datasets: each entry is data (size, normalisation, split sizes, names, licence,
where its files live). Adding a dataset is one ``_register(DatasetEntry(...))`` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..registry import Registry
from .layouts import Finder, arr0_layout, cifar_layout, cub_layout, idx_layout, pair_layout, test_part_layout
from .preprocess import COLOUR_MEAN, COLOUR_STD, GREY_MEAN, GREY_STD
from .raw import RawDataset
from .readers.digits import read_digits


@dataclass(frozen=True)
class DatasetEntry:
    """One named dataset.

    Attributes:
        name: canonical name.
        kind: "grey" or "colour".
        size: side in pixels of the paper's preprocessing (and of the stored images).
        mean, std: paper normalisation; None means "measured on the training split".
        val_size: validation images taken from the official train part: a count, or a fraction
            of it; None for datasets without an official test part (split by fractions instead).
        class_names: None when read from the files (CUB).
        licence: short licence / provenance note.
        how_to_get: one line telling the user how to obtain the files.
        layouts: finders searched under the data root, in order; the npz pair comes last.
        torchvision: (class name, extra keyword pairs) when torchvision can download it.
        builtin: a reader for datasets that need no files (scikit-learn's digits).
    """

    name: str
    kind: str
    size: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    val_size: int | float | None
    class_names: tuple[str, ...] | None
    licence: str
    how_to_get: str
    layouts: tuple[Finder, ...] = ()
    torchvision: tuple[str, tuple[tuple[str, str], ...]] | None = None
    builtin: Callable[[], RawDataset] | None = None

    @property
    def channels(self) -> int:
        return 1 if self.kind == "grey" else 3

    def locate(self, root: Path) -> list:
        """Every layout of this dataset found under ``root`` (complete or not), in search order."""
        found = [finder(root, self.name) for finder in (*self.layouts, pair_layout)]
        return [f for f in found if f is not None]


CATALOG: Registry[DatasetEntry] = Registry("dataset")


def _register(entry: DatasetEntry, aliases: tuple[str, ...] = ()) -> None:
    CATALOG.register(entry.name, aliases=aliases)(entry)


def list_datasets() -> list[str]:
    """Names of the catalog datasets, sorted (also accepted: ``npz:FILE``, ``folder:DIR``, custom pairs)."""
    return CATALOG.names()


def _emnist_upright(x: np.ndarray, y: np.ndarray, where: Path) -> tuple[np.ndarray, np.ndarray]:
    # The EMNIST files store each image transposed; the paper's code showed them on their side.
    if len(y) and (y.min() < 1 or y.max() > 26):
        raise DataError(f"{where}: labels out of range: found {y.min()}..{y.max()}, expected 1..26 for EMNIST letters")
    return np.ascontiguousarray(x.transpose(0, 2, 1)), y - 1


_DOWNLOAD = "pass --download (download=True; needs torchvision)"
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"
_MNIST_LICENCE = "MNIST (LeCun, Cortes, Burges); CC BY-SA 3.0"
_KUZUSHIJI_LICENCE = (
    "Kuzushiji datasets, (c) ROIS-DS Center for Open Data in the Humanities; CC BY-SA 4.0 (cite Clanuwat et al. 2018)"
)
_CIFAR_LICENCE = "(Krizhevsky 2009), free for research with citation; images from the 80 Million Tiny Images collection"
_KMNIST_NAMES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
# Romanised hiragana in the order of the official k49_classmap.csv; 48 is the iteration mark ゝ.
_K49_NAMES = (
    "a i u e o ka ki ku ke ko sa shi su se so ta chi tsu te to na ni nu ne no "
    "ha hi fu he ho ma mi mu me mo ya yu yo ra ri ru re ro wa wi we wo n iteration-mark"
).split()
_CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR100_NAMES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
    "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
    "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
    "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
    "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
    "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger "
    "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()
assert len(_K49_NAMES) == 49 and len(_CIFAR100_NAMES) == 100  # guards the literals above, not user input

_register(
    DatasetEntry(
        name="mnist",
        kind="grey",
        size=28,
        mean=GREY_MEAN,
        std=GREY_STD,
        val_size=10_000,
        class_names=tuple(str(i) for i in range(10)),
        licence=_MNIST_LICENCE,
        how_to_get=f"{_DOWNLOAD}, or put MNIST/raw/*-idx?-ubyte.gz or mnist_train.npz + mnist_test.npz in the data root (https://yann.lecun.com/exdb/mnist/)",
        layouts=(idx_layout(("MNIST/raw", "mnist"), "train", "t10k"),),
        torchvision=("MNIST", ()),
    )
)
_register(
    DatasetEntry(
        name="kmnist",
        kind="grey",
        size=28,
        mean=GREY_MEAN,
        std=GREY_STD,
        val_size=10_000,
        class_names=_KMNIST_NAMES,
        licence=_KUZUSHIJI_LICENCE,
        how_to_get=(
            f"{_DOWNLOAD}, or put kmnist-{{train,test}}-{{imgs,labels}}.npz "
            "from https://github.com/rois-codh/kmnist, or kmnist_train.npz + kmnist_test.npz (arrays x, y), "
            "in the data root"
        ),
        layouts=(
            idx_layout(("KMNIST/raw", "kmnist"), "train", "t10k"),
            arr0_layout("kmnist", ("", "kmnist", "KMNIST")),
        ),
        torchvision=("KMNIST", ()),
    ),
    aliases=("kuzushiji-mnist",),
)
_register(
    DatasetEntry(
        name="emnist-letters",
        kind="grey",
        size=28,
        mean=GREY_MEAN,
        std=GREY_STD,
        # The official letters train part has 124,800 images; 10% of it (12,480) is the
        # validation part, in line with the paper's "about 10-15%" and MNIST's 10,000/60,000.
        val_size=0.1,
        class_names=tuple("abcdefghijklmnopqrstuvwxyz"),
        licence="EMNIST (Cohen et al. 2017), derived from NIST Special Database 19; cite the paper",
        how_to_get=(
            f"{_DOWNLOAD}, or unpack gzip.zip from "
            "https://www.nist.gov/itl/products-and-services/emnist-dataset into <data root>/EMNIST/raw"
        ),
        layouts=(
            idx_layout(
                ("EMNIST/raw", "EMNIST/raw/gzip", "emnist-letters", "EMNIST", "gzip", ""),
                "emnist-letters-train",
                "emnist-letters-test",
                transform=_emnist_upright,
            ),
        ),
        torchvision=("EMNIST", (("split", "letters"),)),
    ),
    aliases=("emnist",),
)
_register(
    DatasetEntry(
        name="kuzushiji-49",
        kind="grey",
        size=28,
        mean=GREY_MEAN,
        std=GREY_STD,
        val_size=23_237,
        class_names=tuple(_K49_NAMES),
        licence=_KUZUSHIJI_LICENCE,
        how_to_get=(
            "download k49-{train,test}-{imgs,labels}.npz from http://codh.rois.ac.jp/kmnist/dataset/k49/ "
            "(see https://github.com/rois-codh/kmnist) into the data root"
        ),
        layouts=(arr0_layout("k49", ("", "kuzushiji-49", "k49", "KMNIST")),),
    ),
    aliases=("k49", "kuzushiji49"),
)
_register(
    DatasetEntry(
        name="cifar10",
        kind="colour",
        size=32,
        mean=COLOUR_MEAN,
        std=COLOUR_STD,
        val_size=5_000,
        class_names=_CIFAR10_NAMES,
        licence="CIFAR-10 " + _CIFAR_LICENCE,
        how_to_get=f"{_DOWNLOAD}, or extract {_CIFAR_URL}cifar-10-python.tar.gz into the data root",
        layouts=(
            cifar_layout("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "labels"),
        ),
        torchvision=("CIFAR10", ()),
    ),
    aliases=("cifar-10",),
)
_register(
    DatasetEntry(
        name="cifar100",
        kind="colour",
        size=32,
        mean=COLOUR_MEAN,
        std=COLOUR_STD,
        val_size=5_000,
        class_names=tuple(_CIFAR100_NAMES),
        licence="CIFAR-100 " + _CIFAR_LICENCE,
        how_to_get=f"{_DOWNLOAD}, or extract {_CIFAR_URL}cifar-100-python.tar.gz into the data root",
        layouts=(cifar_layout("cifar-100-python", ["train"], "test", "fine_labels"),),
        torchvision=("CIFAR100", ()),
    ),
    aliases=("cifar-100",),
)
# The name paper_defaults.py maps to CIFAR-100's paper settings (reset window 100, inner batch 100, 800 epochs).
CIFAR100_STAND_IN = "cifar100-test-stand-in"
# dataset -> the catalog stand-in made of its official test images (``reproduce --stand-in`` uses it
# when the dataset's training split is missing).
TEST_IMAGE_STAND_INS = {"cifar100": CIFAR100_STAND_IN}
_register(
    DatasetEntry(
        name=CIFAR100_STAND_IN,
        kind="colour",
        size=32,
        mean=COLOUR_MEAN,  # CIFAR normalisation, as the cifar100 entry
        std=COLOUR_STD,
        # No official test part: the test images are one pool, split 80/10/10 (stratified, seeded).
        val_size=None,
        class_names=tuple(_CIFAR100_NAMES),
        licence=(
            "STAND-IN for CIFAR-100: only CIFAR-100's official test images, split into train / validation / test; "
            "CIFAR-100 " + _CIFAR_LICENCE
        ),
        how_to_get=(
            "put cifar100_test.npz (arrays x uint8 N×32×32×3, y 0-99) or cifar-100-python/test in the data root "
            "(a stand-in for when CIFAR-100's training split is missing)"
        ),
        layouts=(test_part_layout("cifar100", "cifar-100-python", "fine_labels"),),
    ),
)
_register(
    DatasetEntry(
        name="cub",
        kind="colour",
        size=32,
        mean=COLOUR_MEAN,
        std=COLOUR_STD,
        val_size=0.1,
        class_names=None,
        licence="CUB-200-2011 (Wah et al. 2011); Flickr images, for non-commercial research and educational use",
        how_to_get=(
            "download CUB_200_2011.tgz from https://www.vision.caltech.edu/datasets/cub_200_2011/ "
            "and extract it into the data root (giving CUB_200_2011/images/...)"
        ),
        layouts=(cub_layout(32),),
    ),
    aliases=("cub-200-2011", "cub200"),
)
_register(
    DatasetEntry(
        name="digits",
        kind="grey",
        size=8,
        mean=None,
        std=None,
        val_size=None,
        class_names=tuple(str(i) for i in range(10)),
        licence="UCI ML hand-written digits (Alpaydin & Kaynak 1998), bundled with scikit-learn; CC BY 4.0",
        how_to_get="bundled with scikit-learn (pip install scikit-learn); nothing to download",
        builtin=read_digits,
    ),
    aliases=("sklearn-digits",),
)
