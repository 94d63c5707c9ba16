"""Base selectors in ``reproduce``: Table 7's cells, @select in cell names, --base-select (runs faked; see conftest)."""
import json

import pytest

from labeldistill.cli import main
from labeldistill.experiments import DataView, Options, get_table, parse_cell, plan_cell
from labeldistill.experiments.plan import distill_takes_select
from labeldistill.selectors import list_selectors


def plan(name, data_root, **kw):
    return plan_cell(parse_cell(name), Options(**kw), DataView(data_root))


def test_table7_lists_its_cells(capsys, data_root, tmp_path):
    assert main(["reproduce", "7", "--list", "--json", "--data-root", str(data_root), "--out", str(tmp_path)]) == 0
    obj = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cells = [c["cell"] for c in obj["cells"]]
    assert len(cells) == 72 and all(c.endswith("@select=paper-table7") for c in cells)
    assert {c.split("/")[0] for c in cells} == {"mnist", "cifar10"}
    assert "mnist/ld-rr/100@select=paper-table7" in cells and "cifar10/baseline-rr-ls/500@select=paper-table7" in cells
    row = next(c for c in obj["cells"] if c["cell"] == "mnist/ld/100@select=paper-table7")
    assert (row["paper_mean"], row["paper_std"], row["present"]) == (86.66, 0.44, True)  # MNIST is in the tiny data root
    assert sorted(r.row for r in get_table(7).references) == ["CIFAR-10 DD", "CIFAR-10 SLDD", "MNIST DD", "MNIST SLDD"]


def test_select_names_and_keeps_runs_apart(data_root):
    assert parse_cell("mnist/ld/10@select=random").name == "mnist/ld/10"  # the default draw: no key
    t7 = plan("mnist/baseline/100@select=paper-table7", data_root)
    t1 = plan("mnist/baseline/100", data_root)
    assert t7.config.base_select == "paper-table7" and t7.select == "paper-table7"
    assert t7.run_slug == "mnist_baseline_100__select=paper-table7" and t1.run_slug == "mnist_baseline_100"
    assert t7.expected_config()["base_select"] == "paper-table7" and t1.expected_config()["base_select"] == "random"
    flag = plan("mnist/baseline/100", data_root, base_select="kcenter")  # reproduce 1 --base-select kcenter
    assert flag.config.base_select == "kcenter" and flag.run_slug == "mnist_baseline_100__select=kcenter"
    assert flag.cell_slug == "mnist_baseline_100__select=kcenter" and flag.cell.name == "mnist/baseline/100"


@pytest.mark.skipif(not distill_takes_select(), reason="DistillConfig.base_select not added yet")
def test_distill_cells_carry_the_selector(data_root):
    p = plan("mnist/ld-rr/20@select=paper-table7", data_root)
    assert p.config.base_select == "paper-table7" and p.expected_config()["base_select"] == "paper-table7"
    assert p.run_slug == "mnist_ld-rr_20__select=paper-table7"


def test_reproduce7_runs_with_the_selector_and_one_cache(capsys, fakes, data_root, tmp_path, monkeypatch):
    from labeldistill import selectors

    seen = []
    real = fakes.baseline

    def baseline(s, **kw):
        seen.append((s.base_select, selectors.default_cache_dir()))
        return real(s, **kw)

    monkeypatch.setattr("labeldistill.experiments.runner.baseline", baseline)
    out = tmp_path / "o"
    rc = main(["reproduce", "7", "--only", "mnist/baseline/10@select=paper-table7", "mnist/baseline-rr/10@select=paper-table7",
               "--data-root", str(data_root), "--out", str(out)])
    assert rc == 0, capsys.readouterr()
    assert seen == [("paper-table7", out / "selections")] * 2
    rec = json.loads((out / "cells" / "mnist_baseline_10__select=paper-table7.json").read_text())
    assert rec["base_select"] == "paper-table7" and rec["run_config"]["base_select"] == "paper-table7"
    assert (out / "table7.md").is_file()


def test_base_select_flag(capsys, fakes, data_root, tmp_path):
    out = tmp_path / "o"
    assert main(["reproduce", "1", "--base-select", "kcenter", "--only", "mnist/baseline/10", "--data-root", str(data_root),
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert fakes.calls == [("baseline", "mnist_baseline_10__select=kcenter")]
    text = (out / "table1-select-kcenter.md").read_text()
    assert "Base sets chosen by `kcenter`" in text and not (out / "table1.md").exists()
    # Table 7's cells name their selector: another one is refused in one line; a bad name too.
    for args, words in ((["7", "--base-select", "kcenter"], "Table 7's cells choose their base sets with paper-table7"),
                        (["1", "--base-select", "nope"], f"Unknown base selector 'nope'. Known: {', '.join(list_selectors())}.")):
        assert main(["reproduce", *args, "--list", "--out", str(out), "--data-root", str(data_root)]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1
