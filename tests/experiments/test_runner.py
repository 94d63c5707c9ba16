"""The runner with fast fakes of run_distillation / baseline / evaluate (they write the same files)."""
import json

import pytest

from labeldistill.distill import Interrupted
from labeldistill.experiments import DataView, Options, PaperCell, TableSpec, run_cells, runner
from labeldistill.experiments.report import collect, markdown, table_rows, write_report
from labeldistill.runs import atomic_write_json, read_json


@pytest.fixture
def opts(tmp_path, data_root):
    return Options(out=tmp_path / "out", data_root=str(data_root))


def statuses(outcomes):
    return {o.cell: (o.status, o.action) for o in outcomes}


def test_cells_are_stored_and_never_recomputed(fakes, opts):
    names = ["mnist/ld/10", "mnist/baseline-ls/10", "mnist/ld-rr/10"]
    first = run_cells(names, opts)
    assert [o.status for o in first] == ["done"] * 3 and fakes.count("distill") == 2 and fakes.count("baseline") == 1
    rec = read_json(opts.out / "cells" / "mnist_ld_10.json")
    assert rec["cell"] == "mnist/ld/10" and rec["run_dir"] == str((opts.out / "runs" / "mnist_ld_10").absolute())
    assert rec["result"]["accuracy_mean"] == 50.0 and rec["reduced"] is False and rec["run_config"]["method"] == "second-order"
    assert read_json(opts.out / "cells" / "mnist_baseline-ls_10.json")["run_config"]["smoothing"] == 0.1
    again = run_cells(names, opts)
    assert all(o.action == "stored cell" for o in again) and len(fakes.calls) == 3


def test_finished_runs_are_reused(fakes, opts):
    run_cells(["mnist/ld/10", "mnist/baseline/10"], opts)
    for f in (opts.out / "cells").iterdir():
        f.unlink()  # lose the cells, keep the runs
    out = run_cells(["mnist/ld/10", "mnist/baseline/10"], opts)
    assert [o.action for o in out] == ["reused run", "reused run"] and len(fakes.calls) == 2


def test_runs_made_by_distill_and_baseline_commands_are_reused(fakes, opts):
    from labeldistill.baselines import BaselineSettings
    from labeldistill.distill import DistillConfig

    # as if the user had run `labeldistill distill --out OUT/runs/mnist_ld-rr_20 --method ridge --base 20 --device cpu`
    fakes.distill(DistillConfig(target="mnist", base=20, method="ridge", device="cpu"), out=opts.out / "runs" / "mnist_ld-rr_20")
    fakes.baseline(BaselineSettings(target="mnist", base=20, head="ridge"), out=opts.out / "runs" / "mnist_baseline-rr_20")
    fakes.calls.clear()
    out = run_cells(["mnist/ld-rr/20", "mnist/baseline-rr/20"], opts)
    assert [o.action for o in out] == ["reused run", "reused run"] and fakes.calls == []


def test_a_run_with_another_configuration_is_a_conflict(fakes, opts):
    from labeldistill.distill import DistillConfig

    run_dir = opts.out / "runs" / "mnist_ld_50"
    fakes.distill(DistillConfig(target="mnist", base=50, epochs=7), out=run_dir)
    before = (run_dir / "result.json").read_text()
    out = run_cells(["mnist/ld/50", "mnist/ld/10"], opts)
    assert out[0].status == "conflict" and "epochs: 7 (wanted 400)" in out[0].message and out[1].status == "done"
    assert (run_dir / "result.json").read_text() == before  # left alone
    assert not (opts.out / "cells" / "mnist_ld_50.json").exists()


@pytest.mark.parametrize("stop", ["checkpointed", "at once"])
def test_interrupted_reproduce_resumes_where_it_stopped(fakes, opts, stop):
    names = ["mnist/baseline/10", "mnist/ld/10", "mnist/ld/10@steps=+50", "mnist/ld-rr/10"]
    fakes.interrupt.add("mnist")  # the first distillation stops after writing its checkpoint
    if stop == "at once":  # a second Ctrl-C
        fakes.stop = KeyboardInterrupt()
    # A stop the user asked for stops the batch: the later cells are not started (a first Ctrl-C
    # used to fail just the running cell and go on with the next one).
    with pytest.raises(Interrupted if stop == "checkpointed" else KeyboardInterrupt) as info:
        run_cells(names, opts)
    assert fakes.count("distill") == 1
    if stop == "checkpointed":
        assert str(info.value).startswith("mnist/ld/10: Stopped at step 3") and "same command again" in str(info.value)
    assert (opts.out / "cells" / "mnist_baseline_10.json").exists()
    assert (opts.out / "runs" / "mnist_ld_10" / "checkpoint.safetensors").exists()
    assert not (opts.out / "runs" / "mnist_ld_10" / "result.json").exists()
    fakes.calls.clear()
    out = run_cells(names, opts)
    assert [o.status for o in out] == ["done"] * 4
    assert out[0].action == "stored cell"  # finished before the interruption: not recomputed
    assert out[1].action == "resumed run" and ("distill", "mnist_ld_10", True) in fakes.calls
    assert out[2].action == "reused run, evaluated"
    assert fakes.count("baseline") == 0 and fakes.count("distill") == 2  # the resume + ld-rr


def test_evaluation_cells_evaluate_the_shared_run(fakes, opts):
    names = ["mnist/ld/100@steps=-50", "mnist/ld/100@steps=+50", "mnist/ld-rr/100@head=linear", "mnist/ld-rr/100@head=ridge"]
    out = run_cells(names, opts)
    assert fakes.count("distill") == 2 and fakes.count("evaluate") == 4
    assert ("evaluate", "mnist_ld-rr_100", None, "linear", None) in fakes.calls
    assert out[1].record["result"]["accuracy_mean"] == pytest.approx(50.5) and out[1].record["kind"] == "evaluation"
    assert out[1].record["run_result"]["accuracy_mean"] == 50.0


def test_missing_data_is_reported_not_dropped(fakes, opts):
    out = run_cells(["cifar10/ld/10", "mnist/ld/10", "emnist-letters:kmnist/ld/10"], opts)
    assert [o.status for o in out] == ["missing", "done", "missing"]
    assert "cifar10 missing" in out[0].message and "kmnist" in out[2].message
    assert fakes.count("distill") == 1


def test_stand_in_runs_are_labelled(fakes, opts, data_root):
    opts.stand_in = True
    out = run_cells(["emnist-letters:kmnist/ld/10"], opts)
    rec = out[0].record
    assert out[0].status == "done" and len(rec["stand_in"]) == 2 and rec["run_slug"].endswith("-stand-in")
    assert rec["run_config"]["source"] == "mnist" and rec["run_config"]["target"].endswith("kmnist_test.npz")


SPEC = TableSpec(99, "test table", (
    PaperCell("mnist/ld/10", 60.89, 3.20, "MNIST LD", "N=10"),
    PaperCell("mnist/baseline/10", 48.35, 3.03, "MNIST Baseline", "N=10"),
    PaperCell("mnist/ld/20", 74.37, 1.27, "MNIST LD", "N=20"),
    PaperCell("cifar10/ld/10", 25.69, 0.72, "CIFAR-10 LD", "N=10"),
))


def test_markdown_ours_beside_paper_with_difference_and_flag(fakes, opts):
    fakes.accuracy = {"mnist/second-order": (60.0, 1.0), "mnist/baseline": (30.0, 2.0)}
    outcomes = run_cells(["mnist/ld/10", "mnist/baseline/10"], opts)
    data = DataView(opts.data_root)
    rows = table_rows(SPEC, opts, collect(SPEC, opts, outcomes, data))
    text, obj = write_report(SPEC, opts, rows)
    assert "| `mnist/ld/10` | MNIST LD, N=10 | 60.00 ± 1.00 | 60.89 ± 3.20 | -0.89 |  |" in text
    assert "| `mnist/baseline/10` | MNIST Baseline, N=10 | 30.00 ± 2.00 | 48.35 ± 3.03 | -18.35 | >2σ |" in text
    assert "| `mnist/ld/20` | MNIST LD, N=20 | — | 74.37 ± 1.27 | — |  | NOT RUN" in text
    assert "cifar10 missing" in text and "sqrt(σ_paper² + σ_ours²)" in text
    assert (opts.out / "table99.md").read_text() == text
    saved = json.loads((opts.out / "table99.json").read_text())
    assert saved["rows"][1]["flag"] is True and saved["rows"][0]["diff"] == pytest.approx(-0.89)


def test_quick_is_labelled_everywhere(fakes, opts):
    opts.quick = True
    outcomes = run_cells(["mnist/ld/10", "mnist/baseline/10"], opts)
    rec = read_json(opts.out / "cells" / "mnist_ld_10-quick.json")
    assert rec["reduced"] is True and rec["protocol"] == "quick" and "REDUCED" in rec["protocol_note"]
    assert read_json(opts.out / "runs" / "mnist_ld_10-quick" / "config.json")["config"]["epochs"] == 40
    assert read_json(opts.out / "cells" / "mnist_baseline_10-quick.json")["reduced"] is True
    rows = table_rows(SPEC, opts, collect(SPEC, opts, outcomes, DataView(opts.data_root)))
    text = markdown(SPEC, opts, rows)
    assert text.splitlines()[2].startswith("**REDUCED protocol (--quick): 40 epochs instead of 400 / 800")
    table = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(table) == 4 and all("REDUCED (40 epochs, --quick)" in line for line in table)
    # a full-protocol reproduce does not pick up the quick cells
    opts.quick = False
    assert collect(SPEC, opts, [], DataView(opts.data_root))[0].status == "not run"


def test_stale_cell_json_is_not_trusted(fakes, opts):
    run_cells(["mnist/ld/10"], opts)
    path = opts.out / "cells" / "mnist_ld_10.json"
    rec = read_json(path)
    rec["run_config"]["epochs"] = 3
    atomic_write_json(path, rec)
    out = run_cells(["mnist/ld/10"], opts)
    assert out[0].action == "reused run" and read_json(path)["run_config"]["epochs"] == 400


def test_a_cell_stored_before_a_setting_existed_stays_stored(fakes, opts):
    """A cell stored by code that had no setting yet (its record lacks the key) is the run it names with that setting's
    default, as the run itself is (run_state): it is not recorded again."""
    names = ["mnist/ld/10", "mnist/baseline/10"]
    run_cells(names, opts)
    for slug, key in (("mnist_ld_10", "image_lr"), ("mnist_baseline_10", "teacher_recipe")):
        path = opts.out / "cells" / f"{slug}.json"
        rec = read_json(path)
        del rec["run_config"][key]
        atomic_write_json(path, rec)
    before = {f.name: f.read_text() for f in (opts.out / "cells").iterdir()}
    out = run_cells(names, opts)
    assert [o.action for o in out] == ["stored cell", "stored cell"] and len(fakes.calls) == 2
    assert {f.name: f.read_text() for f in (opts.out / "cells").iterdir()} == before


def test_a_cell_recorded_again_from_its_stored_run_keeps_how_it_was_first_made(fakes, opts):
    run_cells(["mnist/ld/10"], opts)
    path = opts.out / "cells" / "mnist_ld_10.json"
    first = read_json(path)
    stale = {**first, "run_config": {**first["run_config"], "epochs": 3}}  # no longer this cell's: recorded again
    atomic_write_json(path, stale)
    assert run_cells(["mnist/ld/10"], opts)[0].action == "reused run"
    again = read_json(path)
    assert again["action"] == "reused run" and again["run_config"]["epochs"] == 400
    assert again["first_made"] == {k: first.get(k) for k in runner.ORIGIN_KEYS} and again["first_made"]["action"] == "ran"
    atomic_write_json(path, {**again, "run_config": stale["run_config"]})
    run_cells(["mnist/ld/10"], opts)  # recorded a third time: still the first making, not the second record
    assert read_json(path)["first_made"] == again["first_made"]
    # other numbers in the replaced record (its run was made again since): nothing of it is carried over
    atomic_write_json(path, {**stale, "result": {**first["result"], "accuracy_mean": 1.0}})
    run_cells(["mnist/ld/10"], opts)
    assert "first_made" not in read_json(path)


def test_a_run_stopped_before_its_configuration_starts_again_and_adopts_its_siblings_models(fakes, opts, monkeypatch):
    """A distillation stopped while its start was chosen (no config.json yet: a teacher start's temperature choice
    under dc-dsa is four 1,000-epoch students) is started again, not called a conflict, and within a cell a run's
    ledgers adopt the models its sibling runs finished under the same key (runs/ledger.py)."""
    from pathlib import Path

    from labeldistill.experiments import runner
    from labeldistill.experiments.machine import record_machine
    from labeldistill.runs.ledger import ModelLedger

    key = {"students": "a teacher's labels at temperature 1"}
    ModelLedger(opts.out / "runs" / "mnist_baseline-teacher_10" / "ledger", key).record(0, accuracy=42.0)
    run_dir = opts.out / "runs" / "mnist_ld_10"
    ModelLedger(run_dir / "ledger", {"students": "another temperature"}).record(0, accuracy=7.0)  # its own, kept
    record_machine(run_dir, "cpu", resumed=False)
    seen = []
    fake = fakes.distill

    def distill(cfg, *, out, **kw):
        seen.append((ModelLedger(Path(out) / "ledger", key).done(), ModelLedger(Path(out) / "ledger", {"students": "another temperature"}).done()))
        return fake(cfg, out=out, **kw)

    monkeypatch.setattr(runner, "run_distillation", distill)
    out = run_cells(["mnist/ld/10"], opts)
    assert (out[0].status, out[0].action) == ("done", "ran")
    assert seen == [({0: {"model": 0, "accuracy": 42.0}}, {0: {"model": 0, "accuracy": 7.0}})]
    other = opts.out / "runs" / "mnist_ld-rr_10"  # a folder with something else in it stays a conflict, left alone
    (other / "ledger").mkdir(parents=True)
    (other / "notes.txt").write_text("mine")
    assert run_cells(["mnist/ld-rr/10"], opts)[0].status == "conflict" and (other / "notes.txt").read_text() == "mine"


def _as_finished_after(run_dir, *, epoch: int, step: int) -> None:
    """The fake run's checkpoint replaced by the parts of a real one that an extension reads (a one-student implicit
    run that validated its last epoch)."""
    from labeldistill.runs import save_state

    save_state(run_dir / "checkpoint.safetensors", {"epoch": epoch, "step": step, "students": {"followed": step},
                                                    "selector": {"history": [{"epoch": epoch}], "pending": []}})


@pytest.mark.parametrize("step", [3, 5])  # 5: a multiple of the refresh interval, skipped at the last step: not continued
def test_a_cell_of_more_epochs_extends_the_run_of_fewer(fakes, opts, step):
    from labeldistill.experiments import parse_cell, plan_cell
    from labeldistill.experiments.rundirs import run_state

    one, two = (f"mnist/implicit-mtt-expert{v}/100@protocol=dc-dsa" for v in ("", "-e2"))
    run_cells([one], opts)
    short = opts.out / "runs" / "mnist_implicit-mtt-expert_100__protocol=dc-dsa"
    _as_finished_after(short, epoch=1, step=step)
    before = (short / "result.json").read_text()
    plan = plan_cell(parse_cell(two), opts, DataView(opts.data_root))
    state, detail = run_state(plan, opts.out)
    if step == 5:
        assert (state, detail) == ("new", "")
        return
    assert (state, detail) == ("extend", str(short))
    from labeldistill.experiments.runner import describe_action

    assert describe_action(plan, opts).startswith(f"extend the run {short} into ")
    [out] = run_cells([two], opts)
    longer = plan.run_dir(opts.out)
    assert out.status == "done" and out.action == f"extended the run {short}"
    assert fakes.calls[-1] == ("distill", longer.name, True)  # resumed from the copy
    rec = read_json(longer / "config.json")
    assert (rec["config"]["epochs"], rec["config"]["val_every"]) == (2, 1) and rec["extended_from"][0]["run"] == str(short)
    assert (short / "result.json").read_text() == before
    assert run_state(plan, opts.out)[0] == "finished"
