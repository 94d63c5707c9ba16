"""``labeldistill report`` on the command line."""
from __future__ import annotations

import json

from labeldistill.cli import main

from .helpers import check_png


def test_report_command(runs, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["report", str(runs["within"]), "--out", str(out), "--max-images", "10", "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["report"] == str(out / "report.md") and (out / "report.html").is_file()
    assert "labels_grid.png" in info["figures"]
    for name in info["figures"]:
        check_png(out / name)


def test_bad_directory_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"labeldistill: error: {tmp_path / 'nope'} is not a run directory (it does not exist)."
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().err.strip().endswith("is not a run directory (no metrics.jsonl).")


def test_compare_command(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["report", "--compare", str(runs["within"]), str(runs["cross"]), "--out", str(out)]) == 0
    assert "compare_curves.png" in capsys.readouterr().out
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    check_png(out / "compare_curves.png")


def test_compare_needs_two_runs_and_two_runs_need_compare(runs, capsys):
    assert main(["report", "--compare", str(runs["within"])]) == 2
    assert "at least two" in capsys.readouterr().err
    assert main(["report", str(runs["within"]), str(runs["cross"])]) == 2
    assert "--compare" in capsys.readouterr().err
