"""Cell names: one table entry = one run (or one evaluation of a run).

Grammar::

    [SOURCE:]TARGET/METHOD/N[@KEY=VALUE]...

* ``TARGET`` / ``SOURCE``: catalog dataset names (``mnist``, ``kmnist``, ``emnist-letters``,
  ``kuzushiji-49``, ``cifar10``, ``cifar100``, ``cub``, ``digits``; aliases are accepted and
  written back in canonical form). ``SOURCE:`` makes a cross-dataset cell.
* ``METHOD``: ``ld`` (second-order), ``ld-rr`` (ridge regression), ``baseline``,
  ``baseline-ls`` (label smoothing 0.1), ``baseline-rr`` (ridge head), ``baseline-rr-ls``;
  ``dd-ours`` / ``dd-ours-rr`` (the paper's "our DD": the one online loop learning images,
  ``--learn images``, uniform-noise start, second-order / ridge); ``dd`` / ``sldd`` (the original
  DD and SLDD: :mod:`labeldistill.unrolled`, 30 unrolled steps with learned lrs);
  ``baseline-teacher`` (an early-stopped teacher's soft labels, temperature chosen on validation:
  ``baseline --labels teacher --temperature auto``) and ``ld-teacher`` / ``ld-rr-teacher`` (the
  loop started from those labels: ``distill --label-init teacher --temperature auto``);
  ``implicit-teacher`` (``distill --method implicit`` from the teacher's labels: students trained the way
  ``@protocol`` trains, which it needs, so its ``@protocol`` names how it distils and is tested, not a re-test);
  ``baseline-expert`` / ``implicit-expert``: the same two from the teacher epoch the students choose
  (``--teacher-epoch auto``: Qin et al.'s early-stopped expert) instead of its best-accuracy epoch;
  ``mean-mtt-experts`` / ``mean-mtt-experts-3`` / ``mean-teacher-expert``: the mean of other rows' label sets on the same images
  (:func:`labeldistill.average_labels`; each such method names its rows, ``METHODS[m]["parts"]``), tested under
  ``@protocol`` (:mod:`labeldistill.experiments.means`).
* ``N``: number of base examples.
* ``@KEY=VALUE``: the setting a supplementary table varies:
  ``seed=K`` (run seed), ``target-size=M|all`` (Table 8), ``arch=NAME`` (test architecture,
  Tables 13/14; for baselines the trained architecture), ``head=linear|ridge`` (Table 16),
  ``steps=+D|-D|T|xA/B`` (Table 9: a change of the distilled T, or an absolute T; Table 10's label
  rows: T x A / B, the counterpart of DD's first A of its B steps),
  ``select=NAME`` (how the base set is chosen, Table 7: ``paper-table7``; see
  ``labeldistill.selectors.list_selectors()``; absent: the seeded random draw),
  ``optimizer=sgd|adam`` (label sets: the test models train with plain SGD at one constant lr
  chosen on validation, or Adam; the flexibility table's "another optimiser"), ``order=K`` (label
  sets: each test model's minibatches from stream K of its seed: same initialisations, another
  data order), ``protocol=NAME`` (how the test models train, ``labeldistill.protocols``: ``dc`` /
  ``dc-dsa``, ConvNet-3 and the field's fixed epochs; a baseline is run under it, a label set is
  re-tested under it; absent: the paper's),
  ``variant=NAME`` (DD / SLDD cells only, Tables 10-12: how the learned schedule is edited at
  test, ``first-steps:N``, ``extended:K``, ``average-lr``, ``shuffle-within``,
  ``shuffle-across``, ``shuffle-steps-within``, ``shuffle-steps-across``, ``like-ld``; see ``labeldistill.unrolled.VARIANTS``).

``arch``, ``head``, ``steps``, ``optimizer``, ``order``, ``protocol`` and ``variant`` on a distillation cell are *evaluations* of the
distilled run named by the rest of the cell; they never distil again (one DD run per dataset
and seed serves every cell of Tables 1, 10, 11, 12 and 15, as in the paper).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from ..errors import UserError

METHODS: dict[str, dict] = {
    "ld": {"kind": "distill", "method": "second-order", "paper": "LD"},
    "ld-rr": {"kind": "distill", "method": "ridge", "paper": "LD RR"},
    "baseline": {"kind": "baseline", "smoothing": 0.0, "head": "linear", "paper": "Baseline"},
    "baseline-ls": {"kind": "baseline", "smoothing": 0.1, "head": "linear", "paper": "Baseline LS"},
    "baseline-rr": {"kind": "baseline", "smoothing": 0.0, "head": "ridge", "paper": "Baseline RR"},
    "baseline-rr-ls": {"kind": "baseline", "smoothing": 0.1, "head": "ridge", "paper": "Baseline RR LS"},
    # The paper's image distillation in its own loop ("our DD", Appendix C, Tables 4 and 17).
    "dd-ours": {"kind": "distill", "method": "second-order", "learn": "images", "image_init": "uniform", "paper": "Our DD"},
    "dd-ours-rr": {"kind": "distill", "method": "ridge", "learn": "images", "image_init": "uniform", "paper": "Our DD RR"},
    # The original methods the paper compares with (Tables 1, 4, 10-12, 15): the unrolled trainer.
    "dd": {"kind": "unrolled", "method": "dd", "paper": "DD"},
    "sldd": {"kind": "unrolled", "method": "sldd", "paper": "SLDD"},
    # Teacher soft labels (Qin et al. 2024): tested as they are, or refined by the loop (beyond the paper).
    "baseline-teacher": {"kind": "baseline", "smoothing": 0.0, "head": "linear", "labels": "teacher", "temperature": "auto",
                         "paper": "Baseline (teacher labels)"},
    "ld-teacher": {"kind": "distill", "method": "second-order", "label_init": "teacher", "temperature": "auto",
                   "paper": "LD (teacher start)"},
    "ld-rr-teacher": {"kind": "distill", "method": "ridge", "label_init": "teacher", "temperature": "auto",
                      "paper": "LD RR (teacher start)"},
    # Students trained the test's way (beyond the paper; distill/strategies/implicit.py): the run is made under @protocol.
    "implicit-teacher": {"kind": "distill", "method": "implicit", "label_init": "teacher", "temperature": "auto",
                         "distils_under_protocol": True, "paper": "Implicit (teacher start)"},
    # Qin et al.'s early-stopped expert: the teacher epoch chosen by the students its labels train (--teacher-epoch auto),
    # not by the teacher's own accuracy; tested as they are, and refined by the implicit method.
    "baseline-expert": {"kind": "baseline", "smoothing": 0.0, "head": "linear", "labels": "teacher", "temperature": "auto",
                        "teacher_epoch": "auto", "paper": "Baseline (expert epoch's labels)"},
    "implicit-expert": {"kind": "distill", "method": "implicit", "label_init": "teacher", "temperature": "auto",
                        "teacher_epoch": "auto", "distils_under_protocol": True, "paper": "Implicit (expert start)"},
    # Qin et al.'s expert itself: the students' architecture (ConvNet-3) trained as MTT's buffer.py trains experts (plain
    # SGD at lr 1e-3, DSA views, on whitened images where the protocol whitens: --teacher-recipe expert), 32 epochs, its
    # labelling epoch chosen by the students. Slow to converge by design (a ConvNet-3 epoch over CIFAR-10: ~3 minutes of
    # one CPU thread, session 42; the 32 epochs about 95 minutes).
    "baseline-mtt-expert": {"kind": "baseline", "smoothing": 0.0, "head": "linear", "labels": "teacher", "temperature": "auto",
                            "teacher_epoch": "auto", "teacher_arch": "convnet3", "teacher_recipe": "expert",
                            "teacher_epochs": 32, "teacher_patience": 32, "paper": "Baseline (ConvNet-3 expert's labels)"},
    "implicit-mtt-expert": {"kind": "distill", "method": "implicit", "label_init": "teacher", "temperature": "auto",
                            "teacher_epoch": "auto", "teacher_arch": "convnet3", "teacher_recipe": "expert",
                            "teacher_epochs": 32, "teacher_patience": 32, "distils_under_protocol": True,
                            "paper": "Implicit (ConvNet-3 expert start)"},
}
# Variants of the ConvNet-3 expert's rows, each the row it names with one thing changed:
# - MTT's own expert lr (buffer.py's default, 1e-2; Qin et al.'s scripts train at 1e-3): the 32 epochs then span far more
#   of the expert's training (at 1e-3 its labels still improved at its last epoch, session 42);
# - twice the expert's epochs at its own lr 1e-3 (64: the grid's next epoch), the other way to train it further (at lr 1e-2
#   its epochs' labels validated below those of lr 1e-3's epoch 32 on CIFAR-10, session 45);
# - both: 64 epochs at lr 1e-2 (on MNIST the lr-1e-2 expert's labels still improved at its epoch 32, session 45; it goes
#   on from the 32-epoch expert's last training state where that is cached);
# - for each expert, its implicit row for two epochs of label steps, validated after each (a run of it continues one of
#   the one-epoch row's exactly: distill --extend, which reproduce does itself).
_T64 = {"teacher_epochs": 64, "teacher_patience": 64}
_EXPERTS = {"-lr1e-2": ("lr 1e-2", {"teacher_lr": 0.01}), "-t64": ("expert of 64 epochs", _T64),
            "-lr1e-2-t64": ("lr 1e-2, expert of 64 epochs", {"teacher_lr": 0.01, **_T64})}


def _changed(row: dict, change: dict, words: str) -> dict:
    return {**row, **change, "paper": f"{row['paper'][:-1]}, {words})"}


for _variant, (_words, _change) in _EXPERTS.items():
    for _kind in ("baseline", "implicit"):
        METHODS[f"{_kind}-mtt-expert{_variant}"] = _changed(METHODS[f"{_kind}-mtt-expert"], _change, _words)
for _variant in ("", *_EXPERTS):
    METHODS[f"implicit-mtt-expert{_variant}-e2"] = _changed(METHODS[f"implicit-mtt-expert{_variant}"], {"epochs": 2, "val_every": 1},
                                                            "2 epochs")
# The default (cheap) teacher's implicit row for two epochs too: MNIST's best single set (session 42: 98.48, as a run of
# its own with --epochs 2; validated here after each epoch as the other -e2 rows are).
METHODS["implicit-teacher-e2"] = _changed(METHODS["implicit-teacher"], {"epochs": 2, "val_every": 1}, "2 epochs")
del _variant, _words, _change, _kind, _T64
# The mean of rows' label sets (experiments/means.py): each expert's implicit row with its label epochs chosen on validation
# (the -e2 rows keep one epoch or two), from the 32- and 64-epoch experts at lr 1e-3, then with the lr-1e-2 expert's too.
# (The rule was written after session 47 had averaged CIFAR-10's two best sets by test; there it names those two.)
METHODS["mean-mtt-experts"] = {"kind": "mean", "parts": ("implicit-mtt-expert-e2", "implicit-mtt-expert-t64-e2"),
                               "paper": "Mean of the implicit sets from the 32- and 64-epoch ConvNet-3 experts"}
METHODS["mean-mtt-experts-3"] = {"kind": "mean", "parts": (*METHODS["mean-mtt-experts"]["parts"], "implicit-mtt-expert-lr1e-2-e2"),
                                 "paper": "Mean of the implicit sets from three ConvNet-3 experts"}
# MNIST's best set (session 47: 98.56, made by export + evaluate from two runs): the default teacher's implicit set with the
# lr-1e-2 expert's, as a row, so that its seeds are one command. (Named after the test had ranked it, as the rows above.)
METHODS["mean-teacher-expert"] = {"kind": "mean", "parts": ("implicit-teacher-e2", "implicit-mtt-expert-lr1e-2-e2"),
                                  "paper": "Mean of the implicit sets from the default teacher and the lr-1e-2 ConvNet-3 expert"}
KEYS = ("seed", "target-size", "arch", "head", "steps", "optimizer", "order", "variant", "protocol", "select")  # canonical order
EVAL_KEYS = ("arch", "head", "steps", "optimizer", "order", "variant", "protocol")  # keys that make a distillation cell an evaluation
LABEL_SET_KEYS = ("optimizer", "order", "protocol")  # evaluations of label sets only (a DD / SLDD set: @variant)
BASELINE_KEYS = ("seed", "arch", "select", "protocol")  # what a baseline cell may vary
DISTILL_KINDS = ("distill", "unrolled")  # cells that name a distillation run (the rest: baselines)
UNROLLED_KEYS = ("seed", "arch", "variant")  # what a DD / SLDD cell may vary
UNDER_PROTOCOL_KEYS = ("seed", "target-size", "select", "protocol")  # what a cell distilled under its @protocol may vary
MEAN_KEYS = UNDER_PROTOCOL_KEYS  # what a mean of rows' sets may vary: its parts' run, and the protocol that tests it

_FORM = "[SOURCE:]TARGET/METHOD/N[@KEY=VALUE], e.g. mnist/ld-rr/100 or emnist-letters:mnist/ld/100@target-size=5000"
_NAME = re.compile(r"^(?:(?P<source>[^:/@\s]+):)?(?P<target>[^:/@\s]+)/(?P<method>[^:/@\s]+)/(?P<n>[^:/@\s]+)(?P<rest>(?:@[^@\s]*)*)$")


def _bad(text: str, why: str) -> UserError:
    return UserError(f"Bad cell name '{text}': {why}. Expected {_FORM}.")


def _dataset(name: str, text: str) -> str:
    from ..data.catalog import CATALOG, list_datasets

    key = name.lower()
    if key not in CATALOG:
        raise UserError(f"Unknown dataset '{name}' in cell '{text}'. Known: {', '.join(list_datasets())}.")
    return CATALOG.canonical(key)


def _value(key: str, value: str, text: str) -> str:
    if key == "seed":
        if not value.isdigit():
            raise _bad(text, f"seed takes a whole number >= 0, got '{value}'")
        return str(int(value))
    if key == "target-size":
        if value.lower() == "all":
            return "all"
        if not value.isdigit() or int(value) < 1:
            raise _bad(text, f"target-size takes a number of target examples >= 1 or 'all', got '{value}'")
        return str(int(value))
    if key == "arch":
        from ..models import MODELS, list_models

        if value.lower() not in MODELS:
            raise UserError(f"Unknown architecture '{value}' in cell '{text}'. Known: {', '.join(list_models())}.")
        return MODELS.canonical(value.lower())
    if key == "head":
        if value not in ("linear", "ridge"):
            raise _bad(text, f"head is 'linear' or 'ridge', got '{value}'")
        return value
    if key == "select":
        from ..selectors import SELECTORS, list_selectors

        known = list_selectors()
        if value not in SELECTORS:
            raise UserError(f"Unknown base selector '{value}' in cell '{text}'. Known: {', '.join(known)}.")
        return SELECTORS.canonical(value)
    if key == "steps":
        frac = re.fullmatch(r"x(\d+(?:\.\d+)?)(?:/(\d+))?", value)
        if frac and float(frac.group(1)) > 0 and (frac.group(2) is None or int(frac.group(2)) > 0):
            return value
        if not re.fullmatch(r"[+-]?\d+", value):
            raise _bad(text, f"steps takes a change of T such as +50 or -20, a fraction of T such as x10/30 (or an absolute T), "
                             f"got '{value}'")
        return f"{int(value):+d}" if value[0] in "+-" else str(int(value))
    if key == "optimizer":
        from ..engine.recipe import OPTIMIZERS

        if value.lower() not in OPTIMIZERS:
            raise _bad(text, f"optimizer is one of {', '.join(OPTIMIZERS)}, got '{value}'")
        return value.lower()
    if key == "order":
        if not value.isdigit():
            raise _bad(text, f"order takes a minibatch stream number >= 0, got '{value}'")
        return str(int(value))
    if key == "protocol":
        from ..protocols import PROTOCOLS, canonical_protocol, list_protocols

        if value.lower() not in PROTOCOLS:
            raise UserError(f"Unknown evaluation protocol '{value}' in cell '{text}'. Known: {', '.join(list_protocols())}.")
        return canonical_protocol(value.lower())
    if key == "variant":
        from ..unrolled.schedule import parse_variant, variant_name

        try:
            return variant_name(*parse_variant(value))
        except UserError as e:
            raise _bad(text, str(e).rstrip(".")) from None
    raise _bad(text, f"unknown key '{key}' (known: {', '.join(KEYS)})")


@dataclass(frozen=True)
class Cell:
    """A parsed cell name; :attr:`name` is its canonical spelling."""

    target: str
    method: str
    base: int
    source: str | None = None
    settings: tuple[tuple[str, str], ...] = ()  # (key, value) in KEYS order

    # ---- the varied settings
    def get(self, key: str) -> str | None:
        return dict(self.settings).get(key)

    @property
    def seed(self) -> int:
        return int(self.get("seed") or 0)

    @property
    def target_size(self) -> int | None:
        v = self.get("target-size")
        return None if v in (None, "all") else int(v)

    @property
    def arch(self) -> str | None:
        return self.get("arch")

    @property
    def head(self) -> str | None:
        return self.get("head")

    @property
    def steps(self) -> str | None:
        return self.get("steps")

    @property
    def select(self) -> str | None:
        return self.get("select")

    @property
    def optimizer(self) -> str | None:
        return self.get("optimizer")

    @property
    def order(self) -> int | None:
        v = self.get("order")
        return None if v is None else int(v)

    @property
    def variant(self) -> str | None:
        return self.get("variant")

    @property
    def protocol(self) -> str | None:
        """The test protocol named by the cell (None: the paper's)."""
        return self.get("protocol")

    @property
    def kind(self) -> str:
        return METHODS[self.method]["kind"]

    @property
    def parts(self) -> tuple[Cell, ...]:
        """A mean cell's parts: the cells of the rows whose label sets it averages (the same settings); else none."""
        return tuple(dataclasses.replace(self, method=m) for m in METHODS[self.method].get("parts", ()))

    @property
    def distils_under_protocol(self) -> bool:
        """Whether the cell's run is made under its ``@protocol`` (its students train that way), not re-tested under it."""
        return bool(METHODS[self.method].get("distils_under_protocol"))

    @property
    def is_evaluation(self) -> bool:
        """A distillation cell that only re-tests a distilled run (other arch / head / steps / variant)."""
        keys = tuple(k for k in EVAL_KEYS if not (k == "protocol" and self.distils_under_protocol))
        return self.kind in DISTILL_KINDS and any(self.get(k) is not None for k in keys)

    # ---- names
    @property
    def name(self) -> str:
        head = f"{self.source}:" if self.source else ""
        tail = "".join(f"@{k}={v}" for k, v in self.settings)
        return f"{head}{self.target}/{self.method}/{self.base}{tail}"

    @property
    def slug(self) -> str:
        """File-system name: ``emnist-letters_to_mnist_ld_100__target-size=5000``
        (``mnist_dd_100__variant=first-steps-10`` for a value with a colon, ``mnist_ld_100__steps=x10-30`` with a slash)."""
        head = f"{self.source}_to_" if self.source else ""
        tail = "".join(f"__{k}={v.replace(':', '-').replace('/', '-')}" for k, v in self.settings)
        return f"{head}{self.target}_{self.method}_{self.base}{tail}"

    def with_settings(self, **changes: str | None) -> Cell:
        d = dict(self.settings)
        for k, v in changes.items():
            k = k.replace("_", "-")
            if v is None:
                d.pop(k, None)
            else:
                d[k] = v
        return Cell(self.target, self.method, self.base, self.source, tuple((k, d[k]) for k in KEYS if k in d))

    def __str__(self) -> str:
        return self.name


def parse_cell(text: str) -> Cell:
    """Parse a cell name; raises a one-line :class:`UserError` for a bad one."""
    if not isinstance(text, str):
        raise UserError(f"A cell name must be a string, got {text!r}.")
    raw = text.strip()
    m = _NAME.match(raw)
    if m is None:
        raise _bad(raw, "it does not have the form TARGET/METHOD/N")
    method = m["method"].lower()
    if method not in METHODS:
        raise _bad(raw, f"unknown method '{m['method']}' (known: {', '.join(METHODS)})")
    if not m["n"].isdigit() or int(m["n"]) < 1:
        raise _bad(raw, f"N must be a whole number >= 1, got '{m['n']}'")
    target = _dataset(m["target"], raw)
    source = _dataset(m["source"], raw) if m["source"] else None
    settings: dict[str, str] = {}
    for part in filter(None, (m["rest"] or "").split("@")):
        key, eq, value = part.partition("=")
        key = key.lower().replace("_", "-")
        if not eq or not value:
            raise _bad(raw, f"'@{part}' is not KEY=VALUE")
        if key in settings:
            raise _bad(raw, f"'{key}' is given twice")
        settings[key] = _value(key, value, raw)
    if settings.get("select") == "random":  # the default draw: the same cell as without @select
        del settings["select"]
    if settings.get("optimizer") == "adam":  # the paper protocol's own optimiser: the same cell as without
        del settings["optimizer"]
    if settings.get("variant") == "learned":  # the schedule as learned: the run's own test, the same cell
        del settings["variant"]
    if settings.get("protocol") == "paper":  # the paper's protocol: the same cell as without
        del settings["protocol"]
    kind = METHODS[method]["kind"]
    if "variant" in settings and kind != "unrolled":
        raise _bad(raw, "@variant edits a DD / SLDD schedule; it applies to the dd and sldd methods only")
    if kind == "unrolled":
        if source is not None:
            raise _bad(raw, "DD / SLDD learn their images from noise: they cannot be cross-dataset")
        extra = sorted(set(settings) - set(UNROLLED_KEYS))
        if extra:
            raise _bad(raw, f"a DD / SLDD cell takes only @seed, @arch and @variant, not @{extra[0]}")
    if kind == "mean":
        extra = sorted(set(settings) - set(MEAN_KEYS))
        if extra:
            raise _bad(raw, f"{method} is the mean of other rows' label sets, tested under its @protocol; it takes only @seed, "
                            f"@target-size, @select and @protocol, not @{extra[0]}")
        head = f"{source}:" if source else ""
        tail = "".join(f"@{k}={v}" for k, v in settings.items())
        for part in METHODS[method]["parts"]:  # each part must be a cell of its own, with these settings
            try:
                parse_cell(f"{head}{target}/{part}/{m['n']}{tail}")
            except UserError as e:
                raise UserError(f"Cell '{raw}' averages the label sets of another cell that is not valid: {e}") from None
    if METHODS[method].get("distils_under_protocol"):
        from ..protocols import get_protocol

        extra = sorted(set(settings) - set(UNDER_PROTOCOL_KEYS))
        if extra:
            raise _bad(raw, f"{method} distils and tests under its @protocol; it takes only @seed, @target-size, @select and "
                            f"@protocol, not @{extra[0]}")
        if get_protocol(settings.get("protocol", "paper")).epochs is None:
            raise _bad(raw, f"{method} trains its students the way the test trains models: give a fixed-epoch @protocol "
                            "(dc, dc-dsa)")
    label_only = sorted(set(settings) & set(LABEL_SET_KEYS))
    if label_only and kind != "distill":
        if not (kind in ("baseline", "mean") and label_only == ["protocol"]):
            raise _bad(raw, f"@{label_only[0]} varies how a label set is tested; a DD / SLDD set has @variant, a baseline has "
                            "only @protocol")
    fixed = [k for k in ("head", "steps", "optimizer", "order") if k in settings]
    if "protocol" in settings and fixed:
        raise _bad(raw, f"@protocol {settings['protocol']} fixes how the models train (linear head, its epochs, SGD); "
                        f"@{fixed[0]} varies the paper protocol")
    if "learn" in METHODS[method]:
        if source is not None:
            raise _bad(raw, "image distillation starts from uniform noise: it cannot be cross-dataset")
        if "select" in settings:
            raise _bad(raw, "image distillation starts from uniform noise: @select (the base images) does not apply")
    if source is not None and settings.get("select", "random") != "random":
        raise _bad(raw, "a cross-dataset base set is drawn at random from the source: @select applies within a dataset")
    if kind == "baseline":
        if source is not None:
            raise _bad(raw, "baselines use the base images' true labels, so they cannot be cross-dataset (use ld or ld-rr)")
        extra = sorted(set(settings) - set(BASELINE_KEYS))
        if extra:
            raise _bad(raw, f"a baseline takes only @seed, @arch, @select and @protocol, not @{extra[0]} (use baseline-rr for a "
                            "ridge head)")
        if "protocol" in settings and METHODS[method]["head"] != "linear":
            raise _bad(raw, f"@protocol {settings['protocol']} trains standard models (the linear head); {method} has a ridge head")
    return Cell(target, method, int(m["n"]), source, tuple((k, settings[k]) for k in KEYS if k in settings))


_PART_ENDS = "/@:,="


def _prefix_of_parts(prefix: str, name: str) -> bool:
    return name.startswith(prefix) and (len(name) == len(prefix) or prefix[-1:] in _PART_ENDS or name[len(prefix)] in _PART_ENDS)


def match_cells(names: list[str], patterns: list[str]) -> list[str]:
    """The names selected by ``--only`` patterns: an exact (canonical) name, a prefix of whole parts, or a glob.
    A prefix ends where a part of the name does (before ``/``, ``@``, ``:``, ``,`` or ``=``, or with one): ``mnist/ld``
    selects ``mnist/ld/10`` and ``mnist/ld/100``, not ``mnist/ld-rr/10``, and a row's name never selects the rows
    named after it (``implicit-mtt-expert-t64`` is not ``implicit-mtt-expert-t64-e2``)."""
    from fnmatch import fnmatchcase

    chosen: set[str] = set()
    for pat in patterns:
        pat = pat.strip()
        hits: list[str]
        if any(c in pat for c in "*?["):
            hits = [n for n in names if fnmatchcase(n, pat)]
        else:
            exact = pat
            try:
                exact = parse_cell(pat).name
            except UserError:
                pass
            hits = [n for n in names if n == exact] or [n for n in names if _prefix_of_parts(pat, n)]
        if not hits:
            raise UserError(f"--only '{pat}' matches no cell of this table; see the cell names with --list.")
        chosen.update(hits)
    return [n for n in names if n in chosen]
