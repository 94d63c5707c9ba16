"""make_report / compare_runs on synthetic run directories, and the errors for bad ones."""
from __future__ import annotations

import json
import re
import shutil

import pytest

from labeldistill.errors import UserError
from labeldistill.report import compare_runs, load_run, make_report

from .conftest import make_run
from .helpers import check_png


@pytest.fixture(scope="module")
def within(runs, tmp_path_factory):
    return make_report(runs["within"], tmp_path_factory.mktemp("within-report"), max_images=12)


@pytest.fixture(scope="module")
def cross(runs):
    return make_report(runs["cross"])  # default out: RUN_DIR/report


def _pngs(md):
    return sorted(p.name for p in md.parent.glob("*.png"))


def _check_documents(md):
    text = md.read_text()
    pngs = _pngs(md)
    for name in pngs:
        check_png(md.parent / name)
        assert f"]({name})" in text, f"report.md does not show {name}"
    page = (md.parent / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(pngs)
    assert not re.search(r'src="(?!data:)', page), "report.html must not link external files"
    return text


def test_within_dataset_report(within):
    assert within.name == "report.md"
    assert _pngs(within) == ["grad_variance.png", "label_heatmap.png", "labels_grid.png", "steps_accuracy.png", "training_curves.png"]
    text = _check_documents(within)
    assert "12 of 20 images, capped at 12" in text
    assert re.search(r"argmax of the learned label equals the base image's true class for \*\*\d+\.\d%\*\*", text)
    assert "| lenet-ridge-T" in text  # the evaluations table


def test_cross_dataset_report(cross, runs):
    assert cross.parent == runs["cross"] / "report"
    assert "prototypes.png" in _pngs(cross) and "label_heatmap.png" in _pngs(cross)
    text = _check_documents(cross)
    assert "argmax of the learned label equals" not in text  # only meaningful within a dataset
    assert "30 of 30 images." in text  # not capped


def test_report_of_a_run_in_progress(tmp_path):
    run = make_run(tmp_path / "running", steps=120, evaluations=False, distilled=False)
    (run / "result.json").unlink()
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"kind":"step","ste')  # a line being written right now
    md = make_report(run)
    assert _pngs(md) == ["grad_variance.png", "training_curves.png"]
    assert "not there yet" in _check_documents(md)


def test_rerun_removes_figures_that_no_longer_apply(tmp_path):
    run = make_run(tmp_path / "r", n=10, steps=120)
    out = tmp_path / "out"
    make_report(run, out)
    shutil.rmtree(run / "evaluations")
    (run / "result.json").unlink()
    md = make_report(run, out)
    assert "steps_accuracy.png" not in _pngs(md)


def test_compare_runs(runs, tmp_path):
    md = compare_runs([runs["within"], runs["cross"]], tmp_path / "cmp")
    assert _pngs(md) == ["base_sets.png", "compare_curves.png", "grad_variance.png"]
    text = _check_documents(md)
    assert "mnist-rr" in text and "emnist-kmnist-so" in text and "85.10 ± 1.20 %" in text


def test_compare_without_grad_var(tmp_path):
    a = make_run(tmp_path / "a", n=10, steps=120, grad_var_every=0, evaluations=False, distilled=False)
    b = make_run(tmp_path / "x" / "a", n=10, steps=150, grad_var_every=0, evaluations=False, distilled=False)
    md = compare_runs([a, b], tmp_path / "cmp")
    assert _pngs(md) == ["compare_curves.png"]
    text = _check_documents(md)
    assert "grad_var_every" in text and "x/a" in text  # same names: told apart by their parent


@pytest.mark.parametrize("case, message", [
    ("missing", "is not a run directory (it does not exist)"),
    ("file", "is not a run directory (it is a file)"),
    ("empty", "is not a run directory (no metrics.jsonl)"),
    ("no-config", "is not a run directory (no config.json)"),
    ("bad-config", "is not valid JSON"),
    ("bad-metrics", "line 2 is not a valid metrics record"),
])
def test_bad_run_directories(tmp_path, case, message):
    path = tmp_path / case
    if case == "file":
        path.write_text("x")
    elif case != "missing":
        path.mkdir()
        if case != "empty":
            (path / "metrics.jsonl").write_text('{"kind":"step","step":1,"error":50.0}\n' + ("nonsense\n{}\n" if case == "bad-metrics" else ""))
        if case == "bad-config":
            (path / "config.json").write_text("{")
        if case == "bad-metrics":
            (path / "config.json").write_text(json.dumps({"config": {"target": "mnist"}}))
    with pytest.raises(UserError, match=re.escape(message)) as e:
        make_report(path)
    assert "\n" not in str(e.value)


def test_load_run_reads_the_records(runs):
    run = load_run(runs["within"])
    assert run.window == 50 and not run.cross_dataset and run.distilled is not None
    steps, t_i = run.resets()
    assert len(steps) == len(t_i) >= 1 and len(run.grad_var()[0]) == 30
    assert json.loads((runs["within"] / "result.json").read_text())["T"] == run.result["T"]
