import pytest

from labeldistill.errors import UserError
from labeldistill.experiments import parse_cell
from labeldistill.experiments.cells import match_cells
from labeldistill.selectors import list_selectors


@pytest.mark.parametrize("text, target, source, method, base, settings", [
    ("mnist/ld-rr/100", "mnist", None, "ld-rr", 100, ()),
    ("mnist/ld/10", "mnist", None, "ld", 10, ()),
    ("cifar10/baseline-rr-ls/500", "cifar10", None, "baseline-rr-ls", 500, ()),
    ("emnist-letters:mnist/ld/100@target-size=5000", "mnist", "emnist-letters", "ld", 100, (("target-size", "5000"),)),
    ("emnist-letters:mnist/ld-rr/100@target-size=all", "mnist", "emnist-letters", "ld-rr", 100, (("target-size", "all"),)),
    ("cifar10/ld/50@arch=lenet", "cifar10", None, "ld", 50, (("arch", "lenet"),)),
    ("mnist/ld/100@steps=+50", "mnist", None, "ld", 100, (("steps", "+50"),)),
    ("mnist/ld/100@steps=-20", "mnist", None, "ld", 100, (("steps", "-20"),)),
    ("mnist/ld/100@steps=x10/30", "mnist", None, "ld", 100, (("steps", "x10/30"),)),
    ("mnist/ld-rr/100@steps=x0.5", "mnist", None, "ld-rr", 100, (("steps", "x0.5"),)),
    ("mnist/ld-rr/100@head=linear", "mnist", None, "ld-rr", 100, (("head", "linear"),)),
    ("mnist/ld/100@seed=2", "mnist", None, "ld", 100, (("seed", "2"),)),
    ("cub:cifar10/ld-rr/10@arch=resnet14", "cifar10", "cub", "ld-rr", 10, (("arch", "resnet14"),)),
    ("emnist-letters:kuzushiji-49/ld/20", "kuzushiji-49", "emnist-letters", "ld", 20, ()),
    ("cifar10/baseline/10@arch=alexnet", "cifar10", None, "baseline", 10, (("arch", "alexnet"),)),
    ("mnist/ld-rr/100@protocol=dc-dsa", "mnist", None, "ld-rr", 100, (("protocol", "dc-dsa"),)),
    ("mnist/baseline-teacher/100@protocol=dc", "mnist", None, "baseline-teacher", 100, (("protocol", "dc"),)),
    ("mnist/ld-teacher/100@seed=1@protocol=dc-dsa", "mnist", None, "ld-teacher", 100, (("seed", "1"), ("protocol", "dc-dsa"))),
])
def test_parse_all_forms(text, target, source, method, base, settings):
    c = parse_cell(text)
    assert (c.target, c.source, c.method, c.base, c.settings) == (target, source, method, base, settings)
    assert c.name == text and parse_cell(c.name) == c


def test_canonical_spelling_and_properties():
    c = parse_cell(" EMNIST:MNIST/LD/100@steps=50@seed=3@arch=ResNet18 ")
    assert c.name == "emnist-letters:mnist/ld/100@seed=3@arch=resnet14@steps=50"  # aliases, KEYS order
    assert c.seed == 3 and c.arch == "resnet14" and c.steps == "50" and c.is_evaluation
    assert parse_cell("mnist/ld/100@steps=+0").steps == "+0"
    assert parse_cell("mnist/ld/100@target-size=all").target_size is None
    assert parse_cell("mnist/ld/100@target-size=500").target_size == 500
    assert not parse_cell("mnist/ld/100@seed=1").is_evaluation
    assert not parse_cell("cifar10/baseline/10@arch=lenet").is_evaluation
    assert parse_cell("emnist-letters:mnist/ld/100@target-size=5000").slug == "emnist-letters_to_mnist_ld_100__target-size=5000"
    assert parse_cell("mnist/ld/100@steps=-50").slug == "mnist_ld_100__steps=-50"
    assert parse_cell("mnist/ld/100@steps=x10/30").slug == "mnist_ld_100__steps=x10-30"  # one file name, no folder
    # @protocol: an evaluation of a label set, a setting of a baseline; the paper's protocol is the cell without it.
    assert parse_cell("mnist/ld/100@protocol=DSA").name == "mnist/ld/100@protocol=dc-dsa"  # the alias, canonical
    assert parse_cell("mnist/ld/100@protocol=dc").is_evaluation and parse_cell("mnist/ld/100@protocol=dc").protocol == "dc"
    assert parse_cell("mnist/ld/100@protocol=paper") == parse_cell("mnist/ld/100")
    assert not parse_cell("mnist/baseline-teacher/100@protocol=dc").is_evaluation
    # A run made under its protocol: @protocol is part of the run, not a re-test.
    c = parse_cell("mnist/implicit-teacher/100@protocol=dc-dsa@seed=1")
    assert c.distils_under_protocol and not c.is_evaluation and c.name == "mnist/implicit-teacher/100@seed=1@protocol=dc-dsa"
    assert not parse_cell("mnist/ld/100@protocol=dc").distils_under_protocol


@pytest.mark.parametrize("text, words", [
    ("mnist", "form"),
    ("mnist/ld", "form"),
    ("mnist/ld/100/5", "form"),
    ("mnist/dld/100", "unknown method"),
    ("mnist/ld/0", "N must be"),
    ("mnist/ld/ten", "N must be"),
    ("svhn/ld/10", "Unknown dataset 'svhn'"),
    ("svhn:mnist/ld/10", "Unknown dataset 'svhn'"),
    ("mnist/ld/10@arch=vgg", "Unknown architecture 'vgg'"),
    ("mnist/ld/10@head=cosine", "head is"),
    ("mnist/ld/10@steps=plenty", "steps takes"),
    ("mnist/ld/10@steps=x0/30", "steps takes"),
    ("mnist/ld/10@steps=x1/0", "steps takes"),
    ("mnist/ld/10@seed=-1", "seed takes"),
    ("mnist/ld/10@target-size=0", "target-size"),
    ("mnist/ld/10@colour=red", "unknown key"),
    ("mnist/ld/10@seed", "KEY=VALUE"),
    ("mnist/ld/10@seed=1@seed=2", "twice"),
    ("emnist-letters:mnist/baseline/10", "cannot be cross-dataset"),
    ("mnist/baseline/10@steps=+5", "only @seed, @arch, @select and @protocol"),
    ("mnist/baseline-ls/10@head=ridge", "only @seed, @arch, @select and @protocol"),
    ("mnist/ld/10@protocol=imagenet", "Unknown evaluation protocol 'imagenet' in cell 'mnist/ld/10@protocol=imagenet'"),
    ("mnist/ld/10@head=ridge@protocol=dc", "@protocol dc fixes how the models train"),
    ("mnist/ld/10@steps=+5@protocol=dc-dsa", "@protocol dc-dsa fixes how the models train"),
    ("mnist/baseline-rr/10@protocol=dc", "has a ridge head"),
    ("mnist/dd/100@protocol=dc", "a DD / SLDD cell takes only"),
    ("mnist/implicit-teacher/100", "give a fixed-epoch @protocol"),
    ("mnist/implicit-teacher/100@protocol=paper", "give a fixed-epoch @protocol"),
    ("mnist/implicit-teacher/100@protocol=dc@arch=lenet", "takes only @seed, @target-size, @select and @protocol, not @arch"),
    ("mnist/ld/10@select=nope", f"Unknown base selector 'nope' in cell 'mnist/ld/10@select=nope'. Known: {', '.join(list_selectors())}."),
    ("emnist-letters:mnist/ld/10@select=kcenter", "drawn at random from the source"),
])
def test_bad_names_give_one_line_user_errors(text, words):
    with pytest.raises(UserError) as e:
        parse_cell(text)
    msg = str(e.value)
    assert words in msg and "\n" not in msg


NAMES = ["mnist/ld/10", "mnist/ld/100", "mnist/baseline/100", "cifar10/ld/100", "emnist-letters:mnist/ld/100",
         "mnist/ld/100@steps=+50", "mnist/ld-rr/10", "mnist/implicit-t64/100", "mnist/implicit-t64-e2/100"]


def test_only_exact_prefix_and_glob():
    assert match_cells(NAMES, ["mnist/ld/100"]) == ["mnist/ld/100"]  # exact wins over prefix
    assert match_cells(NAMES, ["MNIST/LD/10"]) == ["mnist/ld/10"]  # canonicalised
    assert match_cells(NAMES, ["mnist/ld/"]) == ["mnist/ld/10", "mnist/ld/100", "mnist/ld/100@steps=+50"]
    assert match_cells(NAMES, ["mnist/*/100"]) == ["mnist/ld/100", "mnist/baseline/100", "mnist/implicit-t64/100",
                                                   "mnist/implicit-t64-e2/100"]
    # a prefix ends where a part of the name does: a row's name selects that row, not the rows named after it
    assert match_cells(NAMES, ["mnist/ld"]) == ["mnist/ld/10", "mnist/ld/100", "mnist/ld/100@steps=+50"]
    assert match_cells(NAMES, ["mnist/implicit-t64"]) == ["mnist/implicit-t64/100"]
    assert match_cells(NAMES, ["mnist/ld/100@steps"]) == ["mnist/ld/100@steps=+50"]
    assert match_cells(NAMES, ["emnist-letters"]) == ["emnist-letters:mnist/ld/100"]
    with pytest.raises(UserError, match="matches no cell"):
        match_cells(NAMES, ["mnist/implicit-t6"])
    assert match_cells(NAMES, ["emnist-letters:*", "cifar10"]) == ["cifar10/ld/100", "emnist-letters:mnist/ld/100"]
    with pytest.raises(UserError, match="matches no cell"):
        match_cells(NAMES, ["kmnist/*"])
