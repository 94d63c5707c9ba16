"""DD cells for real (digits, one outer epoch, 4 test networks): the runner makes the unrolled run,
reuses it for a variant cell (the configuration it wrote is the one the plan expects), and the
variant reaches ``evaluate``."""
import pytest

from labeldistill.experiments import DataView, PaperCell, TableSpec, plan, run_cells
from labeldistill.experiments.machine import run_machine
from labeldistill.runs import read_json
from labeldistill.unrolled import is_unrolled_record


@pytest.mark.slow
def test_dd_cells_end_to_end(monkeypatch, tmp_path, real_cells):
    monkeypatch.setattr(plan, "QUICK_EPOCHS", 1)
    monkeypatch.setattr(plan, "DD_TEST_MODELS", 4)
    spec = TableSpec(97, "digits DD", (PaperCell("digits/dd/100", 70.0, 5.0, "Digits DD", "30 steps"),
                                       PaperCell("digits/dd/100@variant=first-steps:10", 40.0, 5.0, "Digits DD", "10 steps")))
    out = real_cells.run_pair(spec)
    run_dir = tmp_path / "runs" / "digits_dd_100-quick"
    assert is_unrolled_record(read_json(run_dir / "config.json"))
    own, variant = out[0].record, out[1].record
    assert own["kind"] == "unrolled" and own["result"]["models"] == 4 and own["run_config"]["epochs"] == 1
    assert variant["kind"] == "evaluation" and variant["evaluation"] == {"arch": None, "variant": "first-steps:10"}
    assert variant["result"]["variant"] == "first-steps:10" and variant["result"]["moving_steps"] == 10
    assert (run_dir / "evaluations" / "lenet-first-steps10-K4.json").exists()
    assert run_machine(run_dir).device == "cpu" and run_machine(run_dir).mixed is None
    text = real_cells.report_and_rerun(spec, out)
    assert "digits/dd/100@variant=first-steps:10" in text and "2 of 2 cells computed" in text


@pytest.mark.slow
def test_image_cells_end_to_end(monkeypatch, tmp_path, real_cells):
    """dd-ours-rr: the one loop learning images from uniform noise (Table 17), reused by a Table 4 reading."""
    from labeldistill.experiments import parse_cell, plan_cell

    monkeypatch.setattr(plan, "QUICK_EPOCHS", 1)
    monkeypatch.setattr(plan, "TEST_MODELS", 2)
    opts = real_cells.opts
    out = run_cells(["digits/dd-ours-rr/20"], opts)
    assert out[0].status == "done", out[0].message
    cfg = read_json(tmp_path / "runs" / "digits_dd-ours-rr_20-quick" / "config.json")["config"]
    assert (cfg["learn"], cfg["image_init"], cfg["method"], cfg["reset_window"]) == ("images", "uniform", "ridge", 50)
    assert out[0].record["result"]["learned"] == "images"
    p = plan_cell(parse_cell("digits/dd-ours-rr/20"), opts, DataView(None))
    assert out[0].record["run_config"] == p.expected_config()
