"""``labeldistill report`` for every kind of run: learned images (figure of learned beside initial
images, per class), images+labels, and DD / SLDD (images in step order, the learned lr schedule,
the outer loss, the variants' evaluations). Fake run directories, no distillation."""
import json

import pytest

from labeldistill.cli import main
from labeldistill.errors import UserError
from labeldistill.report import compare_runs, load_run, make_report

from .conftest import make_dd_run, make_image_run
from .helpers import check_png


@pytest.mark.parametrize("learned", ["images", "images+labels"])
def test_image_runs(tmp_path, learned):
    run = make_image_run(tmp_path / f"run-{learned.replace('+', '-')}", learned=learned, n=10)
    assert load_run(run).learned == learned and not load_run(run).unrolled
    md = make_report(run)
    out = md.parent
    check_png(out / "learned_images.png")
    check_png(out / "labels_grid.png")
    check_png(out / "training_curves.png")
    text = md.read_text()
    start = "uniform" if learned == "images" else "real"
    assert "## Learned images" in text and f"start: {start}" in text
    assert text.startswith("# Image distillation report" if learned == "images" else "# Image and label distillation report")
    assert not (out / "step_images.png").exists() and not (out / "lr_schedule.png").exists()


@pytest.mark.parametrize("method", ["dd", "sldd"])
def test_dd_runs(tmp_path, method):
    run = make_dd_run(tmp_path / f"mnist-{method}", method=method, steps=4)  # 40 images, T = 12
    loaded = load_run(run)
    assert loaded.unrolled and len(loaded.outer) == 40 and loaded.steps == []
    md = make_report(run)
    out = md.parent
    for name in ("learned_images.png", "step_images.png", "lr_schedule.png", "outer_loss.png"):
        check_png(out / name)
    assert (out / "labels_grid.png").exists() == (method == "sldd")
    text = md.read_text()
    assert text.startswith(f"# {method.upper()} report") and "77.30 ± 5.10 %" in text and "10.0 min on cpu" in text
    assert "| images | 40 = 4 steps x 10 classes x 1 per class |" in text and "| inner steps T | 12 (4 steps x 3 epochs) |" in text
    assert "| first-steps:10 | lenet | 12 (10) | 35.60 ± 11.00 % | 4 |" in text and "average-lr" in text
    assert text.count("| 11 |") == 1 and "| 12 |" not in text  # one row per step of the schedule
    assert (out / "report.html").exists()


def test_dd_run_still_running(tmp_path):
    run = make_dd_run(tmp_path / "mnist-dd", steps=2)
    (run / "distilled.safetensors").unlink()
    (run / "result.json").unlink()
    text = make_report(run).read_text()
    assert "not there yet" in text and "no result.json yet" in text
    check_png(run / "report" / "outer_loss.png")


def test_cli_report_on_dd_and_image_runs(tmp_path, capsys):
    for run in (make_dd_run(tmp_path / "dd", steps=2), make_image_run(tmp_path / "img", n=10)):
        assert main(["report", str(run), "--json"]) == 0
        obj = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert "learned_images.png" in obj["figures"]


def test_archived_run_reads_its_gzipped_metrics(tmp_path):
    # results/archive.py keeps metrics.jsonl as metrics.jsonl.gz: the report reads the same records from it.
    import gzip
    import shutil

    run = make_dd_run(tmp_path / "mnist-dd", steps=2)
    before = load_run(run)
    with open(run / "metrics.jsonl", "rb") as f, gzip.open(run / "metrics.jsonl.gz", "wb") as g:
        shutil.copyfileobj(f, g)
    (run / "metrics.jsonl").unlink()
    after = load_run(run)
    assert after.outer == before.outer and len(after.outer) == 40
    check_png(make_report(run).parent / "outer_loss.png")
    (run / "metrics.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(UserError, match="Cannot read"):
        load_run(run)


def test_a_students_run_has_no_resets_and_no_paper_t(tmp_path):
    """--method implicit's record (session 31's MNIST run, committed under records/runs): its students are never reset and
    its set has no paper T, so the report says so and draws two training panels, not the T_i panel."""
    from pathlib import Path

    record = Path(__file__).resolve().parents[2] / "records" / "runs" / "mnist-implicit-k1-100-s0"
    run = load_run(record)
    assert run.students and not load_run(make_image_run(tmp_path / "img", n=10)).students
    md = make_report(record, tmp_path / "report")
    text = md.read_text()
    assert "| resets (T_i) | none (students trained the test's way are never reset) |" in text
    assert "| T (training steps) | - (none: tested under dc-dsa's fixed epochs) |" in text
    assert "T_i recorded at each reset" not in text and "98.07" in text
    assert "moving average over 5 steps" in text and "the start labels' validation accuracy" in text  # 25 steps, a start candidate
    check_png(tmp_path / "report" / "training_curves.png")
    rows = [line.split(" | ") for line in compare_runs([record, make_image_run(tmp_path / "img2", n=10)],
                                                       tmp_path / "cmp").read_text().splitlines() if line.startswith("| ")]
    t_col = rows[0].index("T")
    assert rows[1][t_col] == "-" and rows[2][t_col] != "-"  # in the comparison too: the record's result says T 1, the placeholder of its version
