"""Base-set selectors: the registry, the default draw kept bit for bit, each selector on real
MNIST images, the paper's Table 7 strategy (its choice and its batched training), provenance
and the on-disk cache, and the --base-select flag."""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json

import numpy as np
import pytest
import torch

from labeldistill.data import load_target, select_base
from labeldistill.data.tensors import LabelledTensors
from labeldistill.engine import accuracy, make_learner, model_seeds, train_models
from labeldistill.errors import UserError
from labeldistill.problem import build_problem
from labeldistill.seeding import numpy_generator
from labeldistill.selectors import (SelectionContext, Selector, choose_base, get_selector, list_selectors,
                                    register_selector, selection_cache)
from labeldistill.selectors._train import set_accuracy, train_sets
from labeldistill.selectors.paper_table7 import PaperTable7, best_candidate, candidate_sets, checkpoints
from labeldistill.selectors.table7_halving import Table7Halving

torch.set_num_threads(1)

# Small settings per selector so that each runs in seconds on one CPU thread (new selectors: defaults).
SMALL = {
    "paper-table7": dict(candidates=3, repeats=2, steps=100),
    "table7-halving": dict(candidates=3, repeats=2, steps=100, keep=2, screen_every=50, screen_images=200),
    "kcenter": dict(feature_steps=40, feature_batch=64),
    "kmeans": dict(feature_steps=40, feature_batch=64),
    "herding": dict(feature_steps=40, feature_batch=64),
    "label-span": dict(feature_steps=40, feature_batch=64, probe=300, pool_per_class=30),
    "class-quota": dict(steps=60, repeats=2),
    "atypical": dict(feature_steps=40, feature_batch=64),
}


@pytest.fixture(scope="module")
def target(mnist_small):
    return load_target(f"npz:{mnist_small}", seed=0)


def _sha(a) -> str:
    return hashlib.sha256(np.asarray(a, dtype="<i8").tobytes()).hexdigest()[:16]


# ---- the registry and the default ------------------------------------------------------------

def test_registry_lists_the_selectors_and_refuses_duplicates():
    assert {"random", "paper-table7", "kcenter", "kmeans", "herding"} <= set(list_selectors())
    assert list_selectors() == sorted(list_selectors())
    with pytest.raises(ValueError, match="duplicate"):
        register_selector("random")(type("Again", (Selector,), {}))
    with pytest.raises(UserError, match=r"^Unknown base selector 'nope'\. Known: .*paper-table7.*random"):
        get_selector("nope")


# Draws of the code before selectors existed (sha256 of base_index, 3,000-image MNIST subset split 80/10/10).
TODAY = {(10, 0): "cff5052cb17fa168", (20, 1): "196db136477ef0c1", (100, 0): "8a65fa71320d51c6", (37, 3): "43fdac21673efb2a"}


@pytest.mark.parametrize("n, seed", sorted(TODAY))
def test_random_is_todays_draw_bit_for_bit(target, n, seed):
    default = build_problem(target, n, seed)
    named = build_problem(target, n, seed, select="random")
    assert _sha(default.base_index) == _sha(named.base_index) == TODAY[(n, seed)]
    # Same order, and the same draw when reached through the selector registry.
    expected = select_base(target.train.y, n, num_classes=target.num_classes, generator=numpy_generator(seed, "base"))
    positions, record = choose_base(target, n, seed, "random")
    assert np.array_equal(positions, expected)
    assert np.array_equal(default.base_index, np.asarray(target.train.index)[expected])
    assert torch.equal(default.base_x, target.train.x[torch.as_tensor(expected)])
    assert default.provenance()["base_select"]["name"] == record["name"] == "random"


# ---- every selector on real data -------------------------------------------------------------

def _poisoned(target):
    """The target with its test split replaced by NaN images and impossible labels."""
    t = target.test
    bad = LabelledTensors(torch.full_like(t.x, float("nan")), torch.full_like(t.y, 10_000), t.index)
    return dataclasses.replace(target, test=bad)


@pytest.mark.parametrize("name", list_selectors())
def test_each_selector_returns_a_valid_balanced_set_without_the_test_split(target, name):
    n = 23  # 2 per class, 3 classes get one more
    selector = get_selector(name, **SMALL.get(name, {}))
    positions, record = choose_base(target, n, 0, selector, cache_dir=None)
    labels = target.train.y.numpy()[positions]
    counts = np.bincount(labels, minlength=10)
    assert len(positions) == len(set(positions.tolist())) == n
    if selector.balanced:
        assert counts.min() == 2 and counts.max() == 3 and counts.sum() == n
    else:  # class-quota: every class keeps its floor, the rest goes where the errors are
        assert counts.min() >= 1 and counts.sum() == n and counts.tolist() == record["details"]["quota"]
    index = set(np.asarray(target.train.index)[positions].tolist())
    assert index <= set(target.train.index.tolist())
    assert not index & set(target.test.index.tolist()) and not index & set(target.val.index.tolist())
    assert (np.diff(labels) >= 0).all()  # ordered by class, like the random draw
    assert record["name"] == name and record["sees"] and "test" not in record["sees"]
    # The selector never reads the test split: poisoning it changes nothing.
    again, _ = choose_base(_poisoned(target), n, 0, get_selector(name, **SMALL.get(name, {})), cache_dir=None)
    assert np.array_equal(positions, again)


def test_selection_context_has_no_test_split(target):
    ctx = SelectionContext.from_target(target, 10, 0)
    assert {f.name for f in dataclasses.fields(ctx)} == {"train", "val", "num_classes", "n_base", "seed", "target", "arch"}
    assert ctx.arch == "lenet"


# ---- paper-table7 ----------------------------------------------------------------------------

def test_best_candidate_is_the_best_mean_curve_at_any_step():
    curves = np.array([
        [[50, 60, 70], [50, 60, 70]],  # mean peak 70
        [[40, 95, 40], [40, 40, 40]],  # one run peaks at 95, its mean only 67.5
        [[60, 71, 65], [62, 73, 60]],  # mean peak 72 at the middle step: the winner
        [[72, 50, 50], [72, 50, 50]],  # mean peak 72 too, but later in the list: ties go to the lower index
    ], dtype=float)
    chosen, scores = best_candidate(curves)
    assert chosen == 2 and scores.tolist() == [70.0, 67.5, 72.0, 72.0]


def test_paper_table7_keeps_the_candidate_its_curves_favour(target):
    class Scripted(PaperTable7):
        def curves(self, ctx, sets):
            out = np.full((len(sets), self.repeats, 3), 50.0)
            out[1, :, 2] = 80.0  # candidate 1 is best at the last checkpoint
            return out

    ctx = SelectionContext.from_target(target, 20, 4)
    sel = Scripted(candidates=3, repeats=2).select(ctx)
    sets = candidate_sets(ctx, 3)
    assert np.array_equal(sel.positions, sets[1]) and sel.details["chosen_candidate"] == 1
    # Candidate 0 is exactly the `random` selector's draw; the others differ from it.
    assert np.array_equal(sets[0], choose_base(target, 20, 4, "random")[0])
    assert not np.array_equal(sets[1], sets[0]) and not np.array_equal(sets[2], sets[0])


def test_paper_table7_schedule():
    assert checkpoints(100) == list(range(50, 1001, 50))
    assert checkpoints(200) == list(range(50, 1701, 50)) and checkpoints(200)[-1] == 1700


def test_paper_table7_curves_are_those_of_each_candidate_trained_alone(target):
    """On real data: the recorded curve and score of the chosen set are what training its models alone gives."""
    sel = PaperTable7(candidates=3, repeats=2, steps=100)
    ctx = SelectionContext.from_target(target, 10, 1)
    result = sel.select(ctx)
    j = result.details["chosen_candidate"]
    assert result.details["scores"][j] == max(result.details["scores"])
    learner = make_learner("lenet", 1, 28, 10)
    pos = torch.as_tensor(result.positions)
    onehot = torch.nn.functional.one_hot(target.train.y[pos], 10).float()
    curve = {}

    def observe(step, state):
        curve[step] = accuracy(learner, state, target.val.x, target.val.y) * 100

    seeds = model_seeds(1, "base-select-models", 3 * 2)[2 * j : 2 * j + 2]
    train_models(learner, target.train.x[pos], onehot, 100, seeds, batch_size=10, observe_at=[50, 100], observer=observe)
    alone = [round(float(curve[s].double().mean()), 4) for s in (50, 100)]
    assert result.details["chosen_mean_curve"] == alone
    assert result.details["chosen_score"] == max(alone)


@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_batched_candidate_training_equals_training_each_alone(target, mode):
    learner = make_learner("lenet", 1, 28, 10)
    ctx = SelectionContext.from_target(target, 10, 0)
    sets = torch.as_tensor(np.repeat(candidate_sets(ctx, 3), 2, axis=0))  # 3 candidates x 2 models
    onehot = torch.nn.functional.one_hot(target.train.y[sets], 10).float()
    seeds = model_seeds(0, "base-select-models", 6)
    seen = {}
    batched = train_sets(learner, target.train.x, sets, onehot, 30, seeds, batch_size=10, observe_at=[30], mode=mode,
                         observer=lambda s, st: seen.setdefault(s, set_accuracy(learner, st, target.train.x, sets, target.val.x, target.val.y)))
    for c in range(3):
        rows = sets[2 * c]
        alone = train_models(learner, target.train.x[rows], onehot[2 * c], 30, seeds[2 * c : 2 * c + 2], batch_size=10, mode=mode)
        for name, p in alone.params.items():
            if mode == "loop":
                assert torch.equal(p, batched.params[name][2 * c : 2 * c + 2]), name
            else:
                torch.testing.assert_close(p, batched.params[name][2 * c : 2 * c + 2], rtol=1e-5, atol=1e-6)
        acc = accuracy(learner, alone, target.val.x, target.val.y)
        torch.testing.assert_close(seen[30][2 * c : 2 * c + 2], acc)


# ---- table7-halving --------------------------------------------------------------------------

def test_halving_keeping_every_candidate_is_paper_table7_exactly(target):
    ctx = SelectionContext.from_target(target, 10, 2)
    paper = PaperTable7(candidates=4, repeats=2, steps=100).select(ctx)
    halving = Table7Halving(candidates=4, repeats=2, steps=100, keep=4, screen_every=50, screen_images=300).select(ctx)
    assert np.array_equal(halving.positions, paper.positions)
    assert halving.details["chosen_candidate"] == paper.details["chosen_candidate"]
    assert halving.details["kept"] == [0, 1, 2, 3] and halving.details["kept_scores"] == paper.details["scores"]
    assert halving.details["chosen_mean_curve"] == paper.details["chosen_mean_curve"]


def test_halving_scores_the_screen_survivors_as_the_paper_does(target):
    """Keeping 2 of 5: the survivors are the 2 best screen scores, and each survivor's full score is
    the one paper-table7 gives that candidate (its own models, whoever trains beside it)."""
    ctx = SelectionContext.from_target(target, 10, 3)
    sel = Table7Halving(candidates=5, repeats=2, steps=100, keep=2, screen_every=50, screen_images=300)
    result = sel.select(ctx)
    screen = np.array(result.details["screen_scores"])
    kept = result.details["kept"]
    assert sorted(kept) == kept and len(kept) == 2
    assert screen[kept].min() >= np.delete(screen, kept).max()
    paper = PaperTable7(candidates=5, repeats=2, steps=100).select(ctx)
    assert result.details["kept_scores"] == [paper.details["scores"][j] for j in kept]
    best = kept[int(np.argmax(result.details["kept_scores"]))]
    assert result.details["chosen_candidate"] == best
    assert np.array_equal(result.positions, candidate_sets(ctx, 5)[best])
    if paper.details["chosen_candidate"] in kept:  # the paper's winner survived: the same set
        assert best == paper.details["chosen_candidate"]


def test_halving_screen_is_each_candidates_first_paper_model(target):
    """Screened on the whole validation split at the paper's checkpoints, a candidate's screen
    score is exactly the best point of the paper's first-model curve for it; keep=1 keeps the best."""
    ctx = SelectionContext.from_target(target, 10, 1)
    sets = candidate_sets(ctx, 3)
    full = PaperTable7(candidates=3, repeats=2, steps=100).curves(ctx, sets)
    whole = Table7Halving(candidates=3, repeats=2, steps=100, keep=1, screen_every=50, screen_images=len(target.val))
    assert np.array_equal(whole.screen(ctx, sets), full[:, 0, :].max(axis=1))
    sub = Table7Halving(candidates=3, repeats=2, steps=100, keep=1, screen_every=50, screen_images=len(target.val) // 3)
    screen = sub.screen(ctx, sets)
    assert not np.array_equal(screen, full[:, 0, :].max(axis=1))  # a subset scores differently
    assert sub.select(ctx).details["kept"] == [int(np.argmax(screen))]


# ---- provenance and the cache ----------------------------------------------------------------

class Counting(PaperTable7):
    calls = 0

    def select(self, ctx):
        type(self).calls += 1
        return super().select(ctx)


def test_selection_is_recorded_with_a_content_hash_and_cached(target, tmp_path):
    Counting.calls = 0
    sel = Counting(candidates=2, repeats=1, steps=50)
    with selection_cache(tmp_path / "sel"):
        first = build_problem(target, 12, 0, select=sel)
        second = build_problem(target, 12, 0, select=sel)  # another method of the same seed
    assert Counting.calls == 1
    prov, again = first.provenance(), second.provenance()
    assert prov["base_select"]["name"] == "paper-table7" and prov["base_select"]["cache"]["reused"] is False
    assert again["base_select"]["cache"]["reused"] is True and again["base_indices"] == prov["base_indices"]
    # The choice's wall time is recorded when made and carried with the cached choice.
    assert prov["base_select"]["seconds"] > 0 and again["base_select"]["seconds"] == prov["base_select"]["seconds"]
    assert prov["base_select"]["settings"]["candidates"] == 2 and prov["base_select"]["sees"] == "train + validation"
    h = hashlib.sha256(first.base_x.numpy().astype("<f4").tobytes() + first.base_y.numpy().astype("<i8").tobytes()).hexdigest()
    assert prov["base_sha256"] == again["base_sha256"] == h
    if prov["base_select"]["details"]["chosen_candidate"] != 0:  # another set than the random draw: another hash
        assert build_problem(target, 12, 0).provenance()["base_sha256"] != h
    files = list((tmp_path / "sel").glob("*.json"))
    assert len(files) == 1 and "-N12-seed0-paper-table7-" in files[0].name
    stored = json.loads(files[0].read_text())
    assert stored["dataset_indices"] == prov["base_indices"] and stored["sha256"] == h
    # Another seed is another selection; a tampered file is not trusted (recomputed).
    with selection_cache(tmp_path / "sel"):
        build_problem(target, 12, 1, select=sel)
        stored["dataset_indices"][0] = int(target.train.index[0]) if int(target.train.index[0]) not in prov["base_indices"] else int(target.train.index[1])
        files[0].write_text(json.dumps(stored))
        third = build_problem(target, 12, 0, select=sel)
    assert Counting.calls == 3 and third.provenance()["base_indices"] == prov["base_indices"]


def test_cross_dataset_base_sets_stay_random(target):
    fake = type("S", (), {"name": "emnist-letters"})()  # the refusal comes before the source is read
    with pytest.raises(UserError, match="cross-dataset base set .* is drawn at random"):
        build_problem(target, 10, 0, fake, select="kcenter")  # type: ignore[arg-type]


# ---- the command line ------------------------------------------------------------------------

def _cli(*args):
    from labeldistill.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def test_baseline_flag_bad_name_is_one_line(mnist_small):
    code, out, err = _cli("baseline", "--target", f"npz:{mnist_small}", "--base-select", "nope", "--base", "10")
    assert code == 2 and len(err.strip().splitlines()) == 1
    # The message lists every registered selector, sorted (so a new selector file shows up without editing this).
    assert f"Unknown base selector 'nope'. Known: {', '.join(sorted(list_selectors()))}." in err
    assert "random" in list_selectors() and "kmeans" in list_selectors()


def test_baseline_flag_selects_and_records(mnist_small, tmp_path, monkeypatch):
    # A cheap feature space (the raw pixels) so the real command runs in seconds; the plumbing is what is tested.
    import labeldistill.selectors._geometric as geo

    monkeypatch.setattr(geo, "train_features", lambda ctx, **kw: ctx.train.x.flatten(1).double().numpy())
    monkeypatch.setenv("LABELDISTILL_CACHE", str(tmp_path / "cache"))
    code, out, err = _cli("baseline", "--target", f"npz:{mnist_small}", "--base", "10", "--base-select", "kmeans", "--models", "2",
                          "--out", str(tmp_path / "run"), "--json")
    assert code == 0, err
    assert "base set chosen by kmeans" in out
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["settings"]["base_select"] == "kmeans" and result["base_select"]["name"] == "kmeans"
    assert len(result["base_sha256"]) == 64 and len(result["base_indices"]) == 10
    assert result["base_select"]["cache"]["file"].startswith(str(tmp_path / "cache" / "selections"))


# ---- class-quota ----------------------------------------------------------------------------

def test_class_quota_allocation_is_floor_plus_error_shares_by_largest_remainder():
    from labeldistill.selectors.class_quota import allocate

    assert allocate(np.full(10, 0.2), 100, 0.5).tolist() == [10] * 10  # equal errors: the balanced draw
    assert allocate(np.zeros(10), 100, 0.5).tolist() == [10] * 10
    # N = 20, floor 1 each, the other 10 as 0.75 / 0.25 of the error: 7.5 / 2.5, the tie to class 0.
    assert allocate(np.array([0.375, 0.125] + [0.0] * 8), 20, 0.5).tolist() == [9, 3] + [1] * 8
    q = allocate(np.random.default_rng(0).random(10), 100, 0.5)
    assert q.sum() == 100 and q.min() >= 5
    with pytest.raises(UserError, match="cannot give each"):
        allocate(np.ones(10), 5, 0.5)


def test_class_quota_keeps_the_random_draw_and_grows_it_within_each_class(target):
    from labeldistill.selectors.class_quota import grow

    labels = target.train.y.numpy()
    draw = get_selector("random").select(SelectionContext.from_target(target, 20, 0)).positions
    quota = np.array([4, 1, 2, 2, 2, 2, 2, 2, 2, 1])
    out = grow(draw, quota, labels, np.random.default_rng(0))
    assert np.bincount(labels[out], minlength=10).tolist() == quota.tolist() and len(set(out.tolist())) == 20
    for c in range(10):
        mine = [int(i) for i in draw if labels[i] == c]
        assert out[labels[out] == c].tolist()[: min(2, quota[c])] == mine[: quota[c]]  # the draw's images first


def test_class_quota_gives_the_hard_classes_more(target):
    sel = get_selector("class-quota", **SMALL["class-quota"])
    ctx = SelectionContext.from_target(target, 30, 1)
    errors = sel.class_errors(ctx, get_selector("random").select(ctx).positions)
    result = sel.select(ctx)
    counts = np.bincount(target.train.y.numpy()[result.positions], minlength=10)
    assert np.allclose(result.details["class_errors"], errors, atol=1e-4)
    assert counts.sum() == 30 and counts.min() >= 1
    hard, easy = int(np.argmax(errors)), int(np.argmin(errors))
    assert errors[hard] > errors[easy] and counts[hard] > counts[easy]


def test_atypical_draws_from_the_far_band_of_each_class():
    from labeldistill.selectors.atypical import Atypical, band

    feats = np.arange(100, dtype=np.float64)[:, None]  # distance to the mean (49.5) ranks the rows
    far = band(feats, 0.5, 0.98)
    d = np.abs(feats[:, 0] - 49.5)
    assert len(far) == 48 and d[far].min() >= np.sort(d)[50] and d[far].max() <= np.sort(d)[97]
    assert 0 not in far and 99 not in far  # the two farthest rows are the outliers left out
    picked = Atypical().pick(feats, 10, np.random.default_rng(0))
    assert len(set(picked.tolist())) == 10 and set(picked.tolist()) <= set(far.tolist())
