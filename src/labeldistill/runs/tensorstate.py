"""Nested state (dicts, lists, tensors, scalars) <-> safetensors + JSON, never pickle.

Optimiser state dicts and generator states are nested Python structures holding
tensors. ``flatten`` moves every tensor into a flat name -> tensor map (saved with
safetensors) and leaves a ``{"__tensor__": name}`` placeholder in the JSON part.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..errors import ArtifactError
from .files import atomic_write_bytes


def flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "t") -> Any:
    if isinstance(obj, torch.Tensor):
        # The running number keeps names unique: dotted paths alone collide ("a.b" vs {"a": {"b"}}, 1 vs "1").
        name = f"{prefix}#{len(tensors)}"
        tensors[name] = obj.detach().cpu().contiguous()
        return {"__tensor__": name}
    if isinstance(obj, dict):
        return {"__dict__": [[_key(k), flatten(v, tensors, f"{prefix}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    return obj


def unflatten(obj: Any, tensors: dict[str, torch.Tensor] | None, device: str | torch.device | None = None) -> Any:
    """``flatten``'s inverse; with ``tensors`` None, the placeholders stay (the JSON part alone)."""
    if isinstance(obj, dict) and "__tensor__" in obj:
        if tensors is None:
            return obj
        t = tensors[obj["__tensor__"]]
        return t.to(device) if device is not None else t
    if isinstance(obj, dict) and "__dict__" in obj:
        return {_unkey(k): unflatten(v, tensors, device) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [unflatten(v, tensors, device) for v in obj]
    return obj


def _key(k: Any) -> Any:
    return {"int": k} if isinstance(k, int) else k


def _unkey(k: Any) -> Any:
    return k["int"] if isinstance(k, dict) else k


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write nested ``state`` as one safetensors file (its JSON part in the header metadata)."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten(state, tensors)
    meta = json.dumps(skeleton, sort_keys=True)
    digest = content_digest(meta, tensors)
    atomic_write_bytes(path, st_save(tensors, metadata={"state": meta, "sha256": digest}))


def load_state(path: str | Path, device: str | torch.device | None = None) -> dict[str, Any]:
    path = Path(path)
    try:
        raw = path.read_bytes()
        tensors = st_load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + header_len])
        meta = header.get("__metadata__", {})
        skeleton_json = meta["state"]
    except FileNotFoundError:
        raise ArtifactError(f"{path} not found.") from None
    except (SafetensorError, KeyError, ValueError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path} is not a readable labeldistill state file ({type(e).__name__}).") from None
    digest = content_digest(skeleton_json, tensors)
    if digest != meta.get("sha256"):
        raise ArtifactError(f"{path} does not match its recorded hash: it is corrupt or was modified.")
    return unflatten(json.loads(skeleton_json), tensors, device)


def header_metadata(path: str | Path) -> dict[str, str]:
    """A safetensors file's metadata, read from its header alone (no tensor is read, nothing is verified): for looking
    at large files cheaply. {} where unreadable."""
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            return dict(json.loads(fh.read(n)).get("__metadata__") or {})
    except (OSError, ValueError, UnicodeDecodeError, AttributeError, TypeError):
        return {}


def read_state_document(path: str | Path) -> dict[str, Any]:
    """The JSON part of a :func:`save_state` file from its header alone (:func:`header_metadata`; tensors stay
    ``{"__tensor__": name}`` placeholders). {} where unreadable."""
    try:
        return unflatten(json.loads(header_metadata(path)["state"]), None)
    except (KeyError, ValueError):
        return {}


def content_digest(doc: str, tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over a JSON document and every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256(doc.encode())
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
