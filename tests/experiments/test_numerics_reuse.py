"""``reproduce`` reuses only runs made with the current numerics version (runs faked; see conftest)."""
import json

from labeldistill.cli import main
from labeldistill.numerics import NUMERICS_VERSION
from labeldistill.runs import atomic_write_json, read_json

CELLS = ["--only", "mnist/ld/10", "mnist/baseline/10"]


def _reproduce(data_root, out, *extra):
    return main(["reproduce", "1", *CELLS, "--data-root", str(data_root), "--out", str(out), "--json", *extra])


def _age(out, version):
    """Make every run and cell under ``out`` look as if an older code version had made them."""
    for path in list(out.rglob("config.json")) + list(out.rglob("result.json")) + list((out / "cells").glob("*.json")):
        rec = read_json(path)
        for settings in (rec.get("config"), rec.get("settings")):  # settings added since: absent from old runs
            if isinstance(settings, dict):
                settings.pop("validation_models", None)
                settings.pop("allow_tf32", None)
        if "versions" in rec:
            rec["versions"] = {**rec["versions"], "numerics_version": version, "git_commit": "0123456789abcdef"}
        if path.parent.name == "cells":
            rec["numerics_version"], rec["git_commit"] = version, "0123456789abcdef"
        atomic_write_json(path, rec)


def _made_then_aged(data_root, out, fakes, capsys, version):
    """A table made, then every run and cell of it made to look older; the fakes' calls cleared."""
    assert _reproduce(data_root, out) == 0
    _age(out, version)
    fakes.calls.clear()
    capsys.readouterr()


def test_cells_record_the_code_that_made_them(capsys, fakes, data_root, tmp_path):
    out = tmp_path / "o"
    assert _reproduce(data_root, out) == 0
    capsys.readouterr()
    for cell in (out / "cells").glob("*.json"):
        rec = read_json(cell)
        assert rec["numerics_version"] == NUMERICS_VERSION and "git_commit" in rec and "git_dirty" in rec


def test_runs_of_another_numerics_version_are_set_aside_and_run_again(capsys, fakes, data_root, tmp_path):
    out = tmp_path / "o"
    _made_then_aged(data_root, out, fakes, capsys, NUMERICS_VERSION - 1)
    assert _reproduce(data_root, out) == 0
    assert fakes.count("distill") == 1 and fakes.count("baseline") == 1  # nothing of the old version was reused
    aside = sorted(p.name for p in (out / "runs").iterdir() if ".numerics-" in p.name)
    assert aside == [f"mnist_baseline_10.numerics-{NUMERICS_VERSION - 1}", f"mnist_ld_10.numerics-{NUMERICS_VERSION - 1}"]
    for cell in (out / "cells").glob("*.json"):
        assert read_json(cell)["numerics_version"] == NUMERICS_VERSION


def test_reuse_any_version_reuses_and_marks_the_cells(capsys, fakes, data_root, tmp_path):
    out = tmp_path / "o"
    _made_then_aged(data_root, out, fakes, capsys, NUMERICS_VERSION - 1)
    assert _reproduce(data_root, out, "--reuse-any-version") == 0
    obj = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert fakes.calls == []
    table = (out / "table1.md").read_text()
    assert table.count(f"OTHER CODE: numerics version {NUMERICS_VERSION - 1} (0123456789)") == 2
    assert "selected" in obj


def test_unversioned_runs_count_as_another_version(capsys, fakes, data_root, tmp_path):
    out = tmp_path / "o"
    assert _reproduce(data_root, out) == 0
    for path in out.rglob("*.json"):
        rec = read_json(path)
        rec.pop("versions", None)
        rec.pop("numerics_version", None)
        atomic_write_json(path, rec)
    fakes.calls.clear()
    assert _reproduce(data_root, out) == 0
    assert fakes.count("distill") == 1 and (out / "runs" / "mnist_ld_10.numerics-unversioned").is_dir()
