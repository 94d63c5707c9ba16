"""Registries and plugin discovery: a package's extension is one new module, found without editing anything."""
from __future__ import annotations

import sys

import pytest

from labeldistill.errors import UserError
from labeldistill.registry import Registry, import_plugins


def test_registry_names_aliases_and_refusals():
    r: Registry[int] = Registry("thing")
    r.register("one", aliases=("uno",))(1)
    r.register("two")(2)
    assert r.names() == ["one", "two"] and list(r) == ["one", "two"]
    assert r.get("uno") == 1 and r.canonical("uno") == "one" and "uno" in r and "three" not in r
    with pytest.raises(ValueError, match="duplicate thing name 'uno'"):
        r.register("uno")(3)
    with pytest.raises(UserError) as err:
        r.get("three")
    assert str(err.value) == "Unknown thing 'three'. Known: one, two (aliases: uno)."
    other: Registry[int] = Registry("method", others="or dd (its own trainer)")
    other.register("ridge")(1)
    with pytest.raises(UserError) as err:
        other.canonical("dd")
    assert str(err.value) == "Unknown method 'dd'. Known: ridge; or dd (its own trainer)."


def test_import_plugins_imports_each_public_module_once_and_skips_helpers(tmp_path, monkeypatch):
    """A fresh package on disk: its public modules register themselves, ``_`` modules are left alone."""
    pkg = tmp_path / "plugpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from labeldistill.registry import Registry, import_plugins\n"
        "THINGS = Registry('thing')\n"
        "import_plugins(__name__, __path__)\n")
    for name in ("beta", "alpha"):
        (pkg / f"{name}.py").write_text(f"from . import THINGS\nTHINGS.register({name!r})({name!r})\n")
    (pkg / "_helper.py").write_text("raise RuntimeError('a helper is not a plugin')\n")
    (pkg / "notes.txt").write_text("not a module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import plugpkg  # type: ignore[import-not-found]

        assert plugpkg.THINGS.names() == ["alpha", "beta"]
        assert "plugpkg._helper" not in sys.modules
        import_plugins("plugpkg", plugpkg.__path__)  # again: modules are imported once, no duplicate registration
        assert plugpkg.THINGS.names() == ["alpha", "beta"]
    finally:
        for name in [m for m in sys.modules if m == "plugpkg" or m.startswith("plugpkg.")]:
            del sys.modules[name]


@pytest.mark.parametrize("listing, expected", [
    ("labeldistill.models:list_models", {"alexnet", "convnet3", "lenet", "resnet14"}),
    ("labeldistill.distill.strategies:list_methods", {"second-order", "ridge", "lookahead", "implicit"}),
    ("labeldistill.protocols:list_protocols", {"paper", "dc", "dc-dsa", "qin2024"}),
    ("labeldistill.interop:list_formats", {"labeldistill", "ddranking"}),
    ("labeldistill.experiments.executors:list_executors", {"local", "ray"}),
])
def test_each_extension_package_finds_its_modules(listing, expected):
    """The packages that discover their plugins still list every built-in one."""
    import importlib

    module, fn = listing.split(":")
    assert expected <= set(getattr(importlib.import_module(module), fn)())
