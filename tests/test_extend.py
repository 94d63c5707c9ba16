"""``distill --extend SRC --epochs N --out NEW`` (distill/extend.py): a finished run continued to more epochs equals
the run started with them, step for step and bit for bit; the source's record stays as it was; and the two cases in
which a continuation would differ (the snapshots validated so far; the refresh a run skips at its last step, in a
checkpoint of code before session 46, which did not keep it) are refused in one line."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from labeldistill.artifact import load
from labeldistill.cli import main
from labeldistill.distill import Distiller
from labeldistill.distill.extend import extend_run
from labeldistill.distill.loop import CHECKPOINT
from labeldistill.errors import UserError
from labeldistill.runs import read_metrics
from labeldistill.runs.tensorstate import load_state, save_state

from test_distill_loop import TinyNet, _config, blob_problem
from test_implicit import IMPLICIT, short_dsa  # noqa: F401  (a fixture)


def _distill(mnist_small, *extra: str) -> int:
    return main(["distill", "--target", f"npz:{mnist_small}", "--base", "20", "--method", "ridge", "--test-models", "2",
                 "--reset-window", "4", "--seed", "5", "--device", "cpu", "--no-progress", *extra])


def _records(run, kind: str) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("seconds", "time")} for r in read_metrics(run / "metrics.jsonl")
            if r["kind"] == kind]


def test_a_finished_run_extended_equals_the_longer_run_and_keeps_its_own_record(mnist_small, tmp_path):
    straight, short, longer = tmp_path / "straight", tmp_path / "short", tmp_path / "longer"
    assert _distill(mnist_small, "--epochs", "3", "--val-every", "1", "--out", str(straight)) == 0
    assert _distill(mnist_small, "--epochs", "2", "--val-every", "1", "--out", str(short)) == 0
    before = (short / "result.json").read_bytes(), (short / "config.json").read_bytes()
    assert main(["distill", "--extend", str(short), "--epochs", "3", "--out", str(longer), "--device", "cpu", "--no-progress"]) == 0

    assert _records(longer, "step") == _records(straight, "step") and len(_records(longer, "step")) > 0
    assert [r["val_accuracy"] for r in _records(longer, "validation")] == [r["val_accuracy"] for r in _records(straight, "validation")]
    a, b = load(straight), load(longer)
    assert torch.equal(a.labels, b.labels) and a.steps == b.steps
    ra, rb = (json.loads((d / "result.json").read_text()) for d in (straight, longer))
    assert rb["accuracies"] == ra["accuracies"] and rb["selected_epoch"] == ra["selected_epoch"] and rb["epochs"] == 3
    # The source is untouched; the continuation says where it came from.
    assert ((short / "result.json").read_bytes(), (short / "config.json").read_bytes()) == before
    rec = json.loads((longer / "config.json").read_text())
    assert rec["config"]["epochs"] == 3 and rec["given"]["epochs"] == 3
    [src] = rec["extended_from"]
    assert src["run"] == str(short) and src["epochs"] == 2 and src["epochs_done"] == 2 and src["step"] > 0


def test_extensions_that_would_differ_are_refused_in_one_line(mnist_small, tmp_path, capsys):
    short = tmp_path / "short"
    assert _distill(mnist_small, "--epochs", "1", "--out", str(short)) == 0  # val_every 5: its one epoch validated at the end
    bad = [(["--epochs", "1"], "above the run's own 1"),
           (["--epochs", "2"], "extend with --val-every 1"),  # a 2-epoch run with val_every 5 validates after epoch 2 only
           (["--epochs", "2", "--val-every", "2"], "after epoch(s) [1]")]
    for flags, message in bad:
        code = main(["distill", "--extend", str(short), *flags, "--out", str(tmp_path / "x"), "--no-progress"])
        err = capsys.readouterr().err
        assert code != 0 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "x").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("")
    for flags, message in [(["--epochs", "2", "--val-every", "1", "--out", str(tmp_path / "full")], "not empty"),
                           (["--epochs", "2", "--val-every", "1"], "give it --out")]:
        assert main(["distill", "--extend", str(short), *flags, "--no-progress"]) != 0
        assert message in capsys.readouterr().err
    with pytest.raises(UserError, match="nothing to extend"):
        extend_run(tmp_path / "full", tmp_path / "y", epochs=2)



def test_a_run_of_another_trainer_is_not_extended(tmp_path, capsys):
    """DD / SLDD runs (their own trainer) are resumed, never extended: the record's method is no strategy of the loop."""
    dd = tmp_path / "dd"
    dd.mkdir()
    (dd / "config.json").write_text(json.dumps({"method": "dd", "config": {"method": "dd", "epochs": 1, "unrolled": {}}}))
    (dd / CHECKPOINT).write_bytes(b"")
    code = main(["distill", "--extend", str(dd), "--epochs", "2", "--out", str(tmp_path / "x"), "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0 and "not a label-distillation run" in err and "--resume" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x").exists()

def _implicit(run_dir, epochs: int, refresh_every: int, resume: bool = False) -> Distiller:
    d = Distiller(_config("implicit", epochs=epochs, refresh_every=refresh_every, **IMPLICIT), blob_problem(),
                  model_factory=TinyNet, run_dir=run_dir, progress=False)
    d.open_log(resume=resume)
    d.run()
    d.close()
    (run_dir / "config.json").write_text(json.dumps({"config": d.cfg.to_dict()}))
    return d


@pytest.mark.parametrize("refresh_every", [3, 4])  # 2 epochs of 4 label steps: 8 is a multiple of 4, not of 3
def test_an_implicit_run_extended_equals_the_longer_run_even_past_a_refresh_it_skipped(tmp_path, short_dsa, refresh_every):  # noqa: F811
    """A run skips the refresh due at its last step (refresh_every 4); its checkpoint keeps what that refresh trains on,
    and the continued run makes it on resuming: the labels after 4 epochs equal a 4-epoch run's, bit for bit."""
    straight = _implicit(tmp_path / "straight", 4, refresh_every)
    short = _implicit(tmp_path / "short", 2, refresh_every)
    assert (short.students.owed is not None) == (refresh_every == 4)
    extend_run(tmp_path / "short", tmp_path / "longer", epochs=4)
    assert json.loads((tmp_path / "longer" / "config.json").read_text())["config"]["epochs"] == 4
    continued = _implicit(tmp_path / "longer", 4, refresh_every, resume=True)
    assert torch.equal(continued.labels.value, straight.labels.value)
    mine, theirs = continued.students.state.params, straight.students.state.params
    assert all(torch.equal(mine[n], theirs[n]) for n in mine)
    owed = continued.students.owed, straight.students.owed  # the refresh each skipped at step 16 (refresh_every 4)
    assert (owed[0] is None) == (owed[1] is None) == (refresh_every == 3)
    if refresh_every == 4:
        assert owed[0]["generation"] == owed[1]["generation"] == 3
        assert torch.equal(owed[0]["x"], owed[1]["x"]) and torch.equal(owed[0]["y"], owed[1]["y"])


def test_a_checkpoint_of_older_code_that_skipped_a_refresh_is_not_extended(tmp_path, short_dsa):  # noqa: F811
    """Before session 46 a checkpoint did not keep the refresh it skipped: such a run is refused in one line, as its
    continuation (here by resuming a copy with more epochs) would differ from the longer run."""
    straight = _implicit(tmp_path / "straight", 4, 4)
    _implicit(tmp_path / "short", 2, 4)
    state = load_state(tmp_path / "short" / CHECKPOINT)
    assert state["students"]["owed"] is not None
    state["students"].pop("owed")
    save_state(tmp_path / "short" / CHECKPOINT, state)
    with pytest.raises(UserError, match="skipped the student refresh due at its last step"):
        extend_run(tmp_path / "short", tmp_path / "longer", epochs=4)
    shutil.copytree(tmp_path / "short", tmp_path / "copy")
    assert not torch.equal(_implicit(tmp_path / "copy", 4, 4, resume=True).labels.value, straight.labels.value)
