"""Random, truncated and bit-flipped files: readers raise UserError/DataError and nothing else."""

import io
import pickle
import shutil
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labeldistill.data import load_target
from labeldistill.data.readers.cifar import read_cifar_batch
from labeldistill.data.readers.folder import read_image_folder
from labeldistill.data.readers.idx import read_idx
from labeldistill.errors import UserError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def mutations(valid: bytes):
    """Random bytes, a truncation, or a few bit flips of ``valid``."""
    flips = st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 7)), min_size=1, max_size=4)

    def flip(pairs):
        b = bytearray(valid)
        for pos, bit in pairs:
            b[pos] ^= 1 << bit
        return bytes(b)

    return st.one_of(
        st.binary(max_size=600),
        st.integers(0, len(valid) - 1).map(lambda n: valid[:n]),
        flips.map(flip),
    )


def _npz_bytes(compressed: bool) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    save = np.savez_compressed if compressed else np.savez
    save(buf, x=rng.integers(0, 256, (20, 4, 4), dtype=np.uint8), y=np.arange(20) % 4)
    return buf.getvalue()


def _lzma_npz_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_LZMA) as zf:
        for k, arr in (("x", np.full((20, 4, 4), 7, np.uint8)), ("y", np.arange(20) % 4)):
            with zf.open(f"{k}.npy", "w") as f:
                np.lib.format.write_array(f, arr)
    return buf.getvalue()


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("kind", ["stored", "deflate", "lzma"])
def test_fuzz_npz(fuzz_dir, kind):
    valid = {"stored": _npz_bytes(False), "deflate": _npz_bytes(True), "lzma": _lzma_npz_bytes()}[kind]
    path = fuzz_dir / f"fuzz_{kind}.npz"

    @FUZZ
    @given(mutations(valid))
    def check(blob):
        path.write_bytes(blob)
        try:
            d = load_target(f"npz:{path}")
        except UserError:
            return
        assert len(d.train) + len(d.val) + len(d.test) > 0

    check()


def _cifar_bytes(protocol: int) -> bytes:
    rng = np.random.default_rng(0)
    batch = {
        b"batch_label": b"fuzz",
        b"labels": [0, 1, 2],
        b"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8),
        b"filenames": [b"a.png", b"b.png", b"c.png"],
    }
    return pickle.dumps(batch, protocol=protocol)


@pytest.mark.parametrize("protocol", [2, 5])
def test_fuzz_cifar_batch(fuzz_dir, protocol):
    path = fuzz_dir / f"data_batch_{protocol}"

    @FUZZ
    @given(mutations(_cifar_bytes(protocol)))
    def check(blob):
        path.write_bytes(blob)
        try:
            x, y = read_cifar_batch(path, "labels")
        except UserError:
            return
        assert x.dtype == np.uint8 and x.shape[1:] == (32, 32, 3) and len(y) == len(x)

    check()


def test_fuzz_idx(fuzz_dir, fake):
    valid = fuzz_dir / "valid.idx"
    fake.write_idx(valid, fake.images(3, 5, 5))
    path = fuzz_dir / "fuzz-images-idx3-ubyte"

    @FUZZ
    @given(mutations(valid.read_bytes()))
    def check(blob):
        path.write_bytes(blob)
        try:
            read_idx(path, 3)
        except UserError:
            pass

    check()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_fuzz_image_folder(fuzz_dir, fake, fmt):
    root = fuzz_dir / f"folder_{fmt}"
    shutil.rmtree(root, ignore_errors=True)
    ext = "png" if fmt == "PNG" else "jpg"
    for c in ("a", "b"):
        for i in range(2):
            fake.write_png(root / c / f"{i}.{ext}", fake.images(1, 8, 8, 3, seed=i)[0], fmt=fmt)
    victim = root / "b" / f"1.{ext}"
    valid = victim.read_bytes()

    @FUZZ
    @given(mutations(valid))
    def check(blob):
        victim.write_bytes(blob)
        try:
            x, y, names = read_image_folder(root)
        except UserError:
            return
        assert len(x) == 4 and names == ["a", "b"]

    check()


@pytest.mark.parametrize("flags", [1, 2, 8, 16])
def test_cifar_batch_with_a_forged_dtype_state_is_refused(fuzz_dir, flags):
    """A dtype's pickled flags claiming Python objects (or other layouts) in a uint8 array: numpy would build an
    inconsistent dtype (the path found after a fuzzed batch crashed the process in the unpickler, session 51); the
    reader refuses it in one line."""
    blob = bytearray(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]}, protocol=2))
    state = blob.index(b"\x4a\xff\xff\xff\xff\x4a\xff\xff\xff\xff\x4b\x00")  # BININT -1, BININT -1, BININT1 0: elsize, alignment, flags
    blob[state + 11] = flags
    path = fuzz_dir / f"forged_{flags}"
    path.write_bytes(bytes(blob))
    with pytest.raises(UserError, match="refusing a dtype state"):
        read_cifar_batch(path, "labels")
