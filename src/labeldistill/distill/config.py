"""Settings of a distillation run, with the paper's values as defaults.

``None`` means "the paper's per-setting default" (epochs, inner batch size, reset window,
architecture), resolved by :meth:`DistillConfig.resolve` once the target is known; for a few settings
it means "the method's" (:data:`METHOD_DEFAULTS`: the paper's, unless the strategy names its own).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .. import paper_defaults
from ..errors import UserError
from ..settings import from_dict


META_GRADIENTS = ("auto", "jvp", "double-backward")


def resolve_meta_gradient(choice: str, device: str | object) -> str:
    """The second-order gradient form for a device ("auto": the faster one measured there)."""
    if choice != "auto":
        return choice
    return "jvp" if str(device).startswith("cuda") else "double-backward"


# Settings whose default belongs to the method (None in a config): the paper's values, which a strategy may replace with
# its own (``Strategy.defaults``; --method implicit's are the settings it was measured with, docs/results.md).
METHOD_DEFAULTS: dict[str, object] = {"target_batch": 1024, "label_lr": 1e-3, "label_param": "probabilities", "target_scale": "shared",
                                      "refresh_every": None}


def method_defaults(method: str, target_labels: str = "true") -> dict[str, object]:
    """The values ``None`` stands for in :data:`METHOD_DEFAULTS`'s settings under ``method``: the paper's, replaced by the
    strategy's own ``defaults``; a fitted target scale needs class indices, so with a teacher's targets it is the shared one."""
    from .strategies import STRATEGIES

    d = {**METHOD_DEFAULTS, **STRATEGIES.get(STRATEGIES.canonical(method)).defaults}
    if d["target_scale"] == "fitted" and target_labels != "true":
        d["target_scale"] = "shared"
    return d

TARGET_LABELS = ("true", "teacher")  # what the loop's target loss compares with (DistillConfig.target_labels)


@dataclass
class DistillConfig:
    # The problem
    target: str = "mnist"  # dataset argument (catalog name, npz:FILE, folder:DIR)
    source: str | None = None  # base images from another dataset (cross-dataset); None: within-dataset
    base: int = 100  # N, number of base examples
    target_size: int | None = None  # keep only M target training examples (paper Table 8)
    split: tuple[float, float, float] | None = None  # fractions for datasets without official splits
    seed: int = 0
    base_select: str = "random"  # how the base set is chosen (labeldistill.selectors.list_selectors())
    # The method
    method: str = "second-order"  # "second-order" or "ridge"
    # What is learned (distill/learned.py): "labels" (LD, the paper's method), "images" (its "our DD":
    # learned pixels, fixed one-hot labels) or "images+labels".
    learn: str = "labels"
    image_init: str | None = None  # "uniform" or "real"; None: uniform for images, real for images+labels
    # Adam lr of learned images (pixel space). None: by their start (learned.IMAGE_LRS): 1e-3 from uniform noise (the
    # paper's DD), 1e-4 from the real base images (1e-3 rewrites them: -5 points on MNIST-100, docs/results.md).
    image_lr: float | None = None
    # Where learned labels start (distill/label_init.py): "uniform" 1/C (the authors'), "onehot" (the base
    # images' classes; within-dataset), "teacher" (an early-stopped expert's soft labels: teacher/) or "set" (the
    # labels of another distilled set on the same images, label_set: say the mean of two runs' sets, to refine further).
    label_init: str = "uniform"
    label_set: str | None = None  # --label-init set: the distilled set (file or run directory) whose labels start the run
    temperature: float | str = 1.0  # teacher labels' softmax temperature; "auto": chosen on the validation split
    teacher_arch: str | None = None  # None: the loop's architecture (by default the dataset's: lenet / alexnet), any protocol
    teacher_epochs: int = 30  # the teacher trains at most this many epochs ...
    teacher_patience: int = 3  # ... stopping this many after its best validation accuracy
    teacher_epoch: int | str = "best"  # which epoch's weights label: "best" (validation accuracy), "auto" (students') or N
    teacher_recipe: str = "adam"  # how the teacher trains (teacher.TEACHER_RECIPES): "adam" (cheap) or "expert" (SGD, DSA)
    teacher_lr: float | None = None  # the teacher's lr; None: its recipe's
    # The start labels as a label-selection candidate (distill/start.py): "auto" (on for any start but uniform,
    # label-only runs), "on" or "off". Resolved to "on" / "off"; records from before it existed mean "off".
    start_candidate: str = "auto"
    # A softmax temperature for the final labels before the test (labeldistill/calibration.py): a number, or "auto":
    # chosen on the validation split as the test trains (the teacher labels' rule and grid). 1: the labels as learned.
    label_temperature: float | str = 1.0
    arch: str | None = None  # None: lenet for greyscale, alexnet for colour
    epochs: int | None = None  # None: 400 (800 when N > 100 or CIFAR-100; K-49 100 / 200)
    target_batch: int | None = None  # N_o; None: the method's (METHOD_DEFAULTS: 1,024, the paper's)
    inner_batch: int | None = None  # N_i; None: 10 / 10 / 25 / 50 (100 for CIFAR-100), at most N
    label_lr: float | None = None  # beta for the labels (Adam); None: the method's (1e-3, the paper's)
    # What Adam steps for learned labels: "probabilities" (the paper's: clamped, rows renormalised) or, beyond the paper,
    # "logits" (labels = softmax of learned logits: steps scale probabilities, so a teacher start's small entries keep
    # their proportions; distill/labels.py). Changes results: part of the config.
    label_param: str | None = None  # None: the method's ("probabilities", the paper's)
    model_lr: float = 1e-3  # beta for the persistent model (Adam)
    inner_lr: float = 0.01  # alpha, the virtual inner step (second order)
    # Virtual steps the meta-objective looks ahead (beyond the paper; --method lookahead / lookahead-linear only,
    # distill/strategies/lookahead.py): the paper's second order looks one. Changes results: part of the config.
    horizon: int = 1
    # --method implicit only (beyond the paper; distill/strategies/implicit.py, distill/students.py): the students its
    # gradient is averaged over, the augmented views of each base image in it, conjugate-gradient steps, the ridge added
    # to the students' weight decay, the students' epochs after each label step, their first training's epochs
    # (None: the test protocol's own), and every how many label steps one student (in turn) is replaced by a fresh one
    # trained the whole way on the labels as they are (0: never, students only follow; None: the method's, 5 since session
    # 34). Change results: part of the config.
    students: int = 1
    views: int = 4
    cg_iters: int = 10
    damping: float = 1e-3
    follow_epochs: int = 20
    student_epochs: int | None = None
    refresh_every: int | None = None
    # Beyond the paper: augment every step's inner minibatch like this protocol's test ("dsa" = dc-dsa's DSA, per
    # image; distill/augment.py); "none" (the paper) trains the loop on the images as they are.
    augment: str = "none"
    # Second order: "jvp" (one forward-mode product) or "double-backward"; both exact (tested equal).
    # "auto": jvp on a GPU, double backward on a CPU, where oneDNN runs it faster (docs/benchmarks.md).
    meta_gradient: str = "auto"
    ridge_lambda: float = 1.0
    ridge_step: float = 0.01  # pseudo-gradient step size
    scale_lr: float = 0.01  # Adam lr of the RR calibration scale
    # The target loss's logit scale (distill/strategies/ridge.py): "shared" (the paper's: the calibration s, trained on
    # the base loss) or, beyond the paper and for ridge only, "fitted" (each step's loss-minimising scale, so that
    # sharper labels are not paid for their sharpness alone). Changes results: part of the config.
    target_scale: str | None = None  # None: the method's ("shared", the paper's)
    # What the target loss compares the model's predictions with (distill/target_labels.py): "true" (the paper's: the
    # target's class indices) or, beyond the paper, "teacher" (an early-stopped expert's probabilities on the target
    # images at target_temperature, the knowledge-distillation target: the loop then makes a model trained on the base
    # set mimic the teacher on the target). Changes results: part of the config.
    target_labels: str = "true"
    target_temperature: float = 1.0
    reset_window: int | None = None  # None: 100 for CIFAR-100 / K-49 (any N); else 50, 200 when N > 100
    # Validation, test and bookkeeping
    val_every: int = 5  # epochs between label-selection validations
    # Fresh models trained per validation snapshot; selection on their mean validation accuracy.
    # 1 is the paper's protocol (and the exact same seeds as before this setting); M > 1 makes
    # the selection less noisy at M times the validation cost. Changes results: part of the config.
    validation_models: int = 1
    # How a snapshot (and a start candidate) is scored: "paper" (one model trained T steps, Adam; the paper's) or a
    # fixed-epoch protocol ("dc", "dc-dsa": validation_models students of the protocol each, on the validation split;
    # beyond the paper, so that the labels are chosen as they will be tested; slow on a CPU). Changes results.
    select_protocol: str = "paper"
    val_group: int | None = None  # snapshots validated at once (None: 4 on a CPU, 16 on a GPU; never changes a result)
    test_models: int = 20
    # How the final test trains its fresh models (labeldistill.protocols): "paper" (Adam, T random
    # minibatches, test_models models) or "dc" / "dc-dsa" (the DC / DSA / MTT protocol: ConvNet-3, SGD,
    # fixed epochs, DSA, ZCA for colour data; its own 5 models). Label selection is unchanged.
    test_protocol: str = "paper"
    checkpoint_minutes: float = 3.0  # a checkpoint at least this often (and at each validation)
    grad_var_every: int = 50  # record Var[label meta-gradient] every this many steps (0: never)
    device: str = "auto"
    cuda_graph: bool = True  # replay the loop step as a CUDA graph on a GPU (same result, less launch overhead)
    # TF32 for cuDNN convolutions and CUDA matmuls (GPU only). Off: float32 everywhere, as on a CPU
    # (PyTorch's own defaults mix TF32 convolutions with float32 matmuls); see numerics.py.
    allow_tf32: bool = False
    # Deterministic GPU kernels (numerics.float32_precision): a GPU run repeats bit for bit, and a stacked run equals
    # the run alone. Off by default (PyTorch's default; the cost is measured in docs/benchmarks.md). A CPU is exact anyway.
    deterministic: bool = False

    def resolve(self, target_name: str, channels: int) -> DistillConfig:
        """A copy with every ``None`` default filled in for this target."""
        c = dataclasses.replace(self)
        from ..protocols import get_protocol
        from .strategies import STRATEGIES

        c = c.with_method_defaults()
        strategy = STRATEGIES.get(STRATEGIES.canonical(c.method))
        if strategy.persistent == "protocol":
            # Students trained the test's way: the test's architecture, all base images in every step (they train
            # full-batch), and one epoch over the target split (a step costs about 40 s of a CPU thread a student on
            # MNIST-100; the labels gained most within the first 10-20 steps, docs/results.md).
            c.arch = c.arch or get_protocol(c.test_protocol).arch
            c.inner_batch = c.inner_batch or c.base
            c.epochs = c.epochs or 1
        c.arch = c.arch or paper_defaults.default_arch(target_name, channels)
        c.epochs = c.epochs if c.epochs is not None else paper_defaults.epochs(c.base, target_name)
        c.inner_batch = c.inner_batch or paper_defaults.inner_batch_size(c.base, target_name)
        from .learned import IMAGE_RESET_WINDOW, LEARN, default_image_lr

        spec = LEARN.get(c.learn)
        if spec.images:  # the paper's image distillation: window 50 whatever the dataset and N
            c.image_init = c.image_init or spec.default_image_init
            c.reset_window = c.reset_window or IMAGE_RESET_WINDOW
        else:
            c.reset_window = c.reset_window or paper_defaults.reset_window(c.base, target_name)
        if c.image_lr is None:  # by the images' start; without learned images unused, recorded as before (1e-3)
            c.image_lr = default_image_lr(c.image_init if spec.images else None)
        if c.label_init == "teacher" and c.teacher_arch is None:
            # Recorded, not left to a default (which changed in session 9): the loop's architecture, which takes the images
            # as the run loads them (by default the dataset's own, a cheap teacher: LeNet / AlexCifarNet). Students trained
            # the test's way have the test's architecture (ConvNet-3: hours as a teacher on a CPU); their teacher is the
            # dataset's own, the one `baseline --labels teacher` trains.
            c.teacher_arch = paper_defaults.default_arch(target_name, channels) if strategy.persistent == "protocol" else c.arch
        c.validate()
        from .start import wanted

        c.start_candidate = "on" if wanted(c.start_candidate, c.label_init, c.learn) else "off"
        from ..protocols import require_kornia

        if get_protocol(c.test_protocol).uses_zca(channels):  # fail now, not after the whole run
            require_kornia(f"--test-protocol {c.test_protocol}")
        if get_protocol(c.select_protocol).uses_zca(channels):
            require_kornia(f"--select-protocol {c.select_protocol}")
        return c

    def with_method_defaults(self) -> DistillConfig:
        """A copy with the method's defaults (:func:`method_defaults`) in place of ``None``;
        part of :meth:`resolve`, and what the loop applies to a config it is given as it is."""
        fill = {k: v for k, v in method_defaults(self.method, self.target_labels).items() if getattr(self, k) is None}
        return dataclasses.replace(self, **fill) if fill else self

    def validate(self) -> None:
        from .labels import LABEL_PARAMS

        checks = [
            (self.base >= 1, f"--base must be at least 1 (got {self.base})"),
            (self.inner_batch is None or 1 <= self.inner_batch <= self.base,
             f"inner batch {self.inner_batch} must be between 1 and the number of base examples ({self.base})"),
            (self.epochs is None or self.epochs >= 1, f"--epochs must be at least 1 (got {self.epochs})"),
            (self.target_batch is None or self.target_batch >= 1, "target batch must be at least 1"),
            (self.val_every >= 1 and (self.val_group is None or self.val_group >= 1), "val_every and val_group must be at least 1"),
            (self.test_models >= 1, "test_models must be at least 1"),
            (isinstance(self.validation_models, int) and not isinstance(self.validation_models, bool) and self.validation_models >= 1,
             f"--validation-models must be an integer of at least 1 (got {self.validation_models!r})"),
            (self.image_lr is None or self.image_lr > 0, f"--image-lr must be positive (got {self.image_lr})"),
            (self.meta_gradient in META_GRADIENTS, f"meta_gradient must be one of {', '.join(META_GRADIENTS)}, got {self.meta_gradient!r}"),
            (self.label_param is None or self.label_param in LABEL_PARAMS, f"--label-param must be one of {', '.join(LABEL_PARAMS)}, got {self.label_param!r}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise UserError(msg)
        from ..models import MODELS
        from .strategies import STRATEGIES

        self.method = STRATEGIES.canonical(self.method)
        scales = STRATEGIES.get(self.method).target_scales
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, int) or self.horizon < 1:
            raise UserError(f"--horizon must be a positive integer, got {self.horizon!r}.")
        if self.horizon != 1 and not STRATEGIES.get(self.method).takes_horizon:
            takers = " or ".join(n for n in STRATEGIES.names() if STRATEGIES.get(n).takes_horizon)
            raise UserError(f"--horizon {self.horizon} needs --method {takers} (--method {self.method} looks one step ahead).")
        self._validate_persistent()
        if self.target_scale is not None and self.target_scale not in scales:
            raise UserError(f"--target-scale {self.target_scale} is not available with --method {self.method} (it has: {', '.join(scales)}).")
        if self.target_labels not in TARGET_LABELS:
            raise UserError(f"--target-labels must be one of {', '.join(TARGET_LABELS)}, got {self.target_labels!r}.")
        if not (isinstance(self.target_temperature, (int, float)) and self.target_temperature > 0):
            raise UserError(f"--target-temperature must be a positive number, got {self.target_temperature!r}.")
        if self.target_labels != "true" and self.target_scale == "fitted":
            raise UserError("--target-scale fitted fits the scale to class indices; it does not take --target-labels teacher.")
        from .learned import IMAGE_INITS, LEARN

        self.learn = LEARN.canonical(self.learn)
        from ..teacher import parse_temperature
        from .label_init import LABEL_INITS

        self.label_init = LABEL_INITS.canonical(self.label_init)
        if self.label_init != "uniform" and not LEARN.get(self.learn).labels:
            raise UserError(f"--label-init {self.label_init} applies to learned labels; --learn {self.learn} keeps them fixed.")
        if (self.label_init == "set") != (self.label_set is not None):
            raise UserError("--label-init set starts from the labels of --label-set FILE (a distilled set on the same images); "
                            "give both or neither.")
        self.temperature = parse_temperature(self.temperature)
        self.label_temperature = parse_temperature(self.label_temperature, flag="--label-temperature")
        if self.label_temperature != 1.0 and not LEARN.get(self.learn).labels:
            raise UserError(f"--label-temperature applies to learned labels; --learn {self.learn} keeps them one-hot.")
        from .start import wanted

        wanted(self.start_candidate, self.label_init, self.learn)  # a clear error for an impossible choice, before any work
        if self.teacher_epochs < 1 or self.teacher_patience < 1:
            raise UserError("--teacher-epochs and --teacher-patience must be at least 1.")
        from ..teacher import check_teacher_recipe, parse_teacher_epoch

        self.teacher_epoch = parse_teacher_epoch(self.teacher_epoch)
        check_teacher_recipe(self.teacher_recipe, self.teacher_lr)
        if self.teacher_arch is not None:
            from ..models import MODELS as _MODELS

            self.teacher_arch = _MODELS.canonical(self.teacher_arch)
        if self.image_init is not None:
            if self.image_init not in IMAGE_INITS:
                raise UserError(f"Unknown image init '{self.image_init}'. Known: {', '.join(IMAGE_INITS)}.")
            if not LEARN.get(self.learn).images:
                raise UserError(f"--image-init {self.image_init} needs learned images: add --learn images or --learn images+labels.")
        if self.arch is not None:
            self.arch = MODELS.canonical(self.arch)
        from ..protocols import canonical_protocol
        from .augment import canonical_augment

        self.test_protocol = canonical_protocol(self.test_protocol)
        self.select_protocol = canonical_protocol(self.select_protocol)
        self.augment = canonical_augment(self.augment)
        from ..selectors import canonical_selector

        self.base_select = canonical_selector(self.base_select)
        if self.base_select != "random" and self.source is not None:
            raise UserError(f"--base-select {self.base_select} chooses among the target's training images; drop it or --source.")

    # The settings of --method implicit's students, with their flags (a strategy with protocol-trained students).
    STUDENT_FLAGS = {"students": "--students", "views": "--views", "cg_iters": "--cg-iters", "damping": "--damping",
                     "follow_epochs": "--follow-epochs", "student_epochs": "--student-epochs", "refresh_every": "--refresh-every"}

    def _validate_persistent(self) -> None:
        """Students trained the test's way (``persistent == "protocol"``) need a fixed-epoch test and selection; their
        settings mean nothing to another method."""
        from ..protocols import canonical_protocol, get_protocol
        from .strategies import STRATEGIES

        defaults = {f.name: f.default for f in dataclasses.fields(DistillConfig)}
        if STRATEGIES.get(self.method).persistent != "protocol":
            for name, flag in self.STUDENT_FLAGS.items():
                if getattr(self, name) != defaults[name]:
                    raise UserError(f"{flag} sets the students of --method implicit (--method {self.method} has a persistent model of its own).")
            return
        for name in ("students", "views", "cg_iters", "follow_epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "follow_epochs" else 1):
                raise UserError(f"{self.STUDENT_FLAGS[name]} must be a {'non-negative' if name == 'follow_epochs' else 'positive'} integer, got {v!r}.")
        for name, least in (("student_epochs", 1), ("refresh_every", 0)):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < least):
                raise UserError(f"{self.STUDENT_FLAGS[name]} must be a " + ("positive integer" if least else "non-negative integer (0: never)")
                                + f", got {v!r}.")
        if not (isinstance(self.damping, (int, float)) and self.damping >= 0):
            raise UserError(f"--damping must be a number of at least 0, got {self.damping!r}.")
        test = get_protocol(canonical_protocol(self.test_protocol))
        if test.epochs is None:
            raise UserError(f"--method {self.method} trains its students the way the test trains models: give a fixed-epoch "
                            "--test-protocol (dc, dc-dsa).")
        if get_protocol(canonical_protocol(self.select_protocol)).epochs is None:
            raise UserError(f"--method {self.method}: label selection's paper score trains models T steps, a count its "
                            f"students never have; give --select-protocol {test.name} (or dc).")
        from ..models import MODELS
        from .learned import LEARN

        if self.augment not in (None, "none"):
            raise UserError(f"--method {self.method}'s students see the views of --test-protocol {test.name} already: drop --augment.")
        if LEARN.get(LEARN.canonical(self.learn)).images:
            raise UserError(f"--method {self.method} learns labels only (--learn labels).")
        if self.inner_batch is not None and self.inner_batch != self.base:
            raise UserError(f"--method {self.method} takes every base image in every step: --inner-batch {self.base} (or leave it out).")
        if self.arch is not None and test.arch is not None and MODELS.canonical(self.arch) != test.arch:
            raise UserError(f"--method {self.method}'s students are the test's models: --arch {test.arch} (the arch of "
                            f"--test-protocol {test.name}), not {self.arch}.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DistillConfig:
        """A stored configuration (:func:`stored_settings`)."""
        return from_dict(cls, stored_settings(d), tuples=("split",))


def stored_settings(d: dict) -> dict:
    """A stored configuration's settings, with the values its run had for settings added since: one written before
    ``start_candidate`` existed had none ("off"); students of one written before ``refresh_every`` existed, or of one that
    wrote None for "never" (session 33, before the method had a default), were never refreshed (0)."""
    from .strategies import STRATEGIES

    d = {"start_candidate": "off", **d}
    if d.get("refresh_every") is None and "method" in d and STRATEGIES.get(STRATEGIES.canonical(d["method"])).persistent == "protocol":
        d["refresh_every"] = 0
    return d


