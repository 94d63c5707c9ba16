"""The package version, in a module of its own so that any part of the package (run provenance, the
CLI, reproduce's records) can read it without importing the package root; pyproject.toml reads it
from here too (one place to bump)."""

__version__ = "0.1.0"
