"""An evaluation protocol as data: how fresh models are trained on a distilled set and tested."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..engine.augment import DSAParams
from ..engine.recipe import TrainRecipe
from ..errors import UserError
from ..registry import Registry


@dataclass(frozen=True)
class Protocol:
    """How a distilled (or baseline) set is judged.

    Args:
        name, description: for the registry and the records.
        optimizer, lr, momentum, weight_decay: the fresh models' optimiser (``lr=None``: the
            set's own recipe lr, the paper's 1e-3).
        epochs: None: T random minibatches, T from the set (the paper's); else a fixed number
            of passes of shuffled minibatches.
        batch_size: minibatch size, at most N (None: the set's own, the paper's rule by N).
        lr_decay_at: fractions of ``epochs`` at which the lr is multiplied by ``lr_decay_factor``.
        reset_momentum_at_decay: the field's code builds a new SGD optimiser at the decay.
        augmentation: DSA parameters (None: no augmentation).
        flip_digits: whether DSA flips one-channel (digit / character) images; never in the
            field's evaluations of digits (a flipped 2 is no 2).
        zca_eps: ZCA whitening of colour images (fitted on the target's training split) with
            this eps; None: none. One-channel (digit) datasets are never whitened.
        models: fresh models per evaluation (mean and std over them); at least 5.
        arch: the architecture the protocol tests with (None: the set's own / the dataset's default).
        search_steps: baselines choose T on the validation split (the paper's); else a
            protocol's fixed epochs are used as they are.
        test_check_every: also test the models during training, after 0-based epochs ``every``, ``2 * every``, ...
            (``every + 1`` epochs trained, as Qin et al.'s loop counts) and at the end, and report each model's best
            check beside its final accuracy: their reporting, a choice made on the test set, so never the protocol's
            number. None: no checks.
    """

    name: str
    description: str
    optimizer: str = "adam"
    lr: float | None = None
    momentum: float = 0.0
    weight_decay: float = 0.0
    epochs: int | None = None
    batch_size: int | None = None
    lr_decay_at: tuple[float, ...] = ()
    lr_decay_factor: float = 0.1
    reset_momentum_at_decay: bool = False
    augmentation: DSAParams | None = None
    flip_digits: bool = False
    zca_eps: float | None = None
    models: int = 20
    arch: str | None = None
    search_steps: bool = True
    label_loss: str = "soft-cross-entropy"
    references: tuple[str, ...] = field(default=())
    test_check_every: int | None = None

    def __post_init__(self) -> None:
        if self.models < 5:
            raise UserError(f"protocol {self.name}: at least 5 models (got {self.models})")
        if self.test_check_every is not None and (self.epochs is None or self.test_check_every < 1):
            raise UserError(f"protocol {self.name}: test checks need fixed epochs and a positive interval")

    @property
    def is_paper(self) -> bool:
        """Exactly the paper's training (the engine's default path, every number as before)."""
        return (self.optimizer == "adam" and self.epochs is None and self.augmentation is None and self.zca_eps is None
                and self.weight_decay == 0 and not self.lr_decay_at and self.lr is None and self.batch_size is None)

    @property
    def needs_kornia(self) -> bool:
        return self.zca_eps is not None

    def uses_zca(self, channels: int) -> bool:
        return self.zca_eps is not None and channels == 3

    def augmentation_for(self, channels: int) -> DSAParams | None:
        if self.augmentation is None:
            return None
        return self.augmentation.for_channels(channels, flip_digits=self.flip_digits)

    def decay_epochs(self) -> tuple[int, ...]:
        """The epochs (0-based) from which each decay applies: ``int(fraction * epochs)``."""
        return tuple(int(f * self.epochs) for f in self.lr_decay_at) if self.epochs else ()

    def recipe(self, channels: int, *, lr: float) -> TrainRecipe:
        """The engine's :class:`TrainRecipe` for images with ``channels`` channels."""
        return TrainRecipe(optimizer=self.optimizer, lr=self.lr if self.lr is not None else lr, momentum=self.momentum,
                           weight_decay=self.weight_decay, epochs=self.epochs, lr_decay_epochs=self.decay_epochs(),
                           lr_decay_factor=self.lr_decay_factor, reset_momentum_at_decay=self.reset_momentum_at_decay,
                           augmentation=self.augmentation_for(channels))

    def check_epochs(self) -> tuple[int, ...]:
        """How many epochs the models have trained at each test check on the way (:attr:`test_check_every`), the end
        of training included; empty without checks."""
        if self.test_check_every is None or self.epochs is None:
            return ()
        every = self.test_check_every
        return tuple(e + 1 for e in range(every, self.epochs, every)) + (self.epochs,)

    def check_steps(self, steps_per_epoch: int) -> tuple[int, ...]:
        """The training steps after which those checks are made."""
        return tuple(e * steps_per_epoch for e in self.check_epochs())

    def batch_for(self, n: int, default: int) -> int:
        return min(self.batch_size, n) if self.batch_size is not None else min(default, n)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["augmentation"] = None if self.augmentation is None else self.augmentation.to_dict()
        d["lr_decay_at"] = list(self.lr_decay_at)
        d["references"] = list(self.references)
        if self.test_check_every is None:  # absent, not null: the ledger keys of protocols without checks stay as they were
            del d["test_check_every"]
        return d


PROTOCOLS: Registry[Protocol] = Registry("evaluation protocol")


def register_protocol(p: Protocol, aliases: tuple[str, ...] = ()) -> Protocol:
    return PROTOCOLS.register(p.name, aliases=aliases)(p)


def get_protocol(name: str | Protocol | None) -> Protocol:
    """A registered protocol by name (None: ``paper``); a one-line UserError names the known ones."""
    if isinstance(name, Protocol):
        return name
    return PROTOCOLS.get("paper" if name is None else str(name))


def list_protocols() -> list[str]:
    return PROTOCOLS.names()


def canonical_protocol(name: str | None) -> str:
    return PROTOCOLS.canonical("paper" if name is None else str(name))
