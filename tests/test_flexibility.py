"""The flexibility table's perturbations of a label set's training: another optimiser (plain SGD at
one constant lr chosen on validation), another data order (another minibatch stream, the same
initialisations); the table's cells and their plans."""
from __future__ import annotations

import json

import pytest
import torch

import labeldistill
from labeldistill.engine import TrainRecipe, accuracy, make_learner, model_seeds, train_models
from labeldistill.engine import train as train_mod
from labeldistill.engine.train import batch_generator, draw_batches
from labeldistill.errors import UserError
from labeldistill.evaluation import evaluate, label_evaluation_file
from labeldistill.experiments import get_table, list_tables
from labeldistill.experiments.cells import parse_cell
from labeldistill.lrsearch import SGD_LRS, choose_lr


def _toy(n: int = 12, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 28, 28, generator=g)
    y = torch.softmax(torch.randn(n, classes, generator=g) * 3, dim=1)
    return x, y


@pytest.mark.parametrize("head", ["linear", "ridge"])
def test_an_adam_recipe_is_the_paper_path_bit_for_bit(head):
    """The perturbations run through TrainRecipe; with Adam at the same lr and no other order it
    must train exactly the paper's models (so a perturbed cell differs by the perturbation only)."""
    x, y = _toy()
    learner = make_learner("lenet", 1, 28, 3, head=head)
    seeds = model_seeds(0, "test-models", 3)
    a = train_models(learner, x, y, 7, seeds, batch_size=4, lr=1e-3)
    b = train_models(learner, x, y, 7, seeds, batch_size=4, recipe=TrainRecipe(optimizer="adam", lr=1e-3))
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k]), k


def test_order_draws_another_minibatch_stream_of_the_same_models(monkeypatch):
    x, y = _toy()
    learner = make_learner("lenet", 1, 28, 3)
    seeds = model_seeds(0, "test-models", 2)
    drawn: list[torch.Tensor] = []
    real = train_mod.draw_batches

    def spy(generator, steps, n, batch):
        out = real(generator, steps, n, batch)
        drawn.append(out.clone())
        return out

    monkeypatch.setattr(train_mod, "draw_batches", spy)
    one = train_models(learner, x, y, 5, seeds, batch_size=4, recipe=TrainRecipe(optimizer="adam", order=1))
    # Model k's minibatches are stream 1 of its own seed, not its default stream.
    for k, s in enumerate(seeds):
        assert torch.equal(drawn[k], draw_batches(batch_generator(s, 1), 5, 12, 4))
        assert not torch.equal(drawn[k], draw_batches(batch_generator(s), 5, 12, 4))
    again = train_models(learner, x, y, 5, seeds, batch_size=4, recipe=TrainRecipe(optimizer="adam", order=1))
    other = train_models(learner, x, y, 5, seeds, batch_size=4, recipe=TrainRecipe(optimizer="adam", order=2))
    k0 = next(iter(one.params))
    assert torch.equal(one.params[k0], again.params[k0]) and not torch.equal(one.params[k0], other.params[k0])
    # The same initialisations: zero steps under any order give the same models.
    z1 = train_models(learner, x, y, 0, seeds, batch_size=4, recipe=TrainRecipe(optimizer="adam", order=1))
    z2 = train_models(learner, x, y, 0, seeds, batch_size=4, recipe=TrainRecipe(optimizer="adam"))
    assert all(torch.equal(z1.params[k], z2.params[k]) for k in z1.params)
    with pytest.raises(UserError):
        TrainRecipe(order=-1)


def test_plain_sgd_step_and_the_ridge_heads_scale():
    """One plain SGD step (no momentum, no decay) from the same initialisation is linear in the lr
    (p1 - p0 = -lr x grad): every parameter, the RR head's learned scale included (one lr for all)."""
    x, y = _toy(n=4)
    lr = 0.05
    for head in ("linear", "ridge"):
        learner = make_learner("lenet", 1, 28, 3, head=head)
        seeds = model_seeds(1, "test-models", 1)
        init = learner.init(seeds)
        after = train_models(learner, x, y, 1, seeds, batch_size=4, recipe=TrainRecipe(optimizer="sgd", lr=lr))
        twice = train_models(learner, x, y, 1, seeds, batch_size=4, recipe=TrainRecipe(optimizer="sgd", lr=2 * lr))
        for k in init.params:
            d1, d2 = after.params[k] - init.params[k], twice.params[k] - init.params[k]
            assert torch.allclose(d2, 2 * d1, rtol=1e-4, atol=1e-7), k
        assert any(not torch.equal(after.params[k], init.params[k]) for k in init.params)
        if head == "ridge":
            s0, s1, s2 = init.head["s"], after.head["s"], twice.head["s"]
            assert not torch.equal(s0, s1)
            assert torch.allclose(s2 - s0, 2 * (s1 - s0), rtol=1e-4, atol=1e-7)


def test_choose_lr_takes_the_grid_value_with_the_best_validation_mean():
    x, y = _toy(n=15, seed=3)
    g = torch.Generator().manual_seed(4)
    vx, vy = torch.randn(60, 1, 28, 28, generator=g), torch.randint(0, 3, (60,), generator=g)
    learner = make_learner("lenet", 1, 28, 3)
    grid = (0.3, 0.01, 0.1)
    lr, scores = choose_lr(learner, x, y, vx, vy, steps=6, seed=5, batch=5, grid=grid, models=2)
    assert sorted(scores) == sorted(grid)
    seeds = model_seeds(5, "lr-search-models", 2)
    for v in grid:  # each score is what those validation models reach at that lr
        state = train_models(learner, x, y, 6, seeds, batch_size=5, recipe=TrainRecipe(optimizer="sgd", lr=v))
        assert scores[v] == pytest.approx(float(accuracy(learner, state, vx, vy).double().mean()) * 100, abs=1e-3)
    best = max(scores.values())
    assert lr == min(v for v in grid if scores[v] == best)


@pytest.fixture(scope="module")
def ld_run(mnist_small, tmp_path_factory):
    """60 base images: minibatches of 50 are subsets, so their order matters."""
    out = tmp_path_factory.mktemp("flex") / "run"
    labeldistill.distill(f"npz:{mnist_small}", base=60, method="second-order", epochs=2, val_every=1, test_models=2, seed=0,
                         progress=False, device="cpu", out=out)
    return out


def test_evaluate_with_sgd_and_another_order(ld_run):
    base = evaluate(ld_run, models=3, device="cpu")
    assert base["optimizer"] == "adam" and base["lr"] == 1e-3
    same = evaluate(ld_run, models=3, device="cpu", optimizer="adam")
    assert same["accuracies"] == base["accuracies"]  # Adam at the set's lr is the default test
    sgd = evaluate(ld_run, models=3, device="cpu", optimizer="sgd")
    assert sgd["optimizer"] == "sgd" and sgd["lr"] in SGD_LRS and set(sgd["lr_search"]) == {f"{v:g}" for v in SGD_LRS}
    assert sgd["lr_search"][f"{sgd['lr']:g}"] == max(sgd["lr_search"].values())
    fixed = evaluate(ld_run, models=3, device="cpu", optimizer="sgd", lr=sgd["lr"])
    assert fixed["accuracies"] == sgd["accuracies"] and "lr_search" not in fixed
    steps = base["steps"]
    saved = json.loads((ld_run / "evaluations" / label_evaluation_file("lenet", "linear", steps, 3, optimizer="sgd")).read_text())
    assert saved["accuracies"] == sgd["accuracies"]
    moved = evaluate(ld_run, models=3, device="cpu", order=1)
    assert moved["order"] == 1 and moved["accuracies"] != base["accuracies"]
    assert (ld_run / "evaluations" / label_evaluation_file("lenet", "linear", steps, 3, order=1)).exists()
    with pytest.raises(UserError, match="paper protocol"):
        evaluate(ld_run, models=1, device="cpu", optimizer="sgd", protocol="dc")
    with pytest.raises(UserError, match="optimizer"):
        evaluate(ld_run, models=1, device="cpu", optimizer="rmsprop")


def test_cli_evaluate_sgd_one_line(ld_run, capsys):
    from labeldistill.cli import main

    assert main(["evaluate", str(ld_run), "--models", "2", "--optimizer", "sgd", "--lr", "0.1", "--order", "3", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "sgd lr 0.1, order 3" in out


def test_flexibility_cells_and_table():
    c = parse_cell("mnist/ld-rr/100@order=2@optimizer=SGD")
    assert c.name == "mnist/ld-rr/100@optimizer=sgd@order=2" and c.is_evaluation and c.order == 2
    assert parse_cell("mnist/ld/100@optimizer=adam").name == "mnist/ld/100"  # the default optimiser: the run's own test
    for bad in ("mnist/dd/100@optimizer=sgd", "mnist/baseline/100@order=1", "mnist/ld/100@optimizer=rmsprop", "mnist/ld/100@order=x"):
        with pytest.raises(UserError):
            parse_cell(bad)
    spec = get_table("flexibility")
    assert spec in list_tables() and get_table("Flexibility") is spec and spec.stem == "table-flexibility"
    assert spec.heading.startswith("Flexibility") and get_table("10").heading == "Table 10"
    rows = {c.row for c in spec.cells}
    assert rows == {"MNIST DD", "MNIST LD", "MNIST LD RR"}
    cols = [c.column for c in spec.cells if c.row == "MNIST LD"]
    assert cols == [c.column for c in spec.cells if c.row == "MNIST DD"] and len(cols) == 9
    # DD's cells are those of Tables 10-12 (one DD run serves them all), with the paper's numbers.
    t10 = {c.cell: c.mean for c in get_table(10).cells}
    for c in spec.cells:
        if c.cell in t10:
            assert c.mean == t10[c.cell]
    with pytest.raises(UserError, match="Unknown table"):
        get_table("flexible")


def test_a_perturbed_cell_plans_an_evaluation_of_the_shared_run(tmp_path, shared_data):
    from labeldistill.experiments.plan import DataView, Options, plan_cell

    opts = Options(out=tmp_path, data_root=str(shared_data), device="cpu")
    data = DataView(shared_data)
    plain = plan_cell(parse_cell("mnist/ld-rr/100"), opts, data)
    sgd = plan_cell(parse_cell("mnist/ld-rr/100@optimizer=sgd"), opts, data)
    order = plan_cell(parse_cell("mnist/ld-rr/100@order=1"), opts, data)
    assert sgd.run_slug == order.run_slug == plain.run_slug
    assert sgd.evaluation == {"arch": None, "head": None, "steps": None, "optimizer": "sgd"}
    assert order.evaluation == {"arch": None, "head": None, "steps": None, "order": 1}
    assert plain.evaluation is None and sgd.cell_slug != order.cell_slug


def test_the_flexibility_report_draws_its_figure(tmp_path):
    """reproduce writes the table's picture next to its markdown and links it (cells not yet computed are left out)."""
    from labeldistill.experiments.plan import Options
    from labeldistill.experiments.report import write_report

    spec = get_table("flexibility")
    done = {"mnist/ld/100": 86.9, "mnist/ld/100@optimizer=sgd": 86.0, "mnist/dd/100@variant=average-lr": 60.0}
    rows = [{"cell": c.cell, "setting": c.label, "paper_mean": c.mean, "paper_std": c.std, "status": "done" if c.cell in done else "not run",
             "ours_mean": done.get(c.cell), "ours_std": 1.0 if c.cell in done else None, "diff": None, "flag": False, "note": "",
             "stand_in": []} for c in spec.cells]
    text, obj = write_report(spec, Options(out=tmp_path), rows)
    png = tmp_path / "table-flexibility.png"
    assert obj["figure"] == str(png) and png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert "![Flexibility table (ours)](table-flexibility.png)" in text and (tmp_path / "table-flexibility.md").read_text() == text
