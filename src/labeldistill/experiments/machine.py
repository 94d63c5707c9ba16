"""Which machine made a run, for timing tables (Table 4): a run's wall time means something only
beside runs of the same machine.

A run's own files say which *kind* of device it used (``result.json`` ``device``: "cpu" or
"cuda") and, per resume, the device it continued on (``config.json`` ``resumes``), not which
model of GPU or CPU. ``reproduce`` therefore writes ``RUN_DIR/machine.json`` whenever it starts
or resumes a run: one entry per session with the device kind, its model (``torch.cuda``'s name
of the GPU, the CPU model from ``/proc/cpuinfo``), the CPU count and the platform. A run made
outside ``reproduce`` has no such file; its machine is then known only by device kind and
platform string.

:func:`comparable` is the rule a timing ratio must pass: both runs on one machine each (no
resume on another device, one model in every session) and the same machine for both.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArtifactError
from ..runs import atomic_write_json, read_json

MACHINE_FILE = "machine.json"


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def cpu_capability() -> str | None:
    """The instruction set PyTorch's CPU kernels dispatch to here (``AVX2``, ``AVX512``, ...). CPUs that report one model
    name are not one machine: session 11's "AMD EPYC" (AVX2) ran MNIST-100 LD RR in 28 minutes to 88.16 where the
    "AMD EPYC" of sessions 5-10 (its kind not recorded) ran the same code in 16 to 87.92, bit for bit each time. The
    kind is what this code can tell apart; two runs of different or unrecorded kinds are not compared."""
    from ..numerics import cpu_capability as capability

    return capability()


def describe_machine(device: str | None = "auto") -> dict:
    """This machine as a run on ``device`` ("auto", "cpu", "cuda", "cuda:N") would use it."""
    import torch

    from ..runs.provenance import resolve_device

    try:
        dev = resolve_device(device)
    except Exception:  # noqa: BLE001  (describing must never fail a run; the run itself reports a bad device)
        dev = str(device)
    kind = "cuda" if dev.startswith("cuda") else dev
    name = None
    if kind == "cuda" and torch.cuda.is_available():
        index = int(dev.split(":", 1)[1]) if ":" in dev else torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
    elif kind == "cpu":
        name = _cpu_model()
    return {"device": kind, "name": name, "cpus": os.cpu_count(), "platform": platform.platform(),
            "cpu_capability": cpu_capability(), "torch": torch.__version__, "cuda": torch.version.cuda or "none"}


def record_machine(run_dir: str | Path, device: str | None, *, resumed: bool = False) -> None:
    """Append this session's machine to ``RUN_DIR/machine.json`` (a resumed run made elsewhere,
    without the file, gets an entry "not recorded" for the sessions before)."""
    path = Path(run_dir) / MACHINE_FILE
    try:
        sessions = list((read_json(path) or {}).get("sessions") or []) if path.exists() else []
    except ArtifactError:
        sessions = []
    if resumed and not sessions:
        sessions.append({"device": None, "name": None, "note": "earlier sessions were not recorded"})
    sessions.append(describe_machine(device))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"sessions": sessions})


@dataclass(frozen=True)
class Machine:
    """The machine of one run: ``device`` kind, model ``name`` (None: not recorded), ``platform``;
    ``mixed`` with the reason when its sessions ran on more than one device or model."""

    device: str | None
    name: str | None
    platform: str | None
    cpus: int | None = None
    mixed: str | None = None
    capability: str | None = None  # the CPU kernels' instruction set (None: not recorded)

    @property
    def label(self) -> str:
        if self.mixed:
            return f"MIXED ({self.mixed})"
        what = self.name or "model not recorded"
        cpus = f", {self.cpus} CPUs" if self.device == "cpu" and self.cpus else ""
        isa = f", {self.capability}" if self.device == "cpu" and self.capability else ""
        return f"{self.device or '?'} ({what}{cpus}{isa})"


def run_machine(run_dir: str | Path) -> Machine:
    """The machine a finished run used, from its result.json, config.json and machine.json."""
    run_dir = Path(run_dir)

    def _read(name: str) -> dict:
        try:
            obj = read_json(run_dir / name) if (run_dir / name).exists() else {}
        except ArtifactError:
            obj = {}
        return obj if isinstance(obj, dict) else {}

    result, config, recorded = _read("result.json"), _read("config.json"), _read(MACHINE_FILE)
    device = result.get("device") or config.get("device")
    kind = "cuda" if str(device).startswith("cuda") else device
    plat = (result.get("versions") or {}).get("platform") or (config.get("versions") or {}).get("platform")
    devices = {kind} | {("cuda" if str(r.get("device")).startswith("cuda") else r.get("device"))
                        for r in config.get("resumes") or [] if r.get("device")}
    sessions = [s for s in recorded.get("sessions") or [] if isinstance(s, dict)]
    names = {s.get("name") for s in sessions}
    devices |= {s.get("device") for s in sessions if s.get("device")}
    devices.discard(None)
    mixed = None
    if len(devices) > 1:
        mixed = f"ran on {' and '.join(sorted(devices))}"
    elif len(names - {None}) > 1:
        mixed = f"ran on {' and '.join(sorted(names - {None}))}"
    elif sessions and None in names:
        mixed = "some sessions' machine not recorded"
    capabilities = {s.get("cpu_capability") for s in sessions} if kind == "cpu" else set()
    if mixed is None and len(capabilities - {None}) > 1:
        mixed = f"ran on CPUs of kinds {' and '.join(sorted(capabilities - {None}))}"
    elif mixed is None and None in capabilities and len(capabilities) > 1:
        mixed = "some sessions' CPU kind not recorded"
    name = next(iter(names)) if len(names) == 1 else None
    cpus = next((s.get("cpus") for s in sessions if s.get("cpus")), None)
    capability = next(iter(capabilities)) if len(capabilities) == 1 else None
    return Machine(device=kind, name=name, platform=plat, cpus=cpus, mixed=mixed, capability=capability)


def comparable(a: Machine, b: Machine) -> tuple[bool, str]:
    """Whether two runs' wall times may be divided: (ok, why not / what was assumed)."""
    if a.mixed or b.mixed:
        return False, f"a run spans machines ({a.mixed or b.mixed})"
    if a.device != b.device:
        return False, f"different devices ({a.device} vs {b.device})"
    if a.name and b.name:
        if a.name != b.name:
            return False, f"different machines ({a.name} vs {b.name})"
        if a.device == "cpu" and a.cpus and b.cpus and a.cpus != b.cpus:
            return False, f"different CPU counts ({a.cpus} vs {b.cpus})"
        if a.device == "cpu" and a.capability != b.capability:  # one model name, other CPUs (session 11 found two)
            if a.capability and b.capability:
                return False, f"different CPU kinds ({a.capability} vs {b.capability})"
            return False, "the CPU kind (instruction set) is recorded for one run only: cannot tell the machines apart"
        return True, ""
    if a.device != "cpu":
        return False, f"{a.device} model not recorded for a run (made outside reproduce): cannot tell the GPUs apart"
    if a.platform != b.platform:
        return False, f"different platforms ({a.platform} vs {b.platform})"
    return True, "assumed the same CPU machine (same platform; model not recorded)"
