"""The tables as data: one module per family (the paper's) or per table (ours, e.g. ``flexibility``);
each registers its specs on import. Every module here is imported, so adding a table is one new
file and nothing else edited (modules whose names start with ``_`` are helpers)."""
import importlib
import pkgutil

for _mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")
