"""The release version, in one place: the package, its metadata (pyproject) and checkpoints read it."""
__version__ = "0.2.0"
