"""Cells -> runs: configurations, shared run directories, --quick, --stand-in, time estimates."""
import pytest

from labeldistill.experiments import DataView, Options, parse_cell, plan_cell
from labeldistill.experiments.estimate import (ARCH_FACTOR, MODEL_STEP_SECONDS, TYPICAL_TEST_STEPS, distill_steps, evaluation_seconds,
                                              longest_first, run_seconds)
from labeldistill.experiments.plan import TEST_MODELS
from labeldistill.experiments.units import unit_seconds


@pytest.fixture
def data(data_root):
    return DataView(data_root)


def plan(name, data, **kw):
    return plan_cell(parse_cell(name), Options(**kw), data)


def test_methods_map_to_runs(data):
    p = plan("mnist/ld/100", data)
    assert p.kind == "distill" and p.config.method == "second-order" and p.config.epochs is None and not p.missing
    assert plan("mnist/ld-rr/100", data).config.method == "ridge"
    for name, smoothing, head in [("baseline", 0.0, "linear"), ("baseline-ls", 0.1, "linear"), ("baseline-rr", 0.0, "ridge"),
                                  ("baseline-rr-ls", 0.1, "ridge")]:
        b = plan(f"mnist/{name}/20", data)
        assert b.kind == "baseline" and (b.config.smoothing, b.config.head, b.config.base) == (smoothing, head, 20)
    exp = plan("mnist/ld/100", data).expected_config()
    assert (exp["epochs"], exp["arch"], exp["inner_batch"], exp["reset_window"]) == (400, "lenet", 50, 50)  # paper defaults
    assert plan("cifar10/ld-rr/500", data).expected_config()["epochs"] == 800


def test_evaluation_cells_share_the_distilled_run(data):
    base = plan("mnist/ld/100", data)
    for name in ("mnist/ld/100@steps=+50", "mnist/ld/100@steps=-20", "mnist/ld/100@head=ridge", "mnist/ld/100@seed=0"):
        p = plan(name, data)
        assert p.run_slug == base.run_slug == "mnist_ld_100" and p.expected_config() == base.expected_config()
        assert p.cell_slug != base.cell_slug
    assert plan("mnist/ld/100@steps=+50", data).evaluation == {"arch": None, "head": None, "steps": "+50"}
    t13 = plan("cifar10/ld/10@arch=lenet", data)
    assert t13.run_slug == "cifar10_ld_10" and t13.evaluation["arch"] == "lenet" and t13.expected_config()["arch"] == "alexnet"
    assert plan("mnist/ld/100@seed=2", data).run_slug == "mnist_ld_100__seed=2"
    assert plan("mnist/ld/100@seed=2", data).config.seed == 2
    t8 = plan("emnist-letters:mnist/ld/100@target-size=5000", data)
    assert t8.config.target_size == 5000 and t8.config.source == "emnist-letters" and t8.evaluation is None
    assert plan("emnist-letters:mnist/ld/100@target-size=all", data).run_slug == plan("emnist-letters:mnist/ld/100", data).run_slug


def test_baseline_arch_cells(data):
    default = plan("cifar10/baseline/10@arch=alexnet", data)
    assert default.run_slug == plan("cifar10/baseline/10", data).run_slug and default.config.arch is None
    lenet = plan("cifar10/baseline-rr/10@arch=lenet", data)
    assert lenet.config.arch == "lenet" and lenet.config.head == "ridge" and lenet.run_slug == "cifar10_baseline-rr_10__arch=lenet"


def test_quick_is_labelled_and_kept_apart(data):
    q = plan("mnist/ld/100@steps=+10", data, quick=True)
    assert q.config.epochs == 40 and q.reduced and q.run_slug == "mnist_ld_100-quick" and q.cell_slug.endswith("-quick")
    b = plan("mnist/baseline/100", data, quick=True)  # --quick does not change a baseline: same run, labelled cell
    assert b.run_slug == "mnist_baseline_100" and b.cell_slug == "mnist_baseline_100-quick" and b.reduced


def test_missing_without_stand_in(data, data_root):
    p = plan("emnist-letters:kmnist/ld/100", data)
    assert {m["dataset"] for m in p.missing} == {"emnist-letters", "kmnist"} and not p.stand_in
    assert all(m["how_to_get"] for m in p.missing)
    assert plan("cifar10/ld/10", data).missing[0]["dataset"] == "cifar10"


def test_stand_in_substitutes_available_data(data, data_root):
    p = plan("emnist-letters:kmnist/ld-rr/100", data, stand_in=True)
    assert not p.missing and len(p.stand_in) == 2
    assert p.config.source == "mnist"
    assert p.config.target == f"npz:{data_root / 'kmnist_test.npz'}" and p.config.split == (0.8, 0.1, 0.1)
    assert p.run_slug == "emnist-letters_to_kmnist_ld-rr_100-stand-in" and "stand-in" in p.cell_slug
    m = plan("emnist-letters:mnist/ld/100", data, stand_in=True)
    # never MNIST itself for an MNIST target: KMNIST images (here its test file's training part) instead
    assert m.config.source == f"npz:{data_root / 'kmnist_test.npz'}" and m.config.target == "mnist"
    assert "KMNIST characters" in m.stand_in[0] and "instead of EMNIST letters" in m.stand_in[0]
    k49 = plan("emnist-letters:kuzushiji-49/ld/10", data, stand_in=True)  # no stand-in for K-49: still missing
    assert [x["dataset"] for x in k49.missing] == ["kuzushiji-49"]
    assert plan("mnist/ld/100", data, stand_in=True).stand_in == ()  # present data are never substituted


def test_time_model(tmp_path):
    data = DataView(tmp_path / "empty")  # official sizes
    p = plan("mnist/ld-rr/100", data)
    assert distill_steps(p, data) == (400, 400 * 49)  # 60,000 - 10,000 validation, batches of 1,024
    assert distill_steps(plan("mnist/ld/100", data, quick=True), data) == (40, 40 * 49)
    assert distill_steps(plan("emnist-letters:mnist/ld/100@target-size=500", data), data)[1] == 400
    assert run_seconds(plan("mnist/ld/100", data), data) > run_seconds(p, data) > 0
    assert run_seconds(plan("cifar10/ld-rr/100", data), data) > run_seconds(p, data)


def test_units_go_longest_first(tmp_path):
    # The order workers receive units in: DD (~1 h at 0.18 s an iteration), LD, LD RR, then the baseline; ties keep
    # the table's order. A unit's estimate counts its run once and each evaluation of it.
    data = DataView(tmp_path / "empty")
    opts = Options(out=tmp_path / "out")
    plans = [plan(n, data, out=opts.out) for n in ("mnist/baseline/100", "mnist/ld-rr/100", "mnist/ld/100", "mnist/ld/100@steps=+0",
                                                   "mnist/dd/100", "mnist/baseline/10")]
    units = [[0], [1], [2, 3], [4], [5]]
    cost = [unit_seconds([plans[i] for i in unit], opts, data) for unit in units]
    assert longest_first(units, cost) == [[4], [2, 3], [1], [0], [5]]
    ld = run_seconds(plans[2], data)
    assert cost[2] == pytest.approx(ld + evaluation_seconds(plans[2]) + evaluation_seconds(plans[3]))


def test_unit_estimates_count_only_what_is_left(tmp_path, monkeypatch):
    # A resumed run costs what is left of its loop (the dry run's rule: epochs done, read from its log), a finished
    # one only the evaluations still to make; so a half-done LD ranks below a fresh LD RR it would otherwise lead.
    from labeldistill.experiments import units

    data = DataView(tmp_path / "empty")
    opts = Options(out=tmp_path / "out")
    ld, ldrr = plan("mnist/ld/100", data, out=opts.out), plan("mnist/ld-rr/100", data, out=opts.out)
    epochs, _ = distill_steps(ld, data)
    run_dir = ld.run_dir(opts.out)
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text('{"epoch": %d}\n{"step": 7}\n' % (epochs * 3 // 4))
    states = {ld.run_slug: "resume", ldrr.run_slug: "new"}
    monkeypatch.setattr(units, "run_state", lambda p, out, reuse=False: (states[p.run_slug], ""))
    assert unit_seconds([ld], opts, data) == pytest.approx(run_seconds(ld, data) / 4 + evaluation_seconds(ld))
    assert longest_first([[0], [1]], [unit_seconds([p], opts, data) for p in (ld, ldrr)]) == [[1], [0]]
    states[ld.run_slug] = "finished"
    assert unit_seconds([ld], opts, data) == pytest.approx(evaluation_seconds(ld))


def test_evaluation_estimates_follow_the_architecture(tmp_path):
    # Another test architecture costs what that architecture costs, for label sets and for DD's 200 networks alike.
    data = DataView(tmp_path / "empty")
    for same_arch, other_arch in (("mnist/ld/100@steps=+0", "mnist/ld/100@arch=convnet3"),
                                  ("mnist/dd/100@variant=average-lr", "mnist/dd/100@arch=convnet3")):
        lenet, convnet = evaluation_seconds(plan(same_arch, data)), evaluation_seconds(plan(other_arch, data))
        assert convnet >= lenet * ARCH_FACTOR["convnet3"]
    # ... and a 20-model ConvNet-3 test is 20 x ~300 single-model steps, each ARCH_FACTOR LeNet steps
    assert evaluation_seconds(plan("mnist/ld/100@arch=convnet3", data)) == pytest.approx(
        TEST_MODELS * TYPICAL_TEST_STEPS * MODEL_STEP_SECONDS * ARCH_FACTOR["convnet3"])


def test_file_targets_match_by_real_path_and_default_split(tmp_path, monkeypatch):
    """A run started with a relative npz path and no split matches the stand-in's absolute path and 80/10/10."""
    from labeldistill.experiments.plan import config_diff, normalise_distill

    (tmp_path / "d").mkdir()
    monkeypatch.chdir(tmp_path / "d")
    base = {"method": "ridge", "base": 100}
    stored = normalise_distill({**base, "target": "npz:../d/k.npz", "split": None})
    wanted = normalise_distill({**base, "target": f"npz:{tmp_path}/d/./k.npz", "split": [0.8, 0.1, 0.1]})
    assert config_diff(wanted, stored) == []
    other = normalise_distill({**base, "target": f"npz:{tmp_path}/d/k.npz", "split": [0.7, 0.2, 0.1]})
    assert config_diff(other, stored) != []


def test_a_record_from_before_a_setting_existed_matches_the_current_plan(data):
    """Runs made before the image lr existed record no ``image_lr``: they ran (labels only) with what
    resolve() now gives such a run, so reproduce must reuse them, not call them a conflict."""
    from labeldistill.experiments.plan import config_diff, normalise_distill

    for name in ("mnist/ld/100", "mnist/ld-rr/100", "mnist/dd-ours/10"):
        expected = plan(name, data).expected_config()
        old = {k: v for k, v in expected.items() if k != "image_lr"}
        assert config_diff(expected, normalise_distill(old)) == [], name
    images_from_real = {**plan("mnist/ld-rr/100", data).expected_config(), "learn": "images+labels", "image_init": "real"}
    del images_from_real["image_lr"]
    assert normalise_distill(images_from_real)["image_lr"] == 1e-4  # what such a run resolves to today


def test_time_model_uses_measured_figures_where_there_are_some(tmp_path):
    # AlexCifarNet's steps and DD iterations were measured: they are used as they are, not LeNet's times ARCH_FACTOR;
    # an architecture without a figure of its own is scaled from LeNet's.
    from labeldistill.experiments.estimate import STEP_SECONDS, UNROLLED_ITERATION_SECONDS, UNROLLED_TEST_SECONDS, measured_seconds

    data = DataView(tmp_path / "empty")
    _, iterations = distill_steps(plan("cifar10/dd/100", data), data)
    assert run_seconds(plan("cifar10/dd/100", data), data) == pytest.approx(
        iterations * UNROLLED_ITERATION_SECONDS["alexnet"] + UNROLLED_TEST_SECONDS["alexnet"])
    assert measured_seconds(STEP_SECONDS["ridge"], "alexnet") == STEP_SECONDS["ridge"]["alexnet"]
    assert measured_seconds(STEP_SECONDS["ridge"], "resnet14") == pytest.approx(STEP_SECONDS["ridge"]["lenet"] * ARCH_FACTOR["resnet14"])
    # Table 15's LeNet test of the CIFAR-10 DD set costs LeNet's 200 networks, not AlexCifarNet's
    assert evaluation_seconds(plan("cifar10/dd/100@arch=lenet", data)) == UNROLLED_TEST_SECONDS["lenet"]
