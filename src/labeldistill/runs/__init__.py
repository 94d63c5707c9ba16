"""Run directories: atomic files, the writer lock, the metrics log, safe state files."""
from .files import atomic_write_bytes, atomic_write_json, read_json
from .lock import RunLock
from .metrics import MetricsLog, read_metrics
from .tensorstate import load_state, save_state

__all__ = ["atomic_write_bytes", "atomic_write_json", "read_json", "RunLock", "MetricsLog", "read_metrics", "load_state", "save_state"]
