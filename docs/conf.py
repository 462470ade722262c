"""Sphinx configuration for the jinit documentation (Markdown pages through MyST).

Build: ``make docs`` (or ``python -m sphinx -W --keep-going -b html docs docs/_build/html``).
"""

from __future__ import annotations

import os
import sys

DOCS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(DOCS, "_ext"))
sys.path.insert(0, os.path.dirname(DOCS))  # the repository root: document this checkout

import jinit  # noqa: E402

project = "jinit"
author = "the jinit authors"
copyright = "the jinit authors, Apache-2.0"  # noqa: A001
release = jinit.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "jinit_api",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]

# --- Markdown ------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3

# --- API reference from docstrings (Google style) --------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_inherit_docstrings = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True
napoleon_custom_sections = [("See Also", "params_style"), "References"]

# --- HTML --------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"jinit {release}"
html_static_path = ["_static"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": True,
}
pygments_style = "friendly"
pygments_dark_style = "monokai"
