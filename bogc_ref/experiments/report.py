"""Output helpers of the experiments: progress bars, JSON, markdown tables, paired tests."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def progress(items: Sequence[T], desc: str, show: bool = True) -> Iterator[T]:
    """Iterate with a tqdm bar (to stderr) when ``show`` and tqdm is installed."""
    if show:
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            yield from tqdm(items, desc=desc, leave=True)
            return
    yield from items


def save_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON (NaN written as null)."""
    path.write_text(json.dumps(_clean(data), indent=2) + "\n")


def _clean(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        return _clean(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_markdown(
    path: Path,
    title: str,
    blocks: Sequence[tuple[str, Sequence[str], Sequence[Sequence[str]]]],
    notes: Sequence[str] = (),
) -> None:
    """Write ``# title`` then, per block, ``## subtitle`` and its table, then the notes."""
    parts = [f"# {title}", ""]
    for subtitle, header, rows in blocks:
        parts += [f"## {subtitle}", "", markdown_table(header, rows), ""]
    parts += [*notes]
    path.write_text("\n".join(parts).rstrip() + "\n")


def paired_test(a: Sequence[float], b: Sequence[float]) -> dict[str, float | None]:
    """Paired t-test of a − b across seeds (scipy.stats.ttest_rel): mean difference and p.

    p is None when it is undefined (fewer than 2 pairs, or every difference equal).
    """
    from scipy import stats

    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    result: dict[str, float | None] = {"mean_diff": float(diff.mean()) if diff.size else None}
    if diff.size < 2 or np.allclose(diff, diff[0]):
        result["p"] = None
        return result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result["p"] = float(stats.ttest_rel(a, b).pvalue)
    return result


def t_interval(values: Sequence[float], level: float = 0.95) -> dict[str, float | None]:
    """Mean and two-sided t-interval of the mean over seeds (scipy.stats.t).

    ``mean ± t_{(1+level)/2, n-1} · s / √n`` with s the sample standard deviation (ddof = 1);
    the bounds are None with fewer than 2 values.
    """
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean()) if x.size else float("nan")
    if x.size < 2:
        return {"mean": mean, "low": None, "high": None, "half_width": None}
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return {"mean": mean, "low": mean - half, "high": mean + half, "half_width": half}
