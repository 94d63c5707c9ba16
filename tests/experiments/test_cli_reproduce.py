"""``labeldistill reproduce`` on the command line (runs faked; see conftest)."""
import json

import pytest

from labeldistill.cli import main


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_list_marks_missing_datasets(capsys, data_root, tmp_path):
    assert main(["reproduce", "T3", "--list", "--data-root", str(data_root), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if "/" in "".join(line.split()[:1])}
    assert "MISSING kmnist, emnist-letters (stand-in available: --stand-in)" in lines["emnist-letters:kmnist/ld/10"]
    assert "MISSING cifar10, cub" in lines["cub:cifar10/ld-rr/500"] and "stand-in" not in lines["cub:cifar10/ld-rr/500"]
    assert "MISSING kuzushiji-49" in lines["emnist-letters:kuzushiji-49/ld/10"]
    assert "Missing datasets" in out and "cub: download CUB_200_2011.tgz" in out
    assert len(lines) == 48


def test_list_json_and_stand_in(capsys, data_root, tmp_path):
    rc = main(["reproduce", "table3", "--list", "--stand-in", "--only", "emnist-letters:mnist/*", "--json",
               "--data-root", str(data_root), "--out", str(tmp_path / "o")])
    obj = last_json(capsys.readouterr().out)
    assert rc == 0 and len(obj["cells"]) == 12
    assert all(c["present"] and c["stand_in"] and "KMNIST characters" in c["stand_in"][0] for c in obj["cells"])


def test_list_present(capsys, data_root, tmp_path):
    main(["reproduce", "1", "--list", "--only", "mnist/ld/10", "--data-root", str(data_root), "--out", str(tmp_path)])
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("mnist/ld/10 "))
    assert line.split()[1:] == ["60.89", "±", "3.20", "present"]


def test_dry_run_lists_runs_without_running(capsys, monkeypatch, data_root, tmp_path):
    from labeldistill.experiments import runner

    def boom(*a, **k):
        raise AssertionError("--dry-run must not run anything")

    for name in ("run_distillation", "baseline", "evaluate"):
        monkeypatch.setattr(runner, name, boom)
    out_dir = tmp_path / "o"
    rc = main(["reproduce", "9", "--dry-run", "--only", "mnist/*", "--data-root", str(data_root), "--out", str(out_dir), "--json"])
    text = capsys.readouterr().out
    obj = last_json(text)
    assert rc == 0 and not out_dir.exists()
    assert obj["counts"]["distill"] == 2 and obj["counts"]["evaluate"] == 16 and obj["estimate_seconds"] > 0
    assert "distil second-order/lenet, 400 epochs = 400 steps" in text  # tiny data root: one batch per epoch
    assert "uses the run above" in text and "ESTIMATE" in text and "Estimated time on this machine" in text


def test_the_estimate_states_the_costs_it_uses(capsys, monkeypatch, data_root, tmp_path):
    """The dry run's words about its cost model are the constants its estimate uses, not a copy of them."""
    from labeldistill.experiments import estimate

    monkeypatch.setattr(estimate, "PROTOCOL_STEP_SECONDS", 0.77)
    monkeypatch.setitem(estimate.TEACHER_EPOCH_SECONDS, "convnet3", 1234.0)
    main(["reproduce", "field", "--dry-run", "--only", "mnist/baseline-mtt-expert", "--data-root", str(data_root),
          "--out", str(tmp_path / "o"), "--json"])
    text = capsys.readouterr().out
    assert "fixed-epoch protocols 0.77 s a ConvNet-3 step" in text and "a ConvNet-3 teacher 1234 s an epoch" in text
    assert last_json(text)["estimate_seconds"] > 32 * 1234.0  # the row's 32 teacher epochs, and its students


def test_dry_run_quick_and_missing(capsys, data_root, tmp_path):
    rc = main(["reproduce", "1", "--dry-run", "--quick", "--only", "cifar10/ld/10", "mnist/ld/10", "--data-root", str(data_root),
               "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and "REDUCED" in out and "40 epochs" in out and "MISSING DATA: cifar10" in out


def test_reproduce_writes_the_table(capsys, fakes, data_root, tmp_path):
    out_dir = tmp_path / "o"
    args = ["reproduce", "1", "--only", "mnist/*/10", "--data-root", str(data_root), "--out", str(out_dir)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "| `mnist/ld-rr/10` | MNIST LD RR, N=10 | 50.00 ± 1.00 | 64.57 ± 2.67 | -14.57 | >2σ |" in text
    # The printout shows the selected cells; the file keeps the whole table.
    assert "6 of 6 cells computed" in text and "has all 76" in text and "Wall time" in text and "`mnist/ld/100`" not in text
    whole = (out_dir / "table1.md").read_text()
    assert "6 of 76 cells computed" in whole and "`mnist/ld/100`" in whole
    assert json.loads((out_dir / "table1.json").read_text())["table"] == 1
    assert len(list((out_dir / "cells").iterdir())) == 6 and fakes.count("distill") == 2 and fakes.count("baseline") == 4
    fakes.calls.clear()
    assert main(args + ["--json"]) == 0
    obj = last_json(capsys.readouterr().out)
    assert fakes.calls == [] and set(obj["selected"].values()) == {"done"}


def test_reproduce_quick_and_incomplete_exit_status(capsys, fakes, data_root, tmp_path):
    rc = main(["reproduce", "1", "--quick", "--only", "mnist/ld/10", "cifar10/ld/10", "--data-root", str(data_root),
               "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 1  # a selected cell lacks data
    assert "REDUCED protocol" in out and "Wall time" in out and "(REDUCED" in out
    assert (tmp_path / "table1-quick.md").exists() and not (tmp_path / "table1.md").exists()
    assert "MISSING: cifar10 missing" in (tmp_path / "table1-quick.md").read_text()


def test_ctrl_c_stops_reproduce_with_one_line_and_exit_130(capsys, fakes, data_root, tmp_path):
    fakes.interrupt.add("mnist")  # the first distillation checkpoints, then stops (a first Ctrl-C)
    rc = main(["reproduce", "1", "--only", "mnist/ld/10", "mnist/ld-rr/10", "--data-root", str(data_root), "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 130 and len(err) == 1 and err[0].startswith("labeldistill: mnist/ld/10: Stopped at step 3")
    assert fakes.count("distill") == 1  # mnist/ld-rr/10 was not started


def test_seeds_show_the_mean_over_seeds(capsys, fakes, monkeypatch, data_root, tmp_path):
    """--seeds runs each cell once per seed (seed 0: the cell itself) and shows the seeds' mean ± their std."""
    from labeldistill.experiments import runner
    from labeldistill.experiments.plan import DataView, Options
    from labeldistill.experiments.report import collect_seeds, flag, seed_rows
    from labeldistill.experiments import get_table

    plain = fakes.distill

    def by_seed(cfg, **kw):  # seed k scores 50 + 2k
        fakes.accuracy[f"{cfg.target}/{cfg.method}"] = (50.0 + 2 * cfg.seed, 1.0)
        return plain(cfg, **kw)

    monkeypatch.setattr(runner, "run_distillation", by_seed)
    out_dir = tmp_path / "o"
    args = ["reproduce", "1", "--only", "mnist/ld-rr/10", "--seeds", "0,1,2", "--data-root", str(data_root), "--out", str(out_dir)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "seeds 0, 1, 2 (3 cells)" in text and fakes.count("distill") == 3
    assert "| `mnist/ld-rr/10` | MNIST LD RR, N=10 | 52.00 ± 1.63 | 64.57 ± 2.67 | -12.57 | >2σ | seeds 0: 50.00, 1: 52.00, 2: 54.00 |" in text
    assert (out_dir / "table1-seeds0-1-2.md").exists() and not (out_dir / "table1.md").exists()
    assert {p.name for p in (out_dir / "runs").iterdir()} == {"mnist_ld-rr_10", "mnist_ld-rr_10__seed=1", "mnist_ld-rr_10__seed=2"}
    fakes.calls.clear()
    assert main(args + ["--json"]) == 0 and fakes.calls == []  # every seed's cell is stored
    obj = last_json(capsys.readouterr().out)
    assert obj["seeds"] == [0, 1, 2] and obj["selected"] == {"mnist/ld-rr/10": "done"}
    # A seed not run yet: no mean, the seeds done so far in the note.
    opts = Options(out=out_dir, seeds=(0, 3))
    spec = get_table(1)
    rows = {r["cell"]: r for r in seed_rows(spec, opts, collect_seeds(spec, opts, [], DataView(data_root)))}
    row = rows["mnist/ld-rr/10"]
    assert row["ours_mean"] is None and row["per_seed"] == [50.0, None] and row["status"] == "not run"  # seed 0 alone is not the row
    assert "seeds done: 0: 50.00; not yet: 3 (not run)" in row["note"]
    # One seed: that seed's own test, ± the std over its test models (not 0, a std over one seed), flagged as a
    # plain table is.
    opts = Options(out=out_dir, seeds=(2,))
    (row,) = [r for r in seed_rows(spec, opts, collect_seeds(spec, opts, [], DataView(data_root))) if r["cell"] == "mnist/ld-rr/10"]
    assert (row["ours_mean"], row["ours_std"]) == (54.0, 1.0) and row["per_seed"] == [54.0] and "seed 2" in row["note"]
    assert row["flag"] is flag(54.0, 1.0, row["paper_mean"], row["paper_std"])
    assert main(["reproduce", "1", "--only", "mnist/ld-rr/10", "--seeds", "2", "--data-root", str(data_root), "--out", str(out_dir)]) == 0
    text = capsys.readouterr().out
    assert "Ours: seed 2's test accuracy (%), mean ± std over its fresh test models" in text
    assert "| `mnist/ld-rr/10` | MNIST LD RR, N=10 | 54.00 ± 1.00 | 64.57 ± 2.67 | -10.57 | >2σ | seed 2 |" in text


def test_seeds_set_each_row_beside_the_versus_row_seed_by_seed(fakes, monkeypatch, data_root, tmp_path):
    """A table with ``versus``: over seeds, each seed's mean minus the same seed's on the compared row."""
    import dataclasses

    from labeldistill.experiments import get_table, runner
    from labeldistill.experiments.plan import DataView, Options
    from labeldistill.experiments.report import collect_seeds, seed_rows

    plain = fakes.distill

    def by_seed(cfg, **kw):  # LD RR scores 50 + 2k at seed k, LD 49 + k
        fakes.accuracy[f"{cfg.target}/{cfg.method}"] = ((50.0 + 2 * cfg.seed) if cfg.method == "ridge" else (49.0 + cfg.seed), 1.0)
        return plain(cfg, **kw)

    monkeypatch.setattr(runner, "run_distillation", by_seed)
    out_dir = tmp_path / "o"
    assert main(["reproduce", "1", "--only", "mnist/ld-rr/10", "mnist/ld/10", "--seeds", "0,1,2", "--data-root", str(data_root),
                 "--out", str(out_dir)]) == 0
    spec = dataclasses.replace(get_table(1), versus=("ld", "LD"))
    opts = Options(out=out_dir, seeds=(0, 1, 2))
    rows = {r["cell"]: r for r in seed_rows(spec, opts, collect_seeds(spec, opts, [], DataView(data_root)))}
    v = rows["mnist/ld-rr/10"]["versus"]
    assert v["cell"] == "mnist/ld/10" and v["unit"] == "seeds" and (v["above"], v["of"]) == (3, 3)
    assert v["mean"] == pytest.approx(2.0) and v["std"] == pytest.approx((2 / 3) ** 0.5)
    assert rows["mnist/ld/10"]["versus"] is None and rows["mnist/ld-rr/100"]["versus"] is None  # itself; not run


@pytest.mark.parametrize("args, words", [
    (["reproduce", "5", "--seeds", "0,1"], "name their own seeds"),
    (["reproduce", "4", "--seeds", "0,1"], "training times"),
    (["reproduce", "1", "--seeds", "0,x"], "whole numbers"),
    (["reproduce", "18"], "Unknown table '18'"),
    (["reproduce", "1", "--only", "svhn/*"], "matches no cell"),
])
def test_user_errors(capsys, tmp_path, args, words):
    assert main(args + ["--out", str(tmp_path), "--data-root", str(tmp_path)]) == 2
    assert words in capsys.readouterr().err
