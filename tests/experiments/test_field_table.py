"""The field table (ours): true / teacher labels and LD / LD RR (from 1/C or from the teacher's labels) under a
fixed-epoch protocol, with what each cell cost."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from labeldistill import teacher as teacher_module
from labeldistill.teacher import cache as teacher_cache
from labeldistill.teacher import labels as teacher_labels_module  # where the teacher's labels call train_teacher
from labeldistill.experiments import PaperCell, TableSpec, estimate, get_table, parse_cell, plan, run_cells
from labeldistill.experiments.plan import DataView, Options, plan_cell
from labeldistill.experiments.report import add_versus, collect, fmt_cost, fmt_versus, markdown, table_rows, write_report
from labeldistill.protocols import get_protocol
from labeldistill.protocols._base import PROTOCOLS


def test_field_table_cells_and_what_they_run(tmp_path):
    spec = get_table("field")
    assert spec.cost and spec.heading == "Field table (ours)"
    assert all(c.mean is None for c in spec.cells)  # ours only
    data, opts = DataView(tmp_path / "empty"), Options(out=tmp_path)
    plans = {c.cell: plan_cell(parse_cell(c.cell), opts, data) for c in spec.cells}
    assert len(plans) == 50 and all(p.cell.protocol == "dc-dsa" for p in plans.values())
    true, teacher = plans["mnist/baseline/100@protocol=dc-dsa"], plans["mnist/baseline-teacher/100@protocol=dc-dsa"]
    for p in (true, teacher):  # baselines run under the protocol itself: its models, its architecture
        assert p.kind == "baseline" and p.evaluation is None and p.config.protocol == "dc-dsa" and p.config.models == 5
        assert p.expected_config()["arch"] == "convnet3"
    assert (true.config.labels, teacher.config.labels, teacher.config.temperature) == ("true", "teacher", "auto")
    assert true.run_slug == "mnist_baseline_100__protocol=dc-dsa" != teacher.run_slug
    # LD / LD RR: the Table 1 runs, re-tested under the protocol (no second distillation).
    table1 = {plan_cell(parse_cell(c.cell), opts, data).run_slug for c in get_table(1).cells}
    for method in ("ld", "ld-rr"):
        p = plans[f"mnist/{method}/100@protocol=dc-dsa"]
        assert p.evaluation == {"arch": None, "head": None, "steps": None, "protocol": "dc-dsa"}
        assert p.run_slug == f"mnist_{method}_100" and p.run_slug in table1 and p.config.label_init == "uniform"
    # Teacher-started runs are runs of their own.
    p = plans["mnist/ld-rr-teacher/100@protocol=dc-dsa"]
    assert (p.config.method, p.config.label_init, p.config.temperature) == ("ridge", "teacher", "auto")
    assert p.run_slug == "mnist_ld-rr-teacher_100" and p.evaluation["protocol"] == "dc-dsa"
    assert p.expected_config()["teacher_arch"] == "lenet"  # resolved and recorded: the loop's (the dataset's) architecture
    assert plans["mnist/ld-rr/100@protocol=dc-dsa"].expected_config()["teacher_arch"] is None  # no teacher: as every earlier run
    # The implicit method distils under the protocol itself: its run is the cell (no re-test), with the method's defaults.
    p = plans["mnist/implicit-teacher/100@protocol=dc-dsa"]
    assert p.kind == "distill" and p.evaluation is None and p.run_slug == "mnist_implicit-teacher_100__protocol=dc-dsa"
    want = {"method": "implicit", "label_init": "teacher", "temperature": "auto", "test_protocol": "dc-dsa", "select_protocol": "dc-dsa",
            "arch": "convnet3", "teacher_arch": "lenet", "epochs": 1, "target_batch": 2048, "label_param": "logits"}
    assert {k: p.expected_config()[k] for k in want} == want
    assert plan_cell(parse_cell(p.cell.name), Options(out=tmp_path, quick=True), data).config.epochs is None  # --quick: same run
    # The time estimates count the protocol's models: 5 x 1,000 epochs of one step (100 images, batch 256).
    dsa = get_protocol("dc-dsa")
    assert estimate.evaluation_seconds(plans["mnist/ld/100@protocol=dc-dsa"]) == estimate.protocol_seconds(dsa, 100, 5) == 5000 * estimate.PROTOCOL_STEP_SECONDS
    assert estimate.run_seconds(teacher, data) == estimate.protocol_seconds(dsa, 100, 5 + estimate.TEMPERATURE_STUDENTS) + estimate.TEACHER_SECONDS["lenet"]
    # CIFAR-10's teacher is its AlexCifarNet (measured apart: 15 times LeNet's on MNIST here).
    cifar_teacher = plans["cifar10/baseline-teacher/100@protocol=dc-dsa"]
    assert estimate.run_seconds(cifar_teacher, data) == estimate.protocol_seconds(dsa, 100, 5 + estimate.TEMPERATURE_STUDENTS) + estimate.TEACHER_SECONDS["alexnet"]
    # Implicit: teacher + 4 temperature students, the start (1 student; no step search), 1 student's first training,
    # 1 snapshot student, the 5 test models, the label steps (one epoch of the 2,048-image target batches) and, by the
    # method's default, a fresh student every 5 label steps but none after the last (one first training each).
    _, steps = estimate.distill_steps(p, data)
    assert p.expected_config()["refresh_every"] == 5 and steps == 25
    assert estimate.run_seconds(p, data) == pytest.approx(estimate.TEACHER_SECONDS["lenet"] + steps * estimate.IMPLICIT_STEP_SECONDS
                                                       + estimate.protocol_seconds(dsa, 100, estimate.TEMPERATURE_STUDENTS + 8 + 4))
    # The expert rows: the same two with the teacher epoch chosen by students (and its validation students counted).
    expert, implicit_expert = plans["mnist/baseline-expert/100@protocol=dc-dsa"], plans["mnist/implicit-expert/100@protocol=dc-dsa"]
    assert (expert.config.labels, expert.config.temperature, expert.config.teacher_epoch) == ("teacher", "auto", "auto")
    assert teacher.config.teacher_epoch == "best" and expert.run_slug == "mnist_baseline-expert_100__protocol=dc-dsa"
    assert implicit_expert.expected_config()["teacher_epoch"] == "auto" and p.expected_config()["teacher_epoch"] == "best"
    assert estimate.run_seconds(expert, data) - estimate.run_seconds(teacher, data) == pytest.approx(
        estimate.protocol_seconds(dsa, 100, estimate.EPOCH_STUDENTS))
    assert estimate.run_seconds(implicit_expert, data) - estimate.run_seconds(p, data) == pytest.approx(
        estimate.protocol_seconds(dsa, 100, estimate.EPOCH_STUDENTS))
    # Qin et al.'s expert: a ConvNet-3 trained MTT's way for all of its 32 epochs (no early stop), for both rows.
    for name in ("cifar10/baseline-mtt-expert/100@protocol=dc-dsa", "cifar10/implicit-mtt-expert/100@protocol=dc-dsa"):
        want = {"teacher_arch": "convnet3", "teacher_recipe": "expert", "teacher_epochs": 32, "teacher_patience": 32,
                "teacher_epoch": "auto", "temperature": "auto", "teacher_lr": None}
        assert {k: plans[name].expected_config()[k] for k in want} == want
        assert estimate.teacher_seconds(plans[name]) == 32 * estimate.TEACHER_EPOCH_SECONDS["convnet3"]
    assert plans["cifar10/baseline-expert/100@protocol=dc-dsa"].expected_config()["teacher_recipe"] == "adam"
    # Each expert's implicit row again for two epochs of label steps, validated after each: the same run but for those two settings.
    for expert in ("", "-lr1e-2", "-t64", "-lr1e-2-t64"):
        one, two = (plans[f"cifar10/implicit-mtt-expert{expert}{e}/100@protocol=dc-dsa"] for e in ("", "-e2"))
        c1, c2 = one.expected_config(), two.expected_config()
        assert (c1["epochs"], c1["val_every"], c2["epochs"], c2["val_every"]) == (1, 5, 2, 1)
        assert {k: v for k, v in c2.items() if k not in ("epochs", "val_every")} == {k: v for k, v in c1.items() if k not in ("epochs", "val_every")}
        assert two.run_slug == f"cifar10_implicit-mtt-expert{expert}-e2_100__protocol=dc-dsa"
        assert estimate.distill_steps(two, data)[1] == 2 * estimate.distill_steps(one, data)[1]
    # Both expert rows again from an expert at MTT's own lr: their teachers differ in that alone.
    for kind in ("baseline", "implicit"):
        at_1e3, at_1e2 = (plans[f"cifar10/{kind}-mtt-expert{v}/100@protocol=dc-dsa"].expected_config() for v in ("", "-lr1e-2"))
        assert (at_1e3["teacher_lr"], at_1e2["teacher_lr"]) == (None, 0.01)
        assert {k: v for k, v in at_1e2.items() if k != "teacher_lr"} == {k: v for k, v in at_1e3.items() if k != "teacher_lr"}
        # ... and from an expert of twice the epochs at lr 1e-3: its teacher differs in its length alone.
        long = plans[f"cifar10/{kind}-mtt-expert-t64/100@protocol=dc-dsa"]
        t64, length = long.expected_config(), ("teacher_epochs", "teacher_patience")
        assert (t64["teacher_epochs"], t64["teacher_patience"], t64["teacher_lr"]) == (64, 64, None)
        assert {k: v for k, v in t64.items() if k not in length} == {k: v for k, v in at_1e3.items() if k not in length}
        assert estimate.teacher_seconds(long) == 64 * estimate.TEACHER_EPOCH_SECONDS["convnet3"]
        # ... and both: the lr-1e-2 expert's row but for its length.
        both = plans[f"cifar10/{kind}-mtt-expert-lr1e-2-t64/100@protocol=dc-dsa"].expected_config()
        assert (both["teacher_epochs"], both["teacher_patience"], both["teacher_lr"]) == (64, 64, 0.01)
        assert {k: v for k, v in both.items() if k not in length} == {k: v for k, v in at_1e2.items() if k not in length}
    # The means of the experts' implicit sets: their parts are those rows' cells (the same runs), tested under the protocol;
    # a mean's own cost is that test (its parts are rows of their own).
    for target in ("mnist", "cifar10"):
        two, three = (plans[f"{target}/mean-mtt-experts{k}/100@protocol=dc-dsa"] for k in ("", "-3"))
        assert (two.kind, two.evaluation, two.run_slug) == ("mean", None, f"{target}_mean-mtt-experts_100__protocol=dc-dsa")
        assert [q.run_slug for q in three.parts] == [plans[f"{target}/implicit-mtt-expert{e}-e2/100@protocol=dc-dsa"].run_slug
                                                    for e in ("", "-t64", "-lr1e-2")]
        assert two.parts == three.parts[:2] and list(two.expected_config()["parts"]) == [q.run_slug for q in two.parts]
        assert (two.config.protocol, two.config.target, two.config.base) == ("dc-dsa", target, 100)
        assert estimate.run_seconds(three, data) == estimate.protocol_seconds(dsa, 100, 5)
    # MNIST's best pair as a row: the default teacher's implicit row for two epochs (that row but for its epochs and
    # validations), averaged with the lr-1e-2 expert's two-epoch set.
    one, two = (plans[f"mnist/implicit-teacher{e}/100@protocol=dc-dsa"].expected_config() for e in ("", "-e2"))
    assert {k for k in two if two[k] != one[k]} == {"epochs", "val_every"} and (two["epochs"], two["val_every"]) == (2, 1)
    pair = plans["mnist/mean-teacher-expert/100@protocol=dc-dsa"]
    assert [q.run_slug for q in pair.parts] == ["mnist_implicit-teacher-e2_100__protocol=dc-dsa",
                                                "mnist_implicit-mtt-expert-lr1e-2-e2_100__protocol=dc-dsa"]
    p.config.refresh_every = 0  # never
    assert estimate.run_seconds(p, data) == pytest.approx(estimate.TEACHER_SECONDS["lenet"] + steps * estimate.IMPLICIT_STEP_SECONDS
                                                       + estimate.protocol_seconds(dsa, 100, estimate.TEMPERATURE_STUDENTS + 1 + 1 + 1 + 5))


def test_an_estimate_pays_each_teacher_once_and_not_what_its_cache_holds(tmp_path):
    """The dry run's teacher costs (:class:`estimate.TeacherCosts`): rows that share a teacher pay it once; a cached teacher
    costs nothing, a partial or shorter one (cached, or counted by a row above) the epochs it lacks; without the costs
    object, every row pays it whole."""
    import json

    from safetensors.torch import save
    from labeldistill.runs.tensorstate import save_state

    data, opts, cache = DataView(tmp_path / "empty"), Options(out=tmp_path), tmp_path / "teachers"
    plans = {n: plan_cell(parse_cell(f"mnist/{n}/100@protocol=dc-dsa"), opts, data)
             for n in ("baseline-mtt-expert", "implicit-mtt-expert", "baseline-mtt-expert-t64", "baseline-teacher")}
    epoch = estimate.TEACHER_EPOCH_SECONDS["convnet3"]
    costs = estimate.TeacherCosts(cache)  # nothing cached: the 64-epoch teacher goes on from the 32-epoch one counted above
    assert [estimate.teacher_seconds(plans[n], costs) for n in plans] == [32 * epoch, 0.0, 32 * epoch, estimate.TEACHER_SECONDS["lenet"]]
    costs = estimate.TeacherCosts(cache)  # the longer first: it trains all its epochs, and the shorter one is another teacher
    assert [estimate.teacher_seconds(plans[n], costs) for n in reversed(plans)][1:] == [64 * epoch, 32 * epoch, 0.0]
    lr = plan_cell(parse_cell("mnist/baseline-mtt-expert-lr1e-2-t64/100@protocol=dc-dsa"), opts, data)
    assert estimate.teacher_seconds(lr, costs) == 64 * epoch  # another lr: not a continuation of either
    assert estimate.teacher_seconds(plans["implicit-mtt-expert"]) == 32 * epoch  # no costs object: the whole teacher

    def teacher_of(p, epochs):
        c = p.config
        return teacher_module.teacher_config("convnet3", seed=0, epochs=epochs, patience=epochs, recipe=c.teacher_recipe, lr=c.teacher_lr)

    def key(cfg):
        return {"target": "mnist", "teacher": teacher_cache._settings_key(cfg), "numerics": {"version": teacher_cache.NUMERICS_VERSION}}

    cache.mkdir()
    short = teacher_of(plans["baseline-mtt-expert"], 32)
    stem = teacher_cache._teacher_file(cache, "mnist", short, {}).name.rsplit("-", 1)[0]
    # An interrupted 32-epoch training at epoch 20: 12 epochs left, for the first row that needs it.
    save_state(cache / f"{stem}-a{teacher_module.PARTIAL}", {"key": key(short), "curve": {e: 50.0 for e in range(1, 21)}})
    costs = estimate.TeacherCosts(cache)
    assert [estimate.teacher_seconds(plans[n], costs) for n in plans][:3] == [12 * epoch, 0.0, 32 * epoch]
    # Finished: the 32-epoch teacher costs nothing, and the 64-epoch one goes on from its last state.
    (cache / f"{stem}-a{teacher_module.PARTIAL}").unlink()
    (cache / f"{stem}-a.safetensors").write_bytes(save({"w": torch.zeros(1)}, metadata={"record": json.dumps({"key": key(short), "epochs_trained": 32})}))
    save_state(cache / f"{stem}-a{teacher_module.FINAL}", {"key": key(short), "curve": {e: 50.0 + e for e in range(1, 33)}})
    costs = estimate.TeacherCosts(cache)
    assert [estimate.teacher_seconds(plans[n], costs) for n in plans][:3] == [0.0, 0.0, 32 * epoch]
    run = estimate.run_seconds(plans["baseline-mtt-expert"], data)
    assert estimate.run_seconds(plans["baseline-mtt-expert"], data, estimate.TeacherCosts(cache)) == pytest.approx(run - 32 * epoch)


def test_an_estimate_pays_each_choice_of_a_teachers_labels_once(tmp_path):
    """Rows of one teacher whose labels are chosen under the same protocol (temperature, epoch) train the same choice
    students, which the model ledgers beside them share: the estimate pays them once, and not at all after a finished
    row (``TeacherCosts.paid``); a loop started from the labels chooses under the paper protocol, another choice."""
    data, opts = DataView(tmp_path / "empty"), Options(out=tmp_path)
    plans = {n: plan_cell(parse_cell(f"mnist/{n}/100@protocol=dc-dsa"), opts, data)
             for n in ("baseline-mtt-expert", "implicit-mtt-expert", "baseline-teacher", "implicit-teacher", "ld-rr-teacher",
                       "baseline-expert")}
    dsa = get_protocol("dc-dsa")
    students = {n: estimate.protocol_seconds(dsa, 100, estimate.teacher_students(p.config)) for n, p in plans.items()}
    assert students["baseline-mtt-expert"] == estimate.protocol_seconds(dsa, 100, estimate.EPOCH_STUDENTS + estimate.TEMPERATURE_STUDENTS) > 0
    whole = {n: estimate.run_seconds(p, data) for n, p in plans.items()}  # no costs object: every row pays all
    costs = estimate.TeacherCosts(tmp_path / "teachers")
    once = {n: estimate.run_seconds(p, data, costs) for n, p in plans.items()}
    teacher = {n: estimate.teacher_seconds(p) for n, p in plans.items()}
    assert once["baseline-mtt-expert"] == pytest.approx(whole["baseline-mtt-expert"])  # the first pays teacher and students
    # The implicit row of the same expert: neither the teacher nor its choice again.
    assert once["implicit-mtt-expert"] == pytest.approx(whole["implicit-mtt-expert"] - teacher["implicit-mtt-expert"]
                                                        - students["implicit-mtt-expert"])
    assert once["baseline-teacher"] == pytest.approx(whole["baseline-teacher"])  # another teacher
    assert once["implicit-teacher"] == pytest.approx(whole["implicit-teacher"] - teacher["implicit-teacher"] - students["implicit-teacher"])
    # The loop's start (a paper-protocol choice) pays its own, as does the choice of another epoch (the expert epoch).
    assert once["ld-rr-teacher"] == pytest.approx(whole["ld-rr-teacher"] - teacher["ld-rr-teacher"])
    assert once["baseline-expert"] == pytest.approx(whole["baseline-expert"] - teacher["baseline-expert"])
    # A finished row pays its choice: a row after it does not.
    costs = estimate.TeacherCosts(tmp_path / "teachers")
    costs.paid(plans["baseline-mtt-expert"])
    assert estimate.choice_students(plans["implicit-mtt-expert"], costs) == 0
    assert estimate.choice_students(plans["baseline-teacher"], costs) == estimate.teacher_students(plans["baseline-teacher"].config)
    costs.paid(plan_cell(parse_cell("mnist/baseline/100@protocol=dc-dsa"), opts, data))  # no teacher: nothing paid
    assert costs.chosen == {estimate._choice_key(plans[n]) for n in ("baseline-mtt-expert", "baseline-teacher")}


def test_the_field_figure_shows_each_test_model_and_the_teacher_line(monkeypatch, tmp_path):
    """A panel per dataset with a computed row, rows in the table's order (cells not computed left out), each test
    model's accuracy, and the teacher-label row's mean as a line (plus Qin et al.'s 46.3 for scale on CIFAR-10)."""
    import labeldistill.report.figures as figures

    spec = get_table("field")
    done = {"cifar10/implicit-expert/100@protocol=dc-dsa": [39.0, 40.0], "cifar10/baseline/100@protocol=dc-dsa": [32.0, 33.0],
            "cifar10/baseline-teacher/100@protocol=dc-dsa": [35.0, 36.0], "mnist/ld/100@protocol=dc-dsa": [93.0, 93.5]}
    rows = [{"cell": c.cell, "setting": c.label, "paper_mean": None, "paper_std": None, "status": "done" if c.cell in done else "not run",
             "ours_mean": sum(done[c.cell]) / 2 if c.cell in done else None, "ours_std": 0.5 if c.cell in done else None,
             "ours_accuracies": done.get(c.cell, []), "diff": None, "flag": False, "note": "", "stand_in": []} for c in spec.cells]
    text, obj = write_report(spec, Options(out=tmp_path), rows)  # the real drawing
    png = tmp_path / "table-field.png"
    assert obj["figure"] == str(png) and png.read_bytes()[:4] == b"\x89PNG" and "](table-field.png)" in text
    seen = {}
    monkeypatch.setattr(figures, "model_accuracies", lambda panels, path, **kw: seen.update(panels=panels, **kw) or path)
    spec.figure(rows, tmp_path / "again.png")
    assert list(seen["panels"]) == ["MNIST", "CIFAR-10"]
    assert seen["panels"]["MNIST"] == [("LD", [93.0, 93.5], 93.25, 0.5)]
    assert [r[0] for r in seen["panels"]["CIFAR-10"]] == ["true labels", "teacher labels", "implicit, expert start"]
    assert seen["panels"]["CIFAR-10"][2][1] == [39.0, 40.0]
    assert seen["references"]["MNIST"] == []  # no teacher row computed there
    assert [v for _, v in seen["references"]["CIFAR-10"]] == [35.5, 46.3]


def _rows(done: dict[str, list[float]], seeds: list[int] | None = None) -> list[dict]:
    return [{"cell": c, "setting": c, "paper_mean": None, "paper_std": None, "status": "done", "ours_mean": sum(a) / len(a),
             "ours_std": 0.0, "ours_accuracies": a, "diff": None, "flag": False, "note": "", "seeds": seeds or [0]}
            for c, a in done.items()]


def test_each_row_beside_the_teacher_row_model_for_model():
    """The field table's "vs teacher labels": a row's test models minus the same models on the teacher row of its target
    and settings (mean, population std, how many above); nothing for the teacher row itself, for a row whose target has
    no teacher row, or for one whose models do not pair up."""
    spec = get_table("field")
    assert spec.versus == ("baseline-teacher", "teacher labels")
    rows = add_versus(spec, _rows({"cifar10/baseline-teacher/100@protocol=dc-dsa": [35.0, 36.0, 37.0],
                                   "cifar10/implicit-expert/100@protocol=dc-dsa": [36.5, 36.0, 39.0],
                                   "cifar10/baseline/100@protocol=dc-dsa": [32.0, 33.0],
                                   "mnist/ld/100@protocol=dc-dsa": [93.0, 93.5, 94.0]}))
    teacher, implicit, true, ld = (r["versus"] for r in rows)
    assert teacher is None and true is None and ld is None  # itself; 2 models against 3; no MNIST teacher row
    diffs = [1.5, 0.0, 2.0]
    mean = sum(diffs) / 3
    assert implicit["mean"] == pytest.approx(mean) and implicit["std"] == pytest.approx((sum((d - mean) ** 2 for d in diffs) / 3) ** 0.5)
    assert (implicit["above"], implicit["of"], implicit["unit"]) == (2, 3, "models")
    assert implicit["cell"] == "cifar10/baseline-teacher/100@protocol=dc-dsa"
    assert fmt_versus(implicit) == f"+{mean:.2f} ± {implicit['std']:.2f} (2/3)" and fmt_versus(None) == "—"
    # Over seeds the pairs are seeds: each seed's mean against the same seed's teacher row.
    over = add_versus(spec, _rows({"mnist/baseline-teacher/100@protocol=dc-dsa": [97.7, 97.9],
                                   "mnist/mean-mtt-experts/100@protocol=dc-dsa": [98.5, 98.6]}, seeds=[0, 1]))[1]["versus"]
    assert over["mean"] == pytest.approx(0.75) and over["std"] == pytest.approx(0.05) and over["unit"] == "seeds"


def test_a_table_of_ours_alone_shows_no_paper_columns(tmp_path):
    spec = get_table("field")
    assert spec.ours_only and not get_table(1).ours_only
    rows = add_versus(spec, _rows({"cifar10/baseline-teacher/100@protocol=dc-dsa": [35.0, 36.0],
                                   "cifar10/implicit-expert/100@protocol=dc-dsa": [36.0, 37.5]}))
    lines = markdown(spec, Options(out=tmp_path), rows).splitlines()
    assert "| Cell | Setting | Ours | vs teacher labels | Cost | Note |" in lines
    assert "| `cifar10/implicit-expert/100@protocol=dc-dsa` | cifar10/implicit-expert/100@protocol=dc-dsa | 36.75 ± 0.00 | " \
           "+1.25 ± 0.25 (2/2) | — |  |" in lines
    assert not any("Flag" in line or "flagged" in line for line in lines)
    assert any(line.startswith("vs teacher labels: beside the `baseline-teacher` row") for line in lines)


def test_cost_text():
    assert fmt_cost({"distill": 2520.0, "teacher": 150.0, "test": 5100.0}) == "distil 42 + teacher 2.5 + test 85 min"
    assert fmt_cost({"test": 30.0}) == "test 0.5 min"
    assert fmt_cost(None) == fmt_cost({}) == "—"


@pytest.mark.slow
def test_field_cells_end_to_end_on_digits(monkeypatch, tmp_path, short_step_search):
    """Real, tiny: a teacher baseline and a teacher-started LD RR run under a shortened dc protocol, and the
    plain LD RR run re-tested under it; costs recorded; a rerun finds every cell stored."""
    monkeypatch.setenv("LABELDISTILL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(plan, "QUICK_EPOCHS", 2)
    monkeypatch.setattr(plan, "TEST_MODELS", 2)
    monkeypatch.setitem(PROTOCOLS._items, "dc", dataclasses.replace(get_protocol("dc"), epochs=2))
    fit = teacher_labels_module.train_teacher  # a two-epoch teacher: the cells' code path, not a converged teacher
    monkeypatch.setattr(teacher_labels_module, "train_teacher", lambda target, cfg, **kw: fit(target, dataclasses.replace(cfg, epochs=2, patience=1), **kw))
    names = ["digits/baseline-teacher/20@protocol=dc", "digits/ld-rr/20@protocol=dc", "digits/ld-rr-teacher/20@protocol=dc",
             "digits/implicit-teacher/20@target-size=300@protocol=dc"]
    spec = TableSpec(97, "digits field", tuple(PaperCell(n, None, None, n.split("/")[1], "dc") for n in names), cost=True)
    opts = Options(out=tmp_path / "out", quick=True, device="cpu")
    out = run_cells(spec.names(), opts)
    assert [o.status for o in out] == ["done"] * 4, [o.message for o in out]
    teacher, rr, rr_teacher, implicit = (o.record for o in out)
    assert teacher["result"]["models"] == 5 and teacher["result"]["arch"] == "convnet3"
    assert set(teacher["cost_seconds"]) == {"teacher", "test"}  # the teacher, its temperature choice, the 5 students
    assert rr["kind"] == "evaluation" and rr["evaluation"]["protocol"] == "dc" and rr["result"]["arch"] == "convnet3"
    assert set(rr["cost_seconds"]) == {"distill", "test"}
    assert (tmp_path / "out" / "runs" / "digits_ld-rr_20-quick" / "evaluations" / "dc-convnet3-K5.json").exists()
    assert set(rr_teacher["cost_seconds"]) == {"distill", "teacher", "test"}
    assert rr_teacher["run_slug"] == "digits_ld-rr-teacher_20-quick"
    # The implicit run is made and tested under dc itself (its 5 ConvNet-3s); --quick leaves it as it is.
    assert implicit["kind"] != "evaluation" and implicit["run_slug"] == "digits_implicit-teacher_20__target-size=300__protocol=dc"
    assert implicit["result"]["models"] == 5 and implicit["result"]["arch"] == "convnet3"
    assert (implicit["run_config"]["test_protocol"], implicit["run_config"]["select_protocol"]) == ("dc", "dc")
    assert set(implicit["cost_seconds"]) == {"distill", "teacher", "test"}
    rows = table_rows(spec, opts, collect(spec, opts, out, DataView(None)))
    assert [r["ours_accuracies"] for r in rows] == [o.record["result"]["accuracies"] for o in out]  # each test model, for the figure
    text, _ = write_report(spec, opts, rows)
    assert "| Cost |" in text and text.count(" min |") == 4
    assert [o.action for o in run_cells(spec.names(), opts)] == ["stored cell"] * 4
    # Without its cell record, the re-tested cell finds the evaluation its run directory keeps.
    (tmp_path / "out" / "cells" / "digits_ld-rr_20__protocol=dc-quick.json").unlink()
    again = run_cells(["digits/ld-rr/20@protocol=dc"], opts)[0]
    assert again.action == "reused run, reused evaluation" and again.record["result"] == rr["result"]
