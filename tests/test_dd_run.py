"""DD / SLDD as runs: ``labeldistill distill --method dd|sldd`` end to end on real MNIST images (a
tiny outer budget), the saved set and its schedule, ``evaluate`` with the paper's variants,
Ctrl-C / SIGKILL then --resume (bit for bit on the CPU), and one-line refusals."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import labeldistill
from labeldistill.artifact import DistilledSet
from labeldistill.cli import main
from labeldistill.data import load_for_arch
from labeldistill.runs import read_metrics
from labeldistill.unrolled import FunctionalNet, evaluate_schedule, learned_schedule

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_thread_main(argv: list[str]) -> int:
    """In-process CLI with one intra-op thread, as the subprocesses (bit-for-bit comparisons)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return main(argv)
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dd_run(mnist_small, tmp_path_factory) -> Path:
    """The reference DD setting (10 steps x 10 classes x 1 image, 3 epochs: T = 30) for one outer
    epoch of 1,024-image minibatches over the subset's training split (3 outer iterations)."""
    out = tmp_path_factory.mktemp("dd") / "run"
    code = main(["distill", "--method", "dd", "--target", f"npz:{mnist_small}", "--epochs", "1", "--test-models", "4",
                 "--seed", "2", "--device", "cpu", "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_dd_run_directory_and_distilled_set(dd_run):
    names = {p.name for p in dd_run.iterdir()}
    assert {"config.json", "metrics.jsonl", "checkpoint.safetensors", "result.json", "distilled.safetensors"} <= names
    record = json.loads((dd_run / "config.json").read_text())
    assert record["method"] == "dd" and record["versions"]["numerics_version"] >= 1 and "float_settings" in record
    cfg = record["config"]
    assert cfg["unrolled"]["steps"] == 10 and cfg["unrolled"]["epochs"] == 3 and cfg["unrolled"]["outer_epochs"] == 1
    assert cfg["arch"] == "lenet" and cfg["seed"] == 2 and record["problem"]["sizes"]["val"] > 0
    # Outer iterations run over the training split only: ceil(train / 1024) of them.
    train = record["problem"]["sizes"]["train"]
    assert [m["iteration"] for m in read_metrics(dd_run / "metrics.jsonl")] == list(range(1, -(-train // 1024) + 1))

    ds = labeldistill.load(dd_run)
    assert ds.images.shape == (100, 1, 28, 28) and ds.steps == 30 and len(ds.schedule.lrs) == 30
    assert ds.learned == "images" and ds.image_init == "normal"
    assert ds.recipe["optimizer"] == "sgd" and ds.recipe["schedule"] is True and ds.recipe["arch"] == "lenet"
    # One-hot labels, classes 0..9 in every step; the images in step order: step t trains on rows (t mod 10) * 10 + 0..9.
    assert torch.equal(ds.labels, torch.eye(10).repeat(10, 1))
    assert ds.schedule.order == tuple(tuple(range((t % 10) * 10, (t % 10) * 10 + 10)) for t in range(30))
    assert ds.schedule.epoch_length == 10 and all(lr > 0 for lr in ds.schedule.lrs)
    assert len(set(ds.schedule.lrs)) > 1  # learned, no longer all 0.02
    assert ds.initial_images is not None and not torch.equal(ds.images, ds.initial_images)

    result = json.loads((dd_run / "result.json").read_text())
    for key in ("accuracy_mean", "accuracy_std", "accuracies", "models", "seconds", "method", "arch", "target", "seed", "T",
                "learned", "seconds_per_iteration", "variant"):
        assert key in result, key
    assert result["T"] == 30 and result["models"] == 4 and result["method"] == "dd" and result["variant"] == "learned"
    assert result["lrs"] == list(ds.schedule.lrs) and result["iterations"] == len(read_metrics(dd_run / "metrics.jsonl"))
    assert ds.evaluation == {k: v for k, v in result.items() if k != "config"}


def test_learned_variant_is_evaluate_schedule_of_the_learned_schedule(dd_run, mnist_small, capsys):
    ds = labeldistill.load(dd_run)
    code, out, _ = run_main(capsys, "evaluate", str(dd_run), "--models", "4", "--json")
    assert code == 0
    r = json.loads(out.strip().splitlines()[-1])
    assert r["variant"] == "learned" and r["steps"] == 30
    # The same networks as the run's own test, and the same as the unrolled API on the same data.
    assert r["accuracies"] == ds.evaluation["accuracies"]
    data = load_for_arch(f"npz:{mnist_small}", "lenet", seed=2)
    net = FunctionalNet.from_arch("lenet", 1, 28, 10)
    schedule = learned_schedule(ds.schedule.lrs, 10, 10)
    ev = evaluate_schedule(net, ds.images, torch.arange(10).repeat(10), schedule, data.test.x, data.test.y, models=4, seed=2)
    assert r["accuracy_mean"] == 100 * ev.mean and r["accuracy_std"] == 100 * ev.std
    saved = json.loads((dd_run / "evaluations" / "lenet-learned-K4.json").read_text())
    assert saved["variant"] == "learned" and saved["accuracies"] == r["accuracies"]


def test_another_seed_tests_on_the_runs_own_split(dd_run, mnist_small, monkeypatch):
    # The subset file has no official test part, so its split is drawn from a seed: another split would put some of
    # the run's base images (its training part) into the test part. The evaluation's seed draws only its networks.
    import labeldistill.problem as ev_mod  # run_target: the target split as the run made it
    from labeldistill.data import load_target

    a, b = load_target(f"npz:{mnist_small}", seed=2), load_target(f"npz:{mnist_small}", seed=5)
    assert not torch.equal(a.test.y, b.test.y) or not torch.equal(a.test.x, b.test.x)  # the split does move with the seed
    seen = []
    real = ev_mod.load_target
    monkeypatch.setattr(ev_mod, "load_target", lambda *args, **kw: seen.append(kw["seed"]) or real(*args, **kw))
    r = labeldistill.evaluate(dd_run, variant="average-lr", models=2, seed=5, save=False)
    assert seen == [2] and r["seed"] == 5


def test_another_seed_is_another_file_and_another_permutation(dd_run):
    # The run's seed is 2: its evaluation is the default file; seed 5 draws another permutation and is saved beside it,
    # never over it (reproduce reuses the default file).
    own = labeldistill.evaluate(dd_run, variant="shuffle-across", models=2)
    other = labeldistill.evaluate(dd_run, variant="shuffle-across", models=2, seed=5)
    assert own["seed"] == 2 and other["seed"] == 5 and other["order"] != own["order"]
    default = json.loads((dd_run / "evaluations" / "lenet-shuffle-across-K2.json").read_text())
    seeded = json.loads((dd_run / "evaluations" / "lenet-shuffle-across-K2-seed5.json").read_text())
    assert default["order"] == own["order"] and seeded["order"] == other["order"]


@pytest.mark.parametrize("variant, steps, moving", [
    ("first-steps:20", 30, 20), ("extended:5", 40, 35), ("average-lr", 30, 30), ("shuffle-within", 30, 30), ("shuffle-across", 30, 30),
    ("shuffle-steps-across", 30, 30),
])
def test_schedule_variants_run_and_record_their_name(dd_run, variant, steps, moving):
    ds = labeldistill.load(dd_run)
    r = labeldistill.evaluate(dd_run, variant=variant, models=2)
    assert r["variant"] == variant and r["steps"] == steps and r["moving_steps"] == moving and r["models"] == 2
    mean = sum(ds.schedule.lrs) / 30
    if variant == "first-steps:20":
        assert r["lrs"] == list(ds.schedule.lrs[:20]) + [0.0] * 10
    if variant == "extended:5":
        assert r["lrs"][:30] == list(ds.schedule.lrs) and r["lrs"][30:] == [mean] * 5 + [0.0] * 5
    if variant == "average-lr":
        assert r["lrs"] == [mean] * 30
    if variant.startswith("shuffle"):
        order = r["order"]
        if variant.startswith("shuffle-steps"):  # whole steps: each is one of the 10 step-tensors
            assert sorted(tuple(step) for step in order) == sorted(tuple(step) for step in ds.schedule.order)
        assert sorted(i for step in order for i in step) == sorted(i for step in ds.schedule.order for i in step)
        if variant == "shuffle-within":  # each epoch uses each image once
            assert all(sorted(i for s in order[e * 10:(e + 1) * 10] for i in s) == list(range(100)) for e in range(3))
        assert labeldistill.evaluate(dd_run, variant=variant, models=2)["order"] == order  # drawn from the seed
    saved = json.loads((dd_run / "evaluations" / f"lenet-{variant.replace(':', '')}-K2.json").read_text())
    assert saved["variant"] == variant and saved["accuracies"] == r["accuracies"]


def test_like_ld_chooses_steps_on_validation(dd_run, monkeypatch):
    from labeldistill import paper_defaults

    monkeypatch.setattr(paper_defaults, "baseline_checkpoints", lambda n: [10, 20, 30])  # the grid, shortened
    r = labeldistill.evaluate(dd_run, variant="like-ld", models=2)
    assert r["variant"] == "like-ld" and r["optimizer"] == "adam" and r["batch_size"] == 10 and r["lr"] == 1e-3
    assert set(r["validation_curve"]) == {"10", "20", "30"}
    best = max(r["validation_curve"].values())
    assert r["steps"] == min(int(k) for k, v in r["validation_curve"].items() if v == best)
    fixed = labeldistill.evaluate(dd_run, variant="like-ld", models=2, steps=15)
    assert fixed["steps"] == 15 and fixed["validation_curve"] is None
    assert (dd_run / "evaluations" / "lenet-like-ld-T15-K2.json").exists()


def test_refusals_are_one_line(dd_run, mnist_small, tmp_path, capsys):
    # A variant asked of a label set.
    ds = labeldistill.load(dd_run)
    label_set = DistilledSet(ds.images[:20], ds.labels[:20], 50, ds.preprocessing, ds.class_names, recipe={"arch": "lenet"})
    path = label_set.save(tmp_path / "labels.safetensors")
    code, _, err = run_main(capsys, "evaluate", str(path), "--target", f"npz:{mnist_small}", "--variant", "average-lr")
    assert code != 0 and "label set" in err and len(err.strip().splitlines()) == 1
    # Bad variants, --base not steps x classes x k, flags of label distillation.
    for argv, text in [
        (["evaluate", str(dd_run), "--variant", "first-steps"], "needs a number"),
        (["evaluate", str(dd_run), "--variant", "sideways"], "Unknown --variant"),
        (["evaluate", str(dd_run), "--variant", "first-steps:31"], "between 0"),
        (["evaluate", str(dd_run), "--arch", "alexnet"], "32-pixel"),
        (["distill", "--method", "dd", "--target", f"npz:{mnist_small}", "--base", "55", "--device", "cpu", "--out", str(tmp_path / "b")],
         "--base 55 is not steps x classes x k"),
        (["distill", "--method", "sldd", "--learn", "images", "--out", str(tmp_path / "c")], "--learn does not apply"),
        (["distill", "--method", "dd", "--target", f"npz:{mnist_small}", "--device", "cpu", "--out", str(dd_run)], "already holds a run"),
    ]:
        code, _, err = run_main(capsys, *argv)
        assert code != 0 and text in err and len(err.strip().splitlines()) == 1, (argv, err)
        assert "Traceback" not in err


def test_sldd_learns_labels(mnist_small, tmp_path):
    out = tmp_path / "sldd"
    ds = labeldistill.distill(f"npz:{mnist_small}", method="sldd", base=50, distill_steps=5, epochs=1, batch_size=800,
                              test_models=2, device="cpu", out=out, progress=False)
    assert ds.learned == "images+labels" and ds.steps == 15 and ds.labels.shape == (50, 10)
    assert not torch.equal(ds.labels, torch.eye(10).repeat(5, 1))
    assert ds.recipe["loss"] == "soft-cross-entropy"
    back = labeldistill.load(out)
    assert torch.equal(back.labels, ds.labels) and back.evaluation["method"] == "sldd"
    r = labeldistill.evaluate(out, models=2)  # the learned label vectors, as the run tested them
    assert r["accuracies"] == ds.evaluation["accuracies"]


# -- interrupted runs ----------------------------------------------------------------------
SMALL = 'distill_steps = 3\ndistill_epochs = 2\nbatch_size = 200\ntest_models = 2\ncheckpoint_every = 2\ndevice = "cpu"\nseed = 4\n'


@pytest.fixture(scope="module")
def small_config(mnist_small, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ddcfg") / "dd.toml"
    path.write_text(f'target = "npz:{mnist_small}"\nmethod = "sldd"\nbase = 30\nepochs = 2\n' + SMALL)
    return path


@pytest.fixture(scope="module")
def small_straight(small_config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddstraight") / "run"
    assert one_thread_main(["distill", "--config", str(small_config), "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])  # SIGTERM: the same handler, signalled in test_resume.py
def test_interrupted_then_resumed_equals_straight_run(small_config, small_straight, tmp_path, sig):
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "labeldistill", "distill", "--config", str(small_config), "--out", str(out), "--no-progress"],
                         env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (out / "checkpoint.safetensors").exists():
        assert p.poll() is None, p.stderr.read() if p.stderr else "finished early"
        assert time.time() - t0 < 120
        time.sleep(0.01)
    time.sleep(random.Random(int(sig)).uniform(0.0, 0.3))
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    if p.returncode == 0:
        pytest.fail("the run finished before it could be interrupted; make it longer")
    if sig != signal.SIGKILL:
        assert p.returncode == 130 and f"--resume {out}" in err and len(err.strip().splitlines()) == 1, err
        assert err.startswith("labeldistill: Stopped at outer iteration "), err  # a requested stop, not an "error:"
    assert not (out / "result.json").exists()
    from labeldistill.runs import load_state

    stopped_at = int(load_state(out / "checkpoint.safetensors")["iteration"])
    assert stopped_at < 24  # stopped inside the outer loop
    assert one_thread_main(["distill", "--resume", str(out), "--no-progress"]) == 0
    a, b = labeldistill.load(small_straight), labeldistill.load(out)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and a.schedule == b.schedule
    assert torch.equal(a.initial_images, b.initial_images)
    assert a.evaluation["accuracies"] == b.evaluation["accuracies"]
    assert read_metrics(small_straight / "metrics.jsonl") == read_metrics(out / "metrics.jsonl")
    record = json.loads((out / "config.json").read_text())
    assert len(record["resumes"]) == 1 and record["resumes"][0]["iteration"] == stopped_at  # which code made which iterations


def test_resume_refuses_another_numerics_version(small_straight, tmp_path, capsys):
    import shutil

    out = tmp_path / "old"
    shutil.copytree(small_straight, out)
    (out / "result.json").unlink()  # unfinished: a finished run is reported as it is, whatever its numerics
    record = json.loads((out / "config.json").read_text())
    record["versions"]["numerics_version"] = 0
    (out / "config.json").write_text(json.dumps(record))
    code, _, err = run_main(capsys, "distill", "--resume", str(out), "--no-progress")
    assert code != 0 and "numerics version 0" in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def cifar_small(tmp_path_factory, shared_data) -> Path:
    """600 real CIFAR-10 test images as one npz file (split 80/10/10)."""
    import numpy as np

    d = np.load(shared_data / "cifar10_test.npz")
    idx = np.sort(np.random.default_rng(0).choice(len(d["y"]), 600, replace=False))
    path = tmp_path_factory.mktemp("cifar") / "cifar600.npz"
    np.savez(path, x=d["x"][idx], y=d["y"][idx])
    return path


def test_alexcifarnet_set_tested_on_lenet(cifar_small, tmp_path):
    """Table 15: a set distilled with AlexCifarNet (the colour default) trains LeNet by its schedule."""
    out = tmp_path / "cifar-dd"
    ds = labeldistill.distill(f"npz:{cifar_small}", method="dd", base=10, distill_steps=1, distill_epochs=2, epochs=1, batch_size=100,
                              test_models=2, device="cpu", out=out, progress=False)
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert cfg["arch"] == "alexnet" and ds.images.shape == (10, 3, 32, 32) and ds.steps == 2
    r = labeldistill.evaluate(out, arch="lenet", models=2)
    assert r["arch"] == "lenet" and r["variant"] == "learned" and r["steps"] == 2 and len(r["accuracies"]) == 2
    assert (out / "evaluations" / "lenet-learned-K2.json").exists()


def test_no_cuda_graph_is_recorded_and_changes_nothing_on_a_cpu(small_config, small_straight, tmp_path):
    """``--no-cuda-graph`` (DD / SLDD and label distillation alike) is recorded, may be given on resume, and a CPU run,
    which never captures, gives the same set with it as without."""
    from labeldistill.cli import build_parser
    from labeldistill.cli.distill import config_from_args

    assert config_from_args(build_parser().parse_args(["distill", "--out", "x"])).cuda_graph is True
    assert config_from_args(build_parser().parse_args(["distill", "--out", "x", "--no-cuda-graph"])).cuda_graph is False
    out = tmp_path / "run"
    assert one_thread_main(["distill", "--config", str(small_config), "--out", str(out), "--no-progress", "--no-cuda-graph"]) == 0
    assert json.loads((out / "config.json").read_text())["config"]["cuda_graph"] is False
    assert json.loads((small_straight / "config.json").read_text())["config"]["cuda_graph"] is True
    a, b = labeldistill.load(small_straight), labeldistill.load(out)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and a.schedule == b.schedule


@pytest.mark.parametrize("which", ["dd", "sldd"])
def test_checkpoint_set_of_a_finished_run_is_its_set(which, dd_run, small_straight):
    """The final checkpoint holds what the run saved: the set read from it (no data) equals distilled.safetensors field
    by field, and says at which outer iteration it stands."""
    from labeldistill.unrolled.run import checkpoint_set

    run = dd_run if which == "dd" else small_straight
    saved, got = labeldistill.load(run), checkpoint_set(run)
    assert torch.equal(got.images, saved.images) and torch.equal(got.labels, saved.labels)
    assert torch.equal(got.initial_images, saved.initial_images)
    assert got.schedule == saved.schedule and got.steps == saved.steps and got.learned == saved.learned
    assert got.preprocessing == saved.preprocessing and list(got.class_names) == list(saved.class_names)
    assert got.recipe == saved.recipe
    assert {k: v for k, v in got.provenance.items() if k != "checkpoint_iteration"} == saved.provenance
    assert got.provenance["checkpoint_iteration"] == json.loads((run / "result.json").read_text())["iterations"]


def test_checkpoint_set_refuses_what_it_cannot_read(dd_run, tmp_path, mnist_small):
    from labeldistill.errors import UserError
    from labeldistill.unrolled.run import checkpoint_set

    with pytest.raises(UserError, match="not a DD / SLDD run directory"):
        checkpoint_set(tmp_path)
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(dd_run, bare)
    (bare / "checkpoint.safetensors").unlink()
    with pytest.raises(UserError, match="no checkpoint yet"):
        checkpoint_set(bare)


def test_evaluate_the_checkpoint_of_a_run_in_progress(dd_run, tmp_path, capsys):
    """A run stopped part-way (no distilled set yet) is tested from its checkpoint; the result is saved under -iterN
    and equals the test of the same set saved as a file."""
    import shutil

    from labeldistill.unrolled.run import checkpoint_set

    run = tmp_path / "running"
    shutil.copytree(dd_run, run)
    for name in ("distilled.safetensors", "result.json"):
        (run / name).unlink()
    shutil.rmtree(run / "evaluations", ignore_errors=True)
    assert one_thread_main(["evaluate", str(run)]) == 2  # without --snapshot checkpoint: says what there is, one line
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has not finished" in err and "--snapshot checkpoint" in err, err
    assert one_thread_main(["evaluate", str(run), "--snapshot", "checkpoint", "--models", "3", "--json"]) == 0
    saved = list((run / "evaluations").glob("*-iter*.json"))
    assert len(saved) == 1 and saved[0].name.endswith("-K3-iter3.json"), saved
    got = json.loads(saved[0].read_text())
    assert got["checkpoint_iteration"] == 3
    checkpoint_set(run).save(tmp_path / "set.safetensors")
    want = labeldistill.evaluate(tmp_path / "set.safetensors", models=3, target=got["target"], data_root=None, seed=got["seed"])
    assert got["accuracies"] == want["accuracies"]


def test_report_of_a_run_in_progress_draws_its_checkpoint(dd_run, tmp_path):
    import shutil

    from labeldistill.report import make_report

    run = tmp_path / "running"
    shutil.copytree(dd_run, run)
    for name in ("distilled.safetensors", "result.json"):
        (run / name).unlink()
    text = make_report(run).read_text()
    assert "set at outer iteration 3, its last checkpoint" in text and "not there yet" not in text
    for name in ("learned_images.png", "step_images.png", "lr_schedule.png", "outer_loss.png"):
        assert (run / "report" / name).stat().st_size > 1000, name
    (run / "checkpoint.safetensors").unlink()  # nothing to draw from: said so, no figures of the set
    text = make_report(run, tmp_path / "bare-report").read_text()
    assert "not there yet" in text and not (tmp_path / "bare-report" / "step_images.png").exists()


def test_the_start_comes_from_the_checkpoint_or_is_left_out(small_straight, tmp_path):
    """The start images are drawn from the generator of the device a run starts on, so checkpoints keep them. An older
    checkpoint without them: drawn again when the run started on a CPU (as here), left out when it started on a GPU,
    which a CPU cannot draw again: by checkpoint_set and by a resumed run's final set alike."""
    import shutil

    from labeldistill.runs import load_state, save_state
    from labeldistill.unrolled.run import checkpoint_set

    saved = labeldistill.load(small_straight)
    state = load_state(small_straight / "checkpoint.safetensors")
    assert torch.equal(state["initial_images"].flatten(0, 1), saved.initial_images)
    assert not torch.equal(saved.initial_images, saved.images)  # learned away from the start
    for started_on, kept in (("cpu", True), ("cuda", False)):
        run = tmp_path / started_on
        shutil.copytree(small_straight, run)
        old = {k: v for k, v in state.items() if k != "initial_images"}
        save_state(run / "checkpoint.safetensors", old)
        record = json.loads((run / "config.json").read_text())
        record["device"] = started_on
        (run / "config.json").write_text(json.dumps(record))
        got = checkpoint_set(run).initial_images
        assert (got is not None and torch.equal(got, saved.initial_images)) if kept else got is None, started_on
        (run / "result.json").unlink()  # stopped after its last iteration: the resume makes only the final set and test
        (run / "distilled.safetensors").unlink()
        assert one_thread_main(["distill", "--resume", str(run), "--no-progress"]) == 0
        after = labeldistill.load(run)
        assert torch.equal(after.images, saved.images)
        assert (after.initial_images is not None and torch.equal(after.initial_images, saved.initial_images)) if kept \
            else after.initial_images is None, started_on
        from labeldistill.report import make_report

        text = make_report(run).read_text()
        assert ("Mean absolute change per pixel" in text) == kept
        assert ("does not keep the initial images (`initial_images`): the learned images are shown in step order below" in text) != kept


def test_the_final_test_keeps_its_networks_and_a_stopped_test_resumes(dd_run, tmp_path):
    """The final test records each network in the run's evaluation ledger: `evaluate RUN` reads them back (trained once),
    and a run stopped in its test (no set, no result.json yet) resumes with the networks it lacks: the same result."""
    import shutil

    want = json.loads((dd_run / "result.json").read_text())
    run = tmp_path / "run"
    shutil.copytree(dd_run, run)
    shutil.rmtree(run / "evaluations")  # other tests add their variants' ledgers to the shared run
    for name in ("result.json", "distilled.safetensors"):
        (run / name).unlink()
    assert one_thread_main(["distill", "--resume", str(run), "--no-progress"]) == 0  # the loop is done: only the test runs
    assert json.loads((run / "result.json").read_text())["models_from_ledger"] == 0
    again = labeldistill.evaluate(run)  # the run's own test (variant learned, its 4 networks): all from the ledger
    assert again["accuracies"] == want["accuracies"] and again["models_from_ledger"] == 4
    (ledger,) = (run / "evaluations" / "ledger").glob("schedule-*.jsonl")
    lines = ledger.read_text().splitlines(keepends=True)
    ledger.write_text("".join(lines[:-2]))  # stopped after two of the four networks
    for name in ("result.json", "distilled.safetensors"):
        (run / name).unlink()
    assert one_thread_main(["distill", "--resume", str(run), "--no-progress"]) == 0
    got = json.loads((run / "result.json").read_text())
    assert got["accuracies"] == want["accuracies"] and got["models_from_ledger"] == 2


def test_resuming_a_finished_dd_run_changes_nothing(small_straight, tmp_path, capsys):
    import shutil

    run = tmp_path / "done"
    shutil.copytree(small_straight, run)
    before = {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    code, out, _ = run_main(capsys, "distill", "--resume", str(run), "--no-progress")
    assert code == 0 and "The run had finished: nothing was run" in out
    assert {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()} == before
