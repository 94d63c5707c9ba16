"""Run directories: atomic files, the writer lock, the metrics log, safe state files, stop requests."""
from .files import atomic_write_bytes, atomic_write_json, read_json
from .interrupt import StopRequest
from .lock import RunLock
from .metrics import MetricsLog, read_metrics
from .tensorstate import load_state, save_state

__all__ = ["atomic_write_bytes", "atomic_write_json", "read_json", "RunLock", "StopRequest", "MetricsLog", "read_metrics", "load_state", "save_state"]
