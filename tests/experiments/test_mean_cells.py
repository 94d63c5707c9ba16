"""A cell whose run is the mean of other cells' label sets (experiments/means.py): its parts, its run, its cost, and
what makes it again."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from labeldistill.teacher import labels as teacher_labels_module  # where the teacher's labels call train_teacher
from labeldistill.artifact import load
from labeldistill.cli import main
from labeldistill.errors import UserError
from labeldistill.experiments import METHODS, parse_cell, run_cells
from labeldistill.experiments.plan import DataView, Options, plan_cell
from labeldistill.experiments.rundirs import run_state
from labeldistill.experiments.units import work_units
from labeldistill.protocols import get_protocol
from labeldistill.protocols._base import PROTOCOLS


def test_a_mean_cell_names_its_parts_and_takes_their_settings():
    cell = parse_cell("cifar10/mean-mtt-experts/100@seed=2@protocol=dc-dsa")
    assert cell.kind == "mean" and [p.name for p in cell.parts] == [
        "cifar10/implicit-mtt-expert-e2/100@seed=2@protocol=dc-dsa", "cifar10/implicit-mtt-expert-t64-e2/100@seed=2@protocol=dc-dsa"]
    assert not cell.is_evaluation and parse_cell("cifar10/baseline/100").parts == ()
    with pytest.raises(UserError, match="takes only @seed, @target-size, @select and @protocol, not @arch"):
        parse_cell("cifar10/mean-mtt-experts/100@protocol=dc-dsa@arch=lenet")
    with pytest.raises(UserError, match="averages the label sets of another cell that is not valid: .*fixed-epoch @protocol"):
        parse_cell("cifar10/mean-mtt-experts/100")  # its parts train their students the protocol's way: they need one


def test_a_mean_shares_a_unit_of_work_with_the_runs_it_averages(tmp_path):
    opts, data = Options(out=tmp_path), DataView(tmp_path / "empty")
    names = ["cifar10/implicit-mtt-expert-e2/100@protocol=dc-dsa", "cifar10/baseline/100@protocol=dc-dsa",
             "cifar10/implicit-mtt-expert-t64-e2/100@protocol=dc-dsa", "cifar10/mean-mtt-experts/100@protocol=dc-dsa",
             "cifar10/implicit-mtt-expert-lr1e-2-e2/100@protocol=dc-dsa", "cifar10/mean-mtt-experts-3/100@protocol=dc-dsa"]
    plans = [plan_cell(parse_cell(n), opts, data) for n in names]
    # Both means and their three parts in one unit (never two workers on one run); the baseline alone.
    assert work_units(plans, opts) == [[0, 2, 3, 4, 5], [1]]
    assert work_units(plans[3:4], opts) == [[0]]


def test_a_mean_stopped_while_its_parts_were_made_starts_again(tmp_path):
    """A mean's run directory holds only the lock and reproduce's machine note while its parts are made: stopped then, it
    is a new run when run again, not a conflict (session 49's seed-1 lane met the conflict); anything else in it is one."""
    opts, data = Options(out=tmp_path), DataView(tmp_path / "empty")
    plan = plan_cell(parse_cell("cifar10/mean-mtt-experts/100@seed=1@protocol=dc-dsa"), opts, data)
    run_dir = plan.run_dir(tmp_path)
    run_dir.mkdir(parents=True)
    (run_dir / ".lock").write_text("123")
    (run_dir / "machine.json").write_text("{}")
    assert run_state(plan, tmp_path)[0] == "new"
    (run_dir / "stray.txt").write_text("not ours")
    state, detail = run_state(plan, tmp_path)
    assert state == "conflict" and "no readable configuration" in detail


@pytest.mark.slow
def test_a_mean_cell_end_to_end_on_digits(monkeypatch, tmp_path, short_step_search, capsys):
    """Real, tiny: two implicit runs from a teacher's labels at two temperatures, made by the mean cell itself, their
    mean written and tested under a shortened dc; the cell's cost is theirs and its test; stored, then made again when
    a part's set changes."""
    monkeypatch.setenv("LABELDISTILL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(PROTOCOLS._items, "dc", dataclasses.replace(get_protocol("dc"), epochs=2))
    fit = teacher_labels_module.train_teacher  # a two-epoch teacher: the cells' code path, not a converged teacher
    monkeypatch.setattr(teacher_labels_module, "train_teacher", lambda target, cfg, **kw: fit(target, dataclasses.replace(cfg, epochs=2, patience=1), **kw))
    for t in (1.0, 4.0):
        monkeypatch.setitem(METHODS, f"implicit-t{t:g}", {**METHODS["implicit-teacher"], "temperature": t})
    monkeypatch.setitem(METHODS, "mean-t", {"kind": "mean", "parts": ("implicit-t1", "implicit-t4"), "paper": "mean"})
    name = "digits/mean-t/20@target-size=300@protocol=dc"
    opts = Options(out=tmp_path / "out", device="cpu")
    [out] = run_cells([name], opts)
    assert out.status == "done", out.message
    rec = out.record
    runs = tmp_path / "out" / "runs"
    parts = [load(runs / f"digits_implicit-t{t}_20__target-size=300__protocol=dc") for t in (1, 4)]
    mean = load(runs / "digits_mean-t_20__target-size=300__protocol=dc")
    assert not torch.equal(parts[0].labels, parts[1].labels)  # two different sets ...
    want = (parts[0].labels.double() + parts[1].labels.double()) / 2  # ... whose mean, in float64, is the cell's labels
    assert torch.allclose(mean.labels.double(), want, atol=1e-7, rtol=0) and torch.equal(mean.images, parts[0].images)
    assert mean.provenance["averaged_from"] == [p.content_sha256() for p in parts]
    assert (rec["kind"], rec["result"]["models"], rec["result"]["arch"]) == ("mean", 5, "convnet3")
    # Its cost: what made its parts (their distillations and the teacher, not their tests), and its own test.
    made = [(runs / f"digits_implicit-t{t}_20__target-size=300__protocol=dc") for t in (1, 4)]
    distilled = sum(float(load_json(d / "result.json")["distill_seconds"]) for d in made)
    assert set(rec["cost_seconds"]) == {"distill", "teacher", "test"}
    assert rec["cost_seconds"]["distill"] == pytest.approx(distilled, abs=0.11)
    assert rec["cost_seconds"]["test"] == pytest.approx(rec["result"]["seconds"], abs=0.06)
    # Not a training: report says so in one line and names the runs to report.
    assert main(["report", str(runs / "digits_mean-t_20__target-size=300__protocol=dc")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the mean of other runs' label sets (digits_implicit-t1_20" in err[0]
    # The parts' own cells then reuse their runs; the mean's cell is stored.
    assert [o.action for o in run_cells(["digits/implicit-t1/20@target-size=300@protocol=dc"], opts)] == ["reused run"]
    assert [o.action for o in run_cells([name], opts)] == ["stored cell"]
    # A part's set made again (other labels): the mean is no longer finished, and is made again from the sets as they are.
    mean_plan = plan_cell(parse_cell(name), opts, DataView(None))
    assert run_state(mean_plan, opts.out) == ("finished", "")
    changed = dataclasses.replace(parts[1], labels=torch.softmax(torch.randn_like(parts[1].labels), 1))
    changed.save(made[1] / "distilled.safetensors")
    assert run_state(mean_plan, opts.out) == ("new", "")
    (tmp_path / "out" / "cells" / "digits_mean-t_20__target-size=300__protocol=dc.json").unlink()
    [again] = run_cells([name], opts)
    assert again.action == "ran" and torch.allclose(load(runs / "digits_mean-t_20__target-size=300__protocol=dc").labels.double(),
                                                    (parts[0].labels.double() + changed.labels.double()) / 2, atol=1e-7, rtol=0)


def load_json(path):
    return json.loads(path.read_text())

