"""The distilled-set file: round trip, Dataset view, tampering, truncation, versions."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import save as st_save
from safetensors.torch import save_file
from torch.utils.data import DataLoader

from labeldistill.artifact import FILE_NAME, FORMAT, FORMAT_VERSION, DistilledSet, Schedule, load
from labeldistill.data import Preprocessing
from labeldistill.errors import ArtifactError, UserError


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
    assert doc["format"] == FORMAT and doc["format_version"] == 2 and doc["steps"] == 137  # a set with a T: as before version 3
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
                      "recipe": {}, "provenance": {}, "learned": "labels", "image_init": None, "schedule": None}, sort_keys=True)
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


# -- format version 2: what was learned, initial images, a per-step schedule ------------------


def make_image_set(n=6) -> DistilledSet:
    ds = make_set(n)
    g = torch.Generator().manual_seed(1)
    return DistilledSet(ds.images, torch.eye(3)[torch.arange(n) % 3], 4, ds.preprocessing, ds.class_names, ds.recipe,
                        {**ds.provenance, "base_indices": None, "learned": "images", "image_init": "uniform"},
                        learned="images", image_init="uniform", initial_images=torch.randn(n, 1, 28, 28, generator=g),
                        schedule=Schedule("per-step", [0.02, 0.01, 0.01, 0.005], [[0, 1], [2, 3], [4, 5], [0, 5]], epoch_length=2))


def test_version_2_round_trip(tmp_path):
    ds = make_image_set()
    raw = ds.save(tmp_path / "s.safetensors").read_bytes()
    back = load(tmp_path / "s.safetensors")
    assert torch.equal(back.images, ds.images) and torch.equal(back.labels, ds.labels)
    assert torch.equal(back.initial_images, ds.initial_images)
    assert (back.learned, back.image_init, back.schedule) == ("images", "uniform", ds.schedule)
    assert back.schedule.order == ((0, 1), (2, 3), (4, 5), (0, 5)) and back.provenance["base_indices"] is None
    _, header = _split(raw)
    doc = json.loads(header["__metadata__"]["labeldistill"])
    assert doc["format_version"] == 2 and doc["learned"] == "images" and doc["image_init"] == "uniform"
    assert doc["schedule"] == {"kind": "per-step", "lrs": [0.02, 0.01, 0.01, 0.005], "order": [[0, 1], [2, 3], [4, 5], [0, 5]],
                               "epoch_length": 2}
    assert header["__metadata__"]["sha256"] == _digest(header["__metadata__"]["labeldistill"],
                                                       {"images": ds.images, "labels": ds.labels, "initial_images": ds.initial_images})
    plain = load(make_set().save(tmp_path / "p.safetensors"))  # a label set: nothing optional stored
    assert (plain.learned, plain.image_init, plain.initial_images, plain.schedule) == ("labels", None, None, None)
    moved = back.to("cpu")
    assert torch.equal(moved.initial_images, ds.initial_images) and moved.schedule == ds.schedule


def test_tampered_initial_images(tmp_path):
    path = make_image_set().save(tmp_path / "s.safetensors")
    raw = bytearray(path.read_bytes())
    n, header = _split(bytes(raw))
    start, _ = header["initial_images"]["data_offsets"]
    raw[8 + n + start + 3] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="hash"):
        load(path)


def _write_v1(path, ds: DistilledSet, extra: dict[str, torch.Tensor] | None = None) -> None:
    """A file as version 1 of the library wrote it (no learned / image_init / schedule fields)."""
    tensors = {"images": ds.images.contiguous(), "labels": ds.labels.contiguous(), **(extra or {})}
    doc = json.dumps({"format": FORMAT, "format_version": 1, "steps": ds.steps, "preprocessing": ds.preprocessing.to_dict(),
                      "class_names": ds.class_names, "recipe": ds.recipe, "provenance": ds.provenance}, sort_keys=True)
    path.write_bytes(st_save(tensors, metadata={"labeldistill": doc, "sha256": _digest(doc, tensors)}))


def test_version_1_files_still_load(tmp_path):
    ds = make_set()
    _write_v1(tmp_path / "v1.safetensors", ds)
    back = load(tmp_path / "v1.safetensors")
    assert torch.equal(back.images, ds.images) and torch.equal(back.labels, ds.labels) and back.steps == 137
    assert (back.learned, back.image_init, back.initial_images, back.schedule) == ("labels", None, None, None)
    assert back.provenance == ds.provenance and back.recipe == ds.recipe
    _write_v1(tmp_path / "odd.safetensors", ds, {"initial_images": ds.images.clone()})  # version 1 had no such tensor
    with pytest.raises(ArtifactError):
        load(tmp_path / "odd.safetensors")


@pytest.mark.parametrize("kind,lrs,order,match", [
    ("cyclic", [0.1], None, "Unknown schedule kind"),
    ("per-step", [], None, "non-empty"),
    ("per-step", [0.1, float("nan")], None, "finite"),
    ("per-step", [0.1, -0.1], None, ">= 0"),
    ("per-step", [0.1, 0.1], [[0]], "one non-empty list of rows per step"),
    ("per-step", [0.1], [[0.5]], "index lists"),
    ("per-step", [0.1], None, "epoch_length"),
])
def test_schedule_validation(kind, lrs, order, match):
    with pytest.raises(UserError, match=match):
        Schedule(kind, lrs, order, epoch_length=2 if match == "epoch_length" else None)


def test_schedule_must_fit_the_set(tmp_path):
    ds = make_image_set()
    with pytest.raises(UserError, match="T = 4"):
        DistilledSet(ds.images, ds.labels, 4, ds.preprocessing, ds.class_names, schedule=Schedule("per-step", [0.1] * 3))
    with pytest.raises(UserError, match="outside"):
        DistilledSet(ds.images, ds.labels, 1, ds.preprocessing, ds.class_names, schedule=Schedule("per-step", [0.1], [[6]]))
    with pytest.raises(UserError, match="Unknown learned"):
        DistilledSet(ds.images, ds.labels, 1, ds.preprocessing, ds.class_names, learned="pixels")
    # A hand-edited schedule in a file is refused as an invalid field, not a crash.
    tensors = {"images": ds.images.contiguous(), "labels": ds.labels.contiguous()}
    doc = json.dumps({"format": FORMAT, "format_version": 2, "steps": 4, "preprocessing": ds.preprocessing.to_dict(),
                      "class_names": ds.class_names, "recipe": {}, "provenance": {}, "learned": "images", "image_init": "real",
                      "schedule": {"kind": "per-step", "lrs": [1e999] * 4}}, sort_keys=True)
    (tmp_path / "bad.safetensors").write_bytes(st_save(tensors, metadata={"labeldistill": doc, "sha256": _digest(doc, tensors)}))
    with pytest.raises(ArtifactError, match="invalid field"):
        load(tmp_path / "bad.safetensors")


def _write_doc(path, ds: DistilledSet, **fields) -> None:
    """A file with the document's fields as given (a correct hash): what another version of the library wrote."""
    tensors = {"images": ds.images.contiguous(), "labels": ds.labels.contiguous()}
    doc = {"format": FORMAT, "format_version": 2, "steps": ds.steps, "preprocessing": ds.preprocessing.to_dict(),
           "class_names": ds.class_names, "recipe": ds.recipe, "provenance": ds.provenance, "learned": "labels",
           "image_init": None, "schedule": None, **fields}
    text = json.dumps(doc, sort_keys=True)
    path.write_bytes(st_save(tensors, metadata={"labeldistill": text, "sha256": _digest(text, tensors)}))


def test_a_set_without_a_T_is_version_3_and_round_trips(tmp_path):
    ds = make_set()
    with_t = ds.save(tmp_path / "t.safetensors").read_bytes()
    ds.steps, ds.recipe = None, {**ds.recipe, "method": "implicit", "test_protocol": "dc-dsa"}
    raw = ds.save(tmp_path / "none.safetensors").read_bytes()
    doc = json.loads(_split(raw)[1]["__metadata__"]["labeldistill"])
    assert doc["format_version"] == 3 == FORMAT_VERSION and doc["steps"] is None
    assert json.loads(_split(with_t)[1]["__metadata__"]["labeldistill"])["format_version"] == 2
    back = load(tmp_path / "none.safetensors")
    assert back.steps is None and back.recipe["test_protocol"] == "dc-dsa" and torch.equal(back.labels, ds.labels)


def test_a_set_without_a_T_needs_a_test_protocol_and_no_schedule(tmp_path):
    ds = make_set()
    with pytest.raises(UserError, match="test_protocol"):  # nothing would say how to train it
        DistilledSet(ds.images, ds.labels, None, ds.preprocessing, ds.class_names, recipe={"test_protocol": "paper"})
    with pytest.raises(UserError, match="schedule"):
        DistilledSet(ds.images, ds.labels, None, ds.preprocessing, ds.class_names, recipe={"test_protocol": "dc"},
                     schedule=Schedule("per-step", [0.1]))
    _write_doc(tmp_path / "v3.safetensors", ds, format_version=3, steps=None)  # no test protocol in its recipe
    with pytest.raises(ArtifactError, match="invalid field"):
        load(tmp_path / "v3.safetensors")
    _write_doc(tmp_path / "v2.safetensors", ds, steps=None)  # version 2 had no null T
    with pytest.raises(ArtifactError, match="invalid field"):
        load(tmp_path / "v2.safetensors")


@pytest.mark.parametrize("method,protocol,want", [
    ("implicit", "dc-dsa", None),  # written before version 3 with the placeholder T = 1
    ("ld-implicit", "dc", None),  # an alias names the same strategy
    ("second-order", "dc-dsa", 1),  # the paper's loop: its T is real, whatever protocol tested it
    ("implicit", None, 1),  # (a recipe without a test protocol is not such a set)
    ("dd", "dc-dsa", 1),
])
def test_version_2_sets_of_students_read_without_their_placeholder_T(tmp_path, method, protocol, want):
    ds = make_set()
    recipe = {**ds.recipe, "method": method, **({"test_protocol": protocol} if protocol else {})}
    _write_doc(tmp_path / "old.safetensors", ds, steps=1, recipe=recipe)
    assert load(tmp_path / "old.safetensors").steps == want
