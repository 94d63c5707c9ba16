"""The tables as data: one module per family (the paper's) or per table (ours, e.g. ``flexibility``);
each registers its specs on import. Every module here is imported, so adding a table is one new
file and nothing else edited (modules whose names start with ``_`` are helpers)."""
from ...registry import import_plugins

import_plugins(__name__, __path__)
