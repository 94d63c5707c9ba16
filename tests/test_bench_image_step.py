"""benchmarks/bench_image_step.py runs (CPU, built-in digits, one tiny round) and prints its JSON."""
import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_image_step.py"


def test_bench_image_step_smoke(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LABELDISTILL_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, str(SCRIPT), "--target", "digits", "--base", "20", "--device", "cpu", "--steps", "1",
                          "--rounds", "1", "--methods", "ridge"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    obj = json.loads(out.stdout.strip().splitlines()[-1])
    assert obj["machine"]["device"] == "cpu" and obj["versions"]["torch"] == __import__("torch").__version__
    assert [(r["method"], r["learn"]) for r in obj["rows"]] == [("ridge", "labels"), ("ridge", "images"), ("ridge", "images+labels")]
    assert obj["rows"][0]["ratio_to_labels"] == 1.0 and all(r["median_ms"] > 0 for r in obj["rows"])
