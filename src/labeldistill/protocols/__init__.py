"""Evaluation protocols as registered data: ``paper`` (the default), ``dc``, ``dc-dsa`` and ``qin2024``.

A :class:`Protocol` says how fresh models are trained on a distilled (or baseline) set and how
many: the paper's Adam on T random minibatches, or the DatasetCondensation / DSA / MTT way
(ConvNet-3, SGD with momentum and weight decay, fixed epochs, DSA augmentation, ZCA whitening
of colour datasets). ``labeldistill evaluate --protocol``, ``baseline --protocol`` and
``distill --test-protocol`` take a name; :func:`list_protocols` lists them.
Adding one is one :func:`register_protocol` call in :mod:`.entries` (or in a new module here).
"""
from ..registry import import_plugins
from ._base import PROTOCOLS, Protocol, canonical_protocol, get_protocol, list_protocols, register_protocol
from .zca import ZCA, fit_zca, require_kornia
from .evaluate import evaluate_protocol, target_zca, whiten

import_plugins(__name__, __path__)  # fill the registry

__all__ = ["PROTOCOLS", "Protocol", "ZCA", "canonical_protocol", "fit_zca", "get_protocol", "list_protocols", "register_protocol",
           "require_kornia", "evaluate_protocol", "target_zca", "whiten"]
