"""Fuzz the distilled-set and state-file readers: truncated, corrupted and hostile inputs give
a clear ArtifactError, never another exception, a crash or a hang."""
from __future__ import annotations

import json
import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labeldistill.artifact import DistilledSet, load
from labeldistill.data import Preprocessing
from labeldistill.errors import ArtifactError
from labeldistill.runs import load_state, save_state


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("a") / "d.safetensors"
    DistilledSet(torch.randn(3, 1, 8, 8), torch.softmax(torch.randn(3, 4), -1), 12, Preprocessing(1, 8, (0.5,), (0.2,)), list("abcd")).save(path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def state_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("s") / "c.safetensors"
    save_state(path, {"a": torch.arange(5), "b": [1, {"c": torch.ones(2)}], "d": None})
    return path.read_bytes()


_SCRATCH: dict[str, object] = {}


def _check(reader, data: bytes, tmp_path_factory) -> None:
    if "path" not in _SCRATCH:
        _SCRATCH["path"] = tmp_path_factory.mktemp("fuzz") / "x.safetensors"
    path = _SCRATCH["path"]
    path.write_bytes(data)
    try:
        reader(path)
    except ArtifactError as e:
        assert "\n" not in str(e)


SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(data=st.data())
def test_distilled_set_mutations(valid_bytes, tmp_path_factory, data):
    kind = data.draw(st.sampled_from(["truncate", "flip", "random", "header"]))
    b = bytearray(valid_bytes)
    if kind == "truncate":
        b = b[: data.draw(st.integers(0, len(b) - 1))]
    elif kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(b) - 1))
            b[i] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "random":
        b = bytearray(data.draw(st.binary(max_size=2048)))
    else:  # a hostile header: huge length, nonsense JSON, wrong offsets
        header = data.draw(st.sampled_from([
            b'{"images":{"dtype":"F32","shape":[1000000000,1,1,1],"data_offsets":[0,4]}}',
            b'{"__metadata__":{"labeldistill":"{\\"format\\":1}"}}', b"[1,2,3]", b'{"__metadata__":5}',
        ]))
        n = data.draw(st.sampled_from([len(header), 2**63 - 1, 0]))
        b = bytearray(struct.pack("<Q", n) + header)
    _check(load, bytes(b), tmp_path_factory)


def test_newer_format_version_is_refused(valid_bytes, tmp_path):
    n = struct.unpack("<Q", valid_bytes[:8])[0]
    header = json.loads(valid_bytes[8 : 8 + n])
    doc = json.loads(header["__metadata__"]["labeldistill"])
    doc["format_version"] = 99
    header["__metadata__"]["labeldistill"] = json.dumps(doc)
    new = json.dumps(header).encode()
    path = tmp_path / "new.safetensors"
    path.write_bytes(struct.pack("<Q", len(new)) + new + valid_bytes[8 + n :])
    with pytest.raises(ArtifactError, match="newer|upgrade|hash"):
        load(path)


@SETTINGS
@given(data=st.data())
def test_state_file_mutations(state_bytes, tmp_path_factory, data):
    b = bytearray(state_bytes)
    if data.draw(st.booleans()):
        b = b[: data.draw(st.integers(0, len(b) - 1))]
    else:
        i = data.draw(st.integers(0, len(b) - 1))
        b[i] ^= 1 << data.draw(st.integers(0, 7))
    _check(load_state, bytes(b), tmp_path_factory)
