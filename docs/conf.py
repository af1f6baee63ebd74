"""Sphinx configuration of fastcavi's documentation.

Build from the repository root (warnings are errors):

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""
import os
import sys

# The package of this checkout, also when it is not installed (importing fastcavi compiles nothing).
sys.path.insert(0, os.path.abspath(".."))

import fastcavi  # noqa: E402

project = "fastcavi"
author = "fastcavi contributors"
copyright = "fastcavi contributors"
release = version = fastcavi.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
templates_path = ["_templates"]

# MyST: ``$...$`` maths, definition lists, and anchors for headings (links like page.md#section).
myst_enable_extensions = ["dollarmath", "deflist", "colon_fence"]
myst_heading_anchors = 3

# The API reference: autosummary writes one page per public name into api/generated (not committed).
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # the numpydoc sections say the types

# numpydoc renders the existing docstrings; it does not list class members itself (the templates do),
# and cross-references in type fields are not required to resolve.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()  # tests/test_docstrings.py validates the docstrings
nitpicky = False

try:
    import pydata_sphinx_theme  # noqa: F401
except ImportError:  # the docs extra installs it; without it, Sphinx's default theme
    html_theme = "alabaster"
else:
    html_theme = "pydata_sphinx_theme"
    html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_title = f"fastcavi {release}"
html_static_path = []
