"""Tables 4, 10-12, 15 and 17: cells -> runs (configurations), the DD variant reaching evaluate,
Table 4's timing with its same-machine rule, and --list / reproduce on the CLI (fakes, no runs)."""
import json

import pytest
import torch

from labeldistill.cli import main
from labeldistill.distill import DistillConfig
from labeldistill.experiments import DataView, Options, get_table, parse_cell, plan_cell, run_cells
from labeldistill.experiments.machine import MACHINE_FILE, Machine, comparable, run_machine
from labeldistill.experiments.report import collect
from labeldistill.experiments.timing import timing_markdown, timing_rows
from labeldistill.runs import atomic_write_json, read_json
from labeldistill.unrolled import UnrolledRunConfig


@pytest.fixture
def opts(tmp_path, data_root):
    return Options(out=tmp_path / "out", data_root=str(data_root))


def _plan(name, opts, data_root):
    return plan_cell(parse_cell(name), opts, DataView(data_root))


def test_image_cells_map_to_learn_images(opts, data_root):
    for method, strategy in (("dd-ours", "second-order"), ("dd-ours-rr", "ridge")):
        p = _plan(f"mnist/{method}/20", opts, data_root)
        assert p.kind == "distill" and isinstance(p.config, DistillConfig) and p.evaluation is None
        cfg = p.expected_config()
        assert (cfg["learn"], cfg["image_init"], cfg["method"], cfg["base"]) == ("images", "uniform", strategy, 20)
        assert cfg["reset_window"] == 50 and cfg["epochs"] == 400 and cfg["test_models"] == 20
    q = _plan("cifar10/dd-ours-rr/100", Options(out=opts.out, quick=True), data_root)
    assert q.expected_config()["arch"] == "alexnet" and q.expected_config()["epochs"] == 40 and q.run_slug.endswith("-quick")
    assert _plan("mnist/ld/20", opts, data_root).expected_config()["learn"] == "labels"  # LD is untouched


def test_dd_cells_map_to_the_unrolled_runner(opts, data_root):
    p = _plan("mnist/dd/100", opts, data_root)
    assert p.kind == "unrolled" and isinstance(p.config, UnrolledRunConfig) and p.evaluation is None
    cfg = p.expected_config()
    assert (cfg["method"], cfg["arch"], cfg["epochs"], cfg["test_models"]) == ("dd", "lenet", 400, 200)
    assert (cfg["unrolled"]["steps"], cfg["unrolled"]["epochs"], cfg["unrolled"]["images_per_class"]) == (10, 3, 1)
    assert "device" not in cfg and "test_group" not in cfg  # how, not what
    s = _plan("mnist/sldd/100", opts, data_root).expected_config()
    assert (s["method"], s["epochs"], s["unrolled"]["decay_epochs"]) == ("sldd", 350, 35)
    c = _plan("cifar10/dd/100@arch=lenet", opts, data_root)
    assert c.run_slug == "cifar10_dd_100" and c.evaluation == {"arch": "lenet", "variant": None}
    cc = c.expected_config()
    assert cc["arch"] == "alexnet" and cc["unrolled"]["distill_lr"] == 0.001 and cc["unrolled"]["augment"] is True
    v = _plan("mnist/dd/100@variant=first-steps:10", opts, data_root)
    assert v.run_slug == "mnist_dd_100" and v.cell_slug == "mnist_dd_100__variant=first-steps-10"
    assert v.evaluation == {"arch": None, "variant": "first-steps:10"}
    assert parse_cell("mnist/dd/100@variant=learned").name == "mnist/dd/100"  # the run's own test


def test_variant_reaches_evaluate_and_one_run_serves_all(fakes, opts):
    names = ["mnist/dd/100", "mnist/dd/100@variant=average-lr", "mnist/dd/100@variant=first-steps:10",
             "mnist/dd/100@variant=like-ld"]
    out = run_cells(names, opts)
    assert [o.status for o in out] == ["done"] * 4, [o.message for o in out]
    assert fakes.count("unrolled") == 1 and fakes.count("distill") == 0
    assert [c for c in fakes.calls if c[0] == "evaluate"] == [
        ("evaluate", "mnist_dd_100", None, "average-lr"), ("evaluate", "mnist_dd_100", None, "first-steps:10"),
        ("evaluate", "mnist_dd_100", None, "like-ld")]
    rec = read_json(opts.out / "cells" / "mnist_dd_100__variant=average-lr.json")
    assert rec["kind"] == "evaluation" and rec["evaluation"]["variant"] == "average-lr" and rec["result"]["variant"] == "average-lr"
    assert rec["result"]["accuracy_mean"] == 40.0 and rec["run_result"]["accuracy_mean"] == 50.0
    assert [o.action for o in run_cells(names, opts)] == ["stored cell"] * 4


def test_stored_variant_evaluation_is_reused(fakes, opts):
    run_cells(["mnist/dd/100"], opts)
    run_dir = opts.out / "runs" / "mnist_dd_100"
    from labeldistill.runs.provenance import versions
    atomic_write_json(run_dir / "evaluations" / "lenet-shuffle-within-K200.json",
                      {"accuracy_mean": 12.5, "accuracy_std": 1.0, "variant": "shuffle-within", "models": 200, "versions": versions()})
    out = run_cells(["mnist/dd/100@variant=shuffle-within"], opts)
    assert out[0].action == "reused run, reused evaluation" and out[0].record["result"]["accuracy_mean"] == 12.5
    # One written under another seed (by an evaluate from before -seedN file names) is not this cell's: evaluated again.
    atomic_write_json(run_dir / "evaluations" / "lenet-shuffle-across-K200.json",
                      {"accuracy_mean": 12.5, "accuracy_std": 1.0, "variant": "shuffle-across", "models": 200, "seed": 7,
                       "versions": versions()})
    out = run_cells(["mnist/dd/100@variant=shuffle-across"], opts)
    assert out[0].action == "reused run, evaluated" and out[0].record["result"]["accuracy_mean"] != 12.5


def test_dd_slot_holding_a_label_run_is_a_conflict_and_back(fakes, opts):
    run_cells(["mnist/ld/100"], opts)
    (opts.out / "runs" / "mnist_dd_100").parent.mkdir(parents=True, exist_ok=True)
    import shutil
    shutil.copytree(opts.out / "runs" / "mnist_ld_100", opts.out / "runs" / "mnist_dd_100")
    assert run_cells(["mnist/dd/100"], opts)[0].status == "conflict"
    shutil.rmtree(opts.out / "runs" / "mnist_dd_100")
    run_cells(["mnist/dd/100"], opts)
    shutil.rmtree(opts.out / "runs" / "mnist_ld_100")
    shutil.copytree(opts.out / "runs" / "mnist_dd_100", opts.out / "runs" / "mnist_ld_100")
    for f in (opts.out / "cells").iterdir():
        f.unlink()
    assert run_cells(["mnist/ld/100"], opts)[0].status == "conflict"  # a DD config.json never reads as a DistillConfig


# ---- Table 4 ------------------------------------------------------------------------------------

def _table4(opts, names):
    spec = get_table(4)
    outcomes = run_cells(names, opts)
    return timing_rows(spec, opts, collect(spec, opts, outcomes, DataView(opts.data_root)))


def test_table4_minutes_and_same_machine_ratios(fakes, opts):
    fakes.seconds.update({"mnist/second-order/labels": 600.0, "mnist/ridge/labels": 300.0, "mnist/second-order/images": 900.0,
                          "mnist/dd": 1200.0})
    rows = {r["cell"]: r for r in _table4(opts, ["mnist/ld/100", "mnist/ld-rr/100", "mnist/dd-ours/100", "mnist/dd/100"])}
    assert rows["mnist/ld/100"]["ours_minutes"] == 10.0 and rows["mnist/ld/100"]["ours_ratio"] == 1.0
    assert rows["mnist/ld-rr/100"]["ours_ratio"] == 0.5 and rows["mnist/dd-ours/100"]["ours_ratio"] == 1.5
    assert rows["mnist/dd/100"]["ours_minutes"] == 20.0 and rows["mnist/dd/100"]["ours_ratio"] == 2.0
    assert rows["mnist/dd/100"]["paper_ratio"] == round(116 / 61, 3)
    assert rows["mnist/dd/100"]["machine"].startswith("cpu (")  # machine.json written by reproduce: the CPU model
    assert rows["cifar10/ld/100"]["ours_minutes"] is None and "MISSING" in rows["cifar10/ld/100"]["note"]
    text = timing_markdown(get_table(4), opts, list(rows.values()))
    assert "| `mnist/dd/100` | MNIST DD (original) | 116 | 1.90 | 20.00 | 2.00 | cpu (" in text


def test_table4_refuses_a_ratio_across_devices(fakes, opts):
    run_cells(["mnist/ld/100"], opts)
    fakes.device = "cuda"  # the DD run made on a GPU machine (its machine.json as reproduce writes it there)
    run_cells(["mnist/dd/100"], opts)
    atomic_write_json(opts.out / "runs" / "mnist_dd_100" / MACHINE_FILE, {"sessions": [{"device": "cuda", "name": "NVIDIA H200"}]})
    rows = {r["cell"]: r for r in _table4(opts, ["mnist/ld/100", "mnist/dd/100"])}
    dd = rows["mnist/dd/100"]
    assert dd["machine"] == "cuda (NVIDIA H200)"
    assert dd["ours_minutes"] == 2.0 and dd["ours_ratio"] is None
    assert "no ratio to mnist/ld/100: different devices (cuda vs cpu)" in dd["note"]
    assert rows["mnist/ld/100"]["ours_ratio"] == 1.0


def test_table4_refuses_a_run_resumed_on_another_device(fakes, opts):
    run_cells(["mnist/ld/100", "mnist/dd-ours-rr/100"], opts)
    run_dir = opts.out / "runs" / "mnist_dd-ours-rr_100"
    cfg = read_json(run_dir / "config.json")
    atomic_write_json(run_dir / "config.json", {**cfg, "resumes": [{"device": "cuda"}]})
    assert "ran on cpu and cuda" in run_machine(run_dir).label
    rows = {r["cell"]: r for r in _table4(opts, ["mnist/dd-ours-rr/100"])}
    assert rows["mnist/dd-ours-rr/100"]["ours_ratio"] is None and "spans machines" in rows["mnist/dd-ours-rr/100"]["note"]


def test_machine_rule():
    h200, cpu = Machine("cuda", "NVIDIA H200", "Linux"), Machine("cpu", "AMD EPYC", "Linux", cpus=2)
    assert comparable(h200, h200) == (True, "")
    assert not comparable(h200, Machine("cuda", "RTX 2080 Ti", "Linux"))[0]
    assert not comparable(h200, cpu)[0] and "different devices" in comparable(h200, cpu)[1]
    assert not comparable(cpu, Machine("cpu", "AMD EPYC", "Linux", cpus=16))[0]
    unknown = Machine("cuda", None, "Linux")
    assert not comparable(unknown, unknown)[0]  # GPUs without a recorded model cannot be told apart
    ok, why = comparable(Machine("cpu", None, "Linux"), Machine("cpu", None, "Linux"))
    assert ok and "assumed" in why
    assert not comparable(Machine("cpu", None, "Linux-a"), Machine("cpu", None, "Linux-b"))[0]
    # One model name, other CPUs: the kernels' instruction set tells them apart (session 11: two "AMD EPYC"s).
    avx2, avx512 = (Machine("cpu", "AMD EPYC", "Linux", cpus=2, capability=c) for c in ("AVX2", "AVX512"))
    assert comparable(avx2, avx2) == (True, "")
    assert not comparable(avx2, avx512)[0] and "different CPU kinds (AVX2 vs AVX512)" in comparable(avx2, avx512)[1]
    assert not comparable(avx2, cpu)[0] and "recorded for one run only" in comparable(avx2, cpu)[1]
    assert comparable(cpu, cpu) == (True, "")  # neither recorded (runs made before session 11): as before
    assert avx2.label == "cpu (AMD EPYC, 2 CPUs, AVX2)"


def test_a_run_over_cpus_of_two_kinds_spans_machines(tmp_path):
    atomic_write_json(tmp_path / "result.json", {"device": "cpu"})
    sessions = [{"device": "cpu", "name": "AMD EPYC", "cpus": 2, "cpu_capability": c} for c in ("AVX2", "AVX512")]
    atomic_write_json(tmp_path / MACHINE_FILE, {"sessions": sessions})
    assert run_machine(tmp_path).mixed == "ran on CPUs of kinds AVX2 and AVX512"
    atomic_write_json(tmp_path / MACHINE_FILE, {"sessions": [sessions[0], {**sessions[0], "cpu_capability": None}]})
    assert run_machine(tmp_path).mixed == "some sessions' CPU kind not recorded"
    atomic_write_json(tmp_path / MACHINE_FILE, {"sessions": [sessions[0], sessions[0]]})
    m = run_machine(tmp_path)
    assert m.mixed is None and m.capability == "AVX2"


def test_machine_json_records_sessions(fakes, opts):
    run_cells(["mnist/ld/100"], opts)
    sessions = read_json(opts.out / "runs" / "mnist_ld_100" / MACHINE_FILE)["sessions"]
    assert len(sessions) == 1 and sessions[0]["device"] == "cpu" and sessions[0]["cpus"] >= 1
    assert sessions[0]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


# ---- the CLI ------------------------------------------------------------------------------------

@pytest.mark.parametrize("number, first", [(17, "mnist/dd-ours/10"), (10, "mnist/dd/100@variant=first-steps:10"),
                                           (11, "mnist/dd/100"), (12, "mnist/dd/100"), (15, "cifar10/dd/100"),
                                           (4, "mnist/ld/100")])
def test_list(capsys, data_root, tmp_path, number, first):
    assert main(["reproduce", str(number), "--list", "--json", "--data-root", str(data_root), "--out", str(tmp_path)]) == 0
    obj = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert obj["table"] == number and obj["cells"][0]["cell"] == first
    assert len(obj["cells"]) == len(get_table(number).cells)


def test_list_text_marks_ours_only_and_minutes(capsys, data_root, tmp_path):
    assert main(["reproduce", "11", "--list", "--data-root", str(data_root), "--out", str(tmp_path)]) == 0
    assert "mnist/dd/100@variant=like-ld" in capsys.readouterr().out
    assert main(["reproduce", "4", "--list", "--data-root", str(data_root), "--out", str(tmp_path)]) == 0
    assert "116 min" in capsys.readouterr().out


def test_reproduce_4_and_11(capsys, fakes, data_root, tmp_path):
    out = tmp_path / "o"
    code = main(["reproduce", "4", "--only", "mnist/", "--data-root", str(data_root), "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "Ours ÷ our LD" in text and (out / "table4.md").exists()
    assert read_json(out / "table4.json")["measure"] == "minutes"
    code = main(["reproduce", "11", "--only", "mnist/", "--data-root", str(data_root), "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "not in the paper's table (ours only)" in text and "| `mnist/dd/100@variant=like-ld` |" in text


def test_label_rows_of_tables_10_to_12_evaluate_the_ld_runs(fakes, opts):
    """The LD / LD RR counterparts: Table 10's column N is the LD run tested for T x N / 30 steps; Tables 11 and 12
    show the run's own test. One distillation per method serves every cell."""
    t10 = [c.cell for c in get_table(10).cells if c.row.endswith(("LD", "LD RR")) and c.cell.startswith("mnist/")]
    assert t10[:6] == ["mnist/ld/100@steps=x10/30", "mnist/ld/100@steps=x15/30", "mnist/ld/100@steps=x20/30",
                       "mnist/ld/100@steps=x25/30", "mnist/ld/100", "mnist/ld/100@steps=x35/30"]
    assert all(c.mean is None for c in get_table(10).cells if c.cell in t10)
    for n in (11, 12):
        assert {"mnist/ld/100", "mnist/ld-rr/100"} <= {c.cell for c in get_table(n).cells}
    out = run_cells(t10, opts)
    assert [o.status for o in out] == ["done"] * 12, [o.message for o in out]
    assert fakes.count("distill") == 2
    steps = sorted(c[4] for c in fakes.calls if c[0] == "evaluate" and c[1] == "mnist_ld_100")
    assert steps == ["x10/30", "x15/30", "x20/30", "x25/30", "x35/30"]


def test_steps_as_a_fraction_of_t():
    from labeldistill.errors import UserError
    from labeldistill.evaluation import parse_steps

    assert [parse_steps(f"x{n}/30", 300) for n in (10, 15, 20, 25, 30, 35)] == [100, 150, 200, 250, 300, 350]
    assert parse_steps("x0.5", 301) == 151 and parse_steps("x0.5", 300) == 150 and parse_steps("x1/3", 100) == 33
    assert parse_steps("+5", 300) == 305 and parse_steps("-20", 300) == 280 and parse_steps("42", 300) == 42
    for bad in ("x0", "x1/0", "x-1", "xhalf", "x0.001"):  # x0.001 of 300 rounds to 0 steps
        with pytest.raises(UserError):
            parse_steps(bad, 300)


def test_dry_run_dd(capsys, data_root, tmp_path):
    assert main(["reproduce", "10", "--dry-run", "--only", "mnist/", "--data-root", str(data_root), "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "dd/lenet (unrolled)" in text and "uses the run above" in text and "then evaluate variant=first-steps:15" in text
