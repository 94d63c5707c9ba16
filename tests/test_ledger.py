"""Long evaluations resume model by model: the model ledger (runs/ledger.py) and evaluate_protocol with it."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from labeldistill.engine import Learner
from labeldistill.models import build_model
from labeldistill.protocols import evaluate as proto_eval
from labeldistill.protocols import evaluate_protocol, get_protocol
from labeldistill.runs.ledger import ModelLedger


# ---- the ledger file ------------------------------------------------------------------------------

def test_ledger_round_trip_and_keys_kept_apart(tmp_path):
    key = {"a": 1, "b": [1, 2]}
    book = ModelLedger(tmp_path, key, prefix="dc")
    assert book.done() == {}
    book.record(0, accuracy=91.25, seconds=1.5)
    book.record(2, accuracy=90.0, seconds=1.0)
    again = ModelLedger(tmp_path, {"b": [1, 2], "a": 1}, prefix="dc")  # the same key, another order
    assert again.path == book.path and {i: r["accuracy"] for i, r in again.done().items()} == {0: 91.25, 2: 90.0}
    other = ModelLedger(tmp_path, {"a": 2, "b": [1, 2]}, prefix="dc")
    assert other.path != book.path and other.done() == {}
    assert book.path.name.startswith("dc-")



def test_ledger_sources_lend_another_runs_finished_models_of_the_same_key(tmp_path):
    from labeldistill.runs.ledger import ledger_sources

    key = {"labels": "abc", "protocol": "dc-dsa"}
    few, most, mine = tmp_path / "run-a" / "ledger", tmp_path / "run-b" / "ledger", tmp_path / "run-c" / "ledger"
    ModelLedger(few, key).record(0, accuracy=36.72)
    for k, acc in enumerate((36.72, 36.28)):
        ModelLedger(most, key).record(k, accuracy=acc)
    ModelLedger(most, {"labels": "other"}).record(0, accuracy=1.0)
    # A file under the right name whose header holds another key is never adopted.
    foreign = tmp_path / "run-d" / "ledger"
    foreign.mkdir(parents=True)
    (foreign / ModelLedger(mine, key).path.name).write_text(json.dumps({"format": "labeldistill-model-ledger", "version": 1,
                                                                        "key": {"labels": "x"}}) + "\n" + '{"model": 5}\n' * 3)
    assert ModelLedger(mine, key).done() == {} and not mine.exists()  # outside a block: nothing lent
    with ledger_sources([foreign, few, tmp_path / "nowhere", most]):
        book = ModelLedger(mine, key)
        assert {i: r["accuracy"] for i, r in book.done().items()} == {0: 36.72, 1: 36.28}  # the source with the most models
        book.record(2, accuracy=34.4)  # goes on in its own file ...
        assert ModelLedger(mine, {"labels": "new"}).done() == {}  # ... and a key no source holds starts empty
    assert set(ModelLedger(mine, key).done()) == {0, 1, 2} and set(ModelLedger(most, key).done()) == {0, 1}  # nothing written back
    assert sorted(p.name for p in mine.iterdir()) == [book.path.name]  # only what was asked for was copied

def test_ledger_ignores_a_torn_line_and_never_trusts_a_foreign_header(tmp_path):
    book = ModelLedger(tmp_path, {"k": 1})
    book.record(0, accuracy=50.0)
    with open(book.path, "a") as f:
        f.write('{"model": 1, "accur')  # killed while writing
    assert set(book.done()) == {0}
    book.record(1, accuracy=60.0)  # ends the torn line first
    assert {i: r["accuracy"] for i, r in book.done().items()} == {0: 50.0, 1: 60.0}
    # A file under the same name whose header holds another key (a hash collision) is not read, and is replaced.
    lines = book.path.read_text().splitlines()
    head = json.loads(lines[0])
    head["key"] = {"k": 2}
    book.path.write_text("\n".join([json.dumps(head), *lines[1:]]) + "\n")
    assert book.done() == {}
    book.record(3, accuracy=70.0)
    assert set(book.done()) == {3}
    # A header cut short: nothing is trusted, the next record starts the file again.
    book.path.write_text('{"format": "labeldistill-model-le')
    assert book.done() == {}
    book.record(4, accuracy=80.0)
    assert set(book.done()) == {4}


# ---- evaluate_protocol resumes from it ----------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 1, 8, 8, generator=g)
    y = torch.softmax(2 * torch.randn(12, 3, generator=g), -1)
    tx = torch.randn(40, 1, 8, 8, generator=g)
    ty = torch.randint(0, 3, (40,), generator=g)
    proto = dataclasses.replace(get_protocol("dc-dsa"), epochs=3, batch_size=5)  # DSA and SGD as the real one, 9 steps
    learner = Learner(lambda: build_model("convnet3", 1, 8, 3))
    return proto, learner, x, y, tx, ty


def _run(small, **kw):
    proto, learner, x, y, tx, ty = small
    return evaluate_protocol(proto, learner, x, y, tx, ty, steps=1, seed=3, **kw)


def test_ledger_resume_equals_an_uninterrupted_evaluation(small, tmp_path, monkeypatch):
    whole = _run(small, models=4)
    # Stopped after two models: a run that dies on the third model's training.
    real = proto_eval.train_models
    calls = []

    def dying(*a, **k):
        calls.append(k)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(proto_eval, "train_models", dying)
    with pytest.raises(KeyboardInterrupt):
        _run(small, models=4, ledger=tmp_path)
    monkeypatch.setattr(proto_eval, "train_models", real)
    assert len(next(tmp_path.iterdir()).read_text().splitlines()) == 1 + 2  # header + the two finished models
    resumed = _run(small, models=4, ledger=tmp_path)
    assert resumed.extra["models_from_ledger"] == 2
    assert resumed.accuracies == whole.accuracies  # bit for bit on the CPU
    assert resumed.accuracy_mean == whole.accuracy_mean and resumed.accuracy_std == whole.accuracy_std
    # A finished ledger answers without training; more models reuse the first ones.
    monkeypatch.setattr(proto_eval, "train_models", lambda *a, **k: pytest.fail("trained a model the ledger holds"))
    assert _run(small, models=4, ledger=tmp_path).accuracies == whole.accuracies
    assert _run(small, models=2, ledger=tmp_path).accuracies == whole.accuracies[:2]
    monkeypatch.setattr(proto_eval, "train_models", real)
    more = _run(small, models=5, ledger=tmp_path)
    assert more.extra["models_from_ledger"] == 4 and more.accuracies == _run(small, models=5).accuracies


def test_ledger_is_not_reused_for_other_labels_or_seeds(small, tmp_path):
    proto, learner, x, y, tx, ty = small
    _run(small, models=2, ledger=tmp_path)
    other_labels = evaluate_protocol(proto, learner, x, y.roll(1, 0), tx, ty, steps=1, seed=3, models=2, ledger=tmp_path)
    other_seed = evaluate_protocol(proto, learner, x, y, tx, ty, steps=1, seed=4, models=2, ledger=tmp_path)
    assert other_labels.extra["models_from_ledger"] == 0 and other_seed.extra["models_from_ledger"] == 0
    assert len(list(tmp_path.iterdir())) == 3


def test_ledger_key_records_the_batch_and_lr_the_models_train_with(small, tmp_path):
    # A fixed-epoch protocol trains with its own lr and minibatch size, whatever the set's are; the header says so.
    proto, learner, x, y, tx, ty = small
    evaluate_protocol(proto, learner, x, y, tx, ty, steps=1, seed=3, models=1, batch_size=50, lr=1e-3, ledger=tmp_path)
    key = json.loads(next(tmp_path.iterdir()).read_text().splitlines()[0])["key"]
    assert (key["lr"], key["batch"]) == (proto.lr, proto.batch_size) == (0.01, 5)


def test_ledger_key_counts_the_steps_the_models_train_not_the_sets_own(small, tmp_path):
    # A fixed-epoch protocol ignores the set's T (the engine trains its epochs), so the same labels tested with another
    # T reuse every model; under the paper protocol T decides the training and keeps the models apart.
    proto, learner, x, y, tx, ty = small
    first = evaluate_protocol(proto, learner, x, y, tx, ty, steps=228, seed=3, models=2, ledger=tmp_path)
    again = evaluate_protocol(proto, learner, x, y, tx, ty, steps=450, seed=3, models=2, ledger=tmp_path)
    assert again.extra["models_from_ledger"] == 2 and again.accuracies == first.accuracies
    key = json.loads(next(tmp_path.iterdir()).read_text().splitlines()[0])["key"]
    assert key["steps"] == first.steps == proto.epochs * -(-x.shape[0] // proto.batch_size)
    paper = get_protocol("paper")
    a = evaluate_protocol(paper, learner, x, y, tx, ty, steps=3, seed=3, models=1, ledger=tmp_path / "p")
    b = evaluate_protocol(paper, learner, x, y, tx, ty, steps=4, seed=3, models=1, ledger=tmp_path / "p")
    assert (a.steps, b.steps, b.extra["models_from_ledger"]) == (3, 4, 0)


def test_progress_bar_does_not_change_the_result(small):
    # The bar is driven by the engine's observer; an observer returning True would stop training early.
    assert _run(small, models=2, progress=True).accuracies == _run(small, models=2).accuracies


def test_baseline_run_directory_keeps_a_ledger_and_a_rerun_trains_nothing(tmp_path, monkeypatch):
    from labeldistill.baselines import BaselineSettings, baseline

    from labeldistill.protocols._base import PROTOCOLS

    monkeypatch.setenv("LABELDISTILL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(PROTOCOLS._items, "dc", dataclasses.replace(get_protocol("dc"), epochs=4))  # dc, shortened for a test
    s = BaselineSettings(target="digits", base=20, protocol="dc", models=5, device="cpu")
    first = baseline(s, out=tmp_path / "run")
    books = list((tmp_path / "run" / "ledger").iterdir())
    assert len(books) == 1 and books[0].name.startswith("dc-") and len(books[0].read_text().splitlines()) == 1 + 5
    monkeypatch.setattr(proto_eval, "train_models", lambda *a, **k: pytest.fail("trained a model the ledger holds"))
    again = baseline(s, out=tmp_path / "run")
    assert again["models_from_ledger"] == 5 and again["accuracies"] == first["accuracies"]
