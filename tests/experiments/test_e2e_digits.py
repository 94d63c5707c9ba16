"""One real, tiny run end to end (digits, 2 epochs, 2 test models): no fakes."""
import pytest

from labeldistill.experiments import PaperCell, TableSpec, plan


@pytest.mark.slow
def test_digits_cells_end_to_end(monkeypatch, tmp_path, real_cells):
    monkeypatch.setattr(plan, "QUICK_EPOCHS", 2)
    monkeypatch.setattr(plan, "TEST_MODELS", 2)
    spec = TableSpec(98, "digits", (PaperCell("digits/ld-rr/20", 80.0, 5.0, "Digits LD RR", "N=20"),
                                    PaperCell("digits/ld-rr/20@head=linear", 70.0, 5.0, "Digits LD RR", "standard model")))
    out = real_cells.run_pair(spec)
    run_dir = tmp_path / "runs" / "digits_ld-rr_20-quick"
    assert (run_dir / "result.json").exists() and (run_dir / "distilled.safetensors").exists()
    assert out[0].record["run_config"]["epochs"] == 2 and out[0].record["result"]["models"] == 2
    assert out[1].record["result"]["head"] == "linear"
    text = real_cells.report_and_rerun(spec, out)
    assert text.count("REDUCED (2 epochs, --quick)") == 2 and "digits/ld-rr/20@head=linear" in text
