"""Sphinx configuration of the bogc-ref documentation (built by ``docs/build.sh``)."""

from __future__ import annotations

from pathlib import Path

import bogc_ref

DOCS = Path(__file__).resolve().parent
MATHJAX = DOCS / "_build" / "_vendor" / "mathjax" / "tex-svg.js"
if not MATHJAX.is_file():
    raise RuntimeError(
        f"MathJax not found at {MATHJAX}: build with `bash docs/build.sh`, which fetches it "
        "from the npm registry (the built pages then render equations offline)."
    )

project = "bogc-ref"
author = "bogc-ref contributors"
copyright = "bogc-ref contributors"
release = bogc_ref.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx_rtd_theme",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md", ".gitignore", "build.sh"]

# MyST: $...$ and $$...$$ math, amsmath environments, ::: fences, anchors for ## and ###.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# Math: MathJax 3 with SVG output (no web fonts to load), served from the site itself.
# build.sh unpacks it into _build/_vendor/mathjax; html_static_path copies it to _static/.
html_static_path = ["_build/_vendor"]
mathjax_path = "mathjax/tex-svg.js"
mathjax3_config = {"svg": {"fontCache": "global"}}

# autodoc: the docstrings carry the formulas; their type hints name private aliases, so the
# signatures show argument names only and the docstrings state shapes and dtypes.
autodoc_typehints = "none"
autodoc_member_order = "bysource"
# Dataclass fields of the training integration are annotated with torch and typing classes
# that have no inventory here (the docs build offline).
nitpick_ignore = [
    ("py:class", "torch.nn.modules.linear.Linear"),
    ("py:class", "collections.abc.Sequence"),
]
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "sphinx_rtd_theme"
html_theme_options = {"navigation_depth": 3, "collapse_navigation": False}
html_title = f"bogc-ref {release}"
html_show_sourcelink = False
