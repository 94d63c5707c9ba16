"""The distilled-set file: round trip, Dataset view, tampering, truncation, versions."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import save as st_save
from safetensors.torch import save_file
from torch.utils.data import DataLoader

from labeldistill.artifact import FILE_NAME, FORMAT, FORMAT_VERSION, DistilledSet, load
from labeldistill.data import Preprocessing
from labeldistill.errors import ArtifactError


def make_set(n=6, c=3) -> DistilledSet:
    g = torch.Generator().manual_seed(0)
    return DistilledSet(
        images=torch.randn(n, 1, 28, 28, generator=g),
        labels=torch.softmax(torch.randn(n, c, generator=g), -1),
        steps=137,
        preprocessing=Preprocessing(1, 28, (0.1307,), (0.3081,)),
        class_names=["zero", "one", "two"][:c],
        recipe={"optimizer": "adam", "lr": 0.001, "batch_size": 5, "arch": "lenet", "head": "linear"},
        provenance={"base_dataset": "mnist", "base_indices": list(range(100, 100 + n)), "nested": {"a": [1, 2, None]}},
    )


def _split(raw: bytes) -> tuple[int, dict]:
    n = int.from_bytes(raw[:8], "little")
    return n, json.loads(raw[8 : 8 + n])


def test_round_trip(tmp_path):
    ds = make_set()
    path = ds.save(tmp_path / "set.safetensors")
    back = load(path)
    assert torch.equal(back.images, ds.images) and torch.equal(back.labels, ds.labels)
    assert back.steps == 137
    assert back.preprocessing == ds.preprocessing
    assert back.class_names == ds.class_names
    assert back.recipe == ds.recipe
    assert back.provenance == ds.provenance
    assert len(back) == 6 and back.num_classes == 3


def test_load_directory(tmp_path):
    make_set().save(tmp_path / FILE_NAME)
    assert load(tmp_path).steps == 137
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ArtifactError):
        load(empty)
    with pytest.raises(ArtifactError, match="not found"):
        load(tmp_path / "nope.safetensors")


def test_to_dataset_with_dataloader(tmp_path):
    ds = load(make_set(n=7).save(tmp_path / "s.safetensors"))
    loader = DataLoader(ds.to_dataset(), batch_size=3, shuffle=False)
    batches = list(loader)
    assert [b[0].shape[0] for b in batches] == [3, 3, 1]
    assert batches[0][0].shape == (3, 1, 28, 28) and batches[0][1].shape == (3, 3)
    assert torch.equal(torch.cat([b[1] for b in batches]), ds.labels)


def _digest(doc: str, tensors: dict[str, torch.Tensor]) -> str:
    """The documented hash, written independently: SHA-256 of the JSON document, then for each
    tensor by name: name, dtype, shape, raw bytes."""
    h = hashlib.sha256(doc.encode())
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def test_hash_is_over_document_and_tensors(tmp_path):
    ds = make_set()
    raw = ds.save(tmp_path / "s.safetensors").read_bytes()
    _, header = _split(raw)
    meta = header["__metadata__"]
    doc = json.loads(meta["labeldistill"])
    assert doc["format"] == FORMAT and doc["format_version"] == FORMAT_VERSION and doc["steps"] == 137
    assert meta["sha256"] == _digest(meta["labeldistill"], {"images": ds.images, "labels": ds.labels})


def test_tampered_tensor_data(tmp_path):
    path = make_set().save(tmp_path / "s.safetensors")
    raw = bytearray(path.read_bytes())
    n, header = _split(bytes(raw))
    start, end = header["labels"]["data_offsets"]
    raw[8 + n + start + 5] ^= 0x01  # one bit of one label
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="hash"):
        load(path)


def test_tampered_document(tmp_path):
    path = make_set().save(tmp_path / "s.safetensors")
    raw = path.read_bytes()
    n, header = _split(raw)
    doc = json.loads(header["__metadata__"]["labeldistill"])
    doc["steps"] = 138  # same length, a different T
    header["__metadata__"]["labeldistill"] = json.dumps(doc, sort_keys=True)
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    path.write_bytes(len(hb).to_bytes(8, "little") + hb + raw[8 + n :])
    with pytest.raises(ArtifactError, match="hash"):
        load(path)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.01])
def test_truncated_file(tmp_path, keep):
    path = make_set().save(tmp_path / "s.safetensors")
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(ArtifactError):
        load(path)


def test_newer_format_version_says_upgrade(tmp_path):
    ds = make_set()
    tensors = {"images": ds.images.contiguous(), "labels": ds.labels.contiguous()}
    doc = json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION + 1, "steps": 5,
                      "preprocessing": ds.preprocessing.to_dict(), "class_names": ds.class_names,
                      "recipe": {}, "provenance": {}}, sort_keys=True)
    path = tmp_path / "new.safetensors"
    path.write_bytes(st_save(tensors, metadata={"labeldistill": doc, "sha256": _digest(doc, tensors)}))
    with pytest.raises(ArtifactError, match="upgrade"):
        load(path)
    # The same file at the current version (and a correct hash) loads: the version was the only problem.
    doc_ok = doc.replace(f'"format_version": {FORMAT_VERSION + 1}', f'"format_version": {FORMAT_VERSION}')
    assert doc_ok != doc
    path.write_bytes(st_save(tensors, metadata={"labeldistill": doc_ok, "sha256": _digest(doc_ok, tensors)}))
    assert load(path).steps == 5


def test_foreign_safetensors_files(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(plain))
    with pytest.raises(ArtifactError, match="not a labeldistill"):
        load(plain)
    other = tmp_path / "other.safetensors"
    save_file({"images": torch.zeros(1, 1, 2, 2), "labels": torch.ones(1, 2)}, str(other),
              metadata={"labeldistill": json.dumps({"format": "something-else", "format_version": 1}), "sha256": "0"})
    with pytest.raises(ArtifactError, match="not a labeldistill"):
        load(other)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"hello, not a tensor file at all")
    with pytest.raises(ArtifactError):
        load(junk)
