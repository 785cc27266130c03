"""The verify report: one table per implementation, the failures, a one-line verdict, JSON."""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from ..interface import STAGES
from .runner import CaseResult
from .tolerances import STAGE_NAMES


@dataclass
class ImplementationReport:
    """Everything checked for one implementation."""

    name: str
    spec: str
    version: str
    present: dict[str, tuple[str, ...]]
    results: list[CaseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every counted check passed (and at least one ran)."""
        return bool(self.results) and all(r.ok or not r.counted for r in self.results)

    def missing(self) -> dict[str, tuple[str, ...]]:
        """Interface functions the implementation lacks, by stage."""
        out = {}
        for stage, names in STAGES.items():
            lacking = tuple(n for n in names if n not in self.present.get(stage, ()))
            if lacking:
                out[stage] = lacking
        return out


#: Tiers in report order; each has its own rows.
TIERS = ("golden", "fresh", "statistical", "law", "contract")


def _tier(result: CaseResult) -> str:
    return "law" if result.kind == "law" and result.tier != "fresh" else result.tier


def _fmt_ratio(group: list[CaseResult]) -> str:
    ratios = [r.ratio for r in group if not math.isnan(r.ratio) and r.counted]
    if not ratios:
        return "-"
    worst = max(ratios)
    return "inf" if math.isinf(worst) else f"{worst:.2g}"


def _rows(report: ImplementationReport) -> list[tuple[str, ...]]:
    """One row per stage, tier and dtype: passed, the worst error in units of its
    tolerance (at most 1 passes; for statistical checks z over its bound) and the case
    that had it (the first counted failure when there is one)."""
    rows: list[tuple[str, ...]] = []
    dtypes = sorted({r.dtype for r in report.results})
    for stage in STAGE_NAMES:
        for tier in TIERS:
            for dtype in dtypes:
                group = [
                    r
                    for r in report.results
                    if r.stage == stage and r.dtype == dtype and _tier(r) == tier
                ]
                if not group:
                    continue
                counted = [r for r in group if r.counted]
                passed = sum(r.ok for r in counted)
                failing = [r for r in counted if not r.ok]
                rated = [r for r in counted if not math.isnan(r.ratio)]
                worst = (
                    failing[0]
                    if failing
                    else max(rated, key=lambda r: r.ratio)
                    if rated
                    else counted[0]
                    if counted
                    else group[0]
                )
                pending = len(group) - len(counted)
                rows.append(
                    (
                        stage,
                        tier,
                        dtype,
                        f"{passed}/{len(counted)}" + (f" (+{pending} pending)" if pending else ""),
                        _fmt_ratio(group),
                        worst.name,
                    )
                )
    return rows


def render(report: ImplementationReport, *, width: int = 100) -> str:
    """The table of one implementation, its absent stages and its failures."""
    header = ("stage", "tier", "dtype", "passed", "err/tol", "worst case")
    rows = [header, *_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [f"{report.name} (version {report.version}; {report.spec})"]
    for i, row in enumerate(rows):
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    for stage, names in report.missing().items():
        state = "absent" if stage not in report.present else "partly absent"
        lines.append(f"  {stage} {state}: {', '.join(names)} not provided")
    lines.extend(f"  note: {n}" for n in report.notes)
    failures = [r for r in report.results if not r.ok and r.counted]
    pending = [r for r in report.results if not r.ok and not r.counted]
    for label, group, title in (
        ("FAIL", failures, "failures"),
        ("PENDING", pending, "pending contract entries, not counted"),
    ):
        if group:
            lines.append(f"  {title} ({len(group)}):")
        for r in group:
            reason = r.reason.replace("\n", "\n      ")
            lines.append(f"  {label} [{r.stage} {r.dtype}] {r.name}: {reason}")
    return "\n".join(lines)


def verdict(reports: list[ImplementationReport]) -> str:
    """One line: PASS or FAIL, with the failing implementations and stages."""
    total = sum(x.counted for r in reports for x in r.results)
    bad = [r for r in reports if not r.passed]
    if not bad:
        names = ", ".join(r.name for r in reports)
        pending = sum(not x.counted for r in reports for x in r.results)
        extra = f"; {pending} pending contract entries not counted" if pending else ""
        return f"verdict: PASS ({names}: all {total} checks passed{extra})"
    parts = []
    for r in bad:
        stages = sorted(
            {x.stage for x in r.results if not x.ok and x.counted}, key=STAGE_NAMES.index
        )
        n_fail = sum(not x.ok and x.counted for x in r.results)
        where = f" in {', '.join(stages)}" if stages else " (nothing checked)"
        parts.append(f"{r.name}: {n_fail} failed{where}")
    return "verdict: FAIL (" + "; ".join(parts) + ")"


def as_json(
    reports: list[ImplementationReport], settings: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    """The machine-readable report."""
    return {
        **extra,
        "settings": settings,
        "passed": all(r.passed for r in reports),
        "verdict": verdict(reports),
        "implementations": [
            {
                "name": r.name,
                "spec": r.spec,
                "version": r.version,
                "passed": r.passed,
                "present": {k: list(v) for k, v in r.present.items()},
                "absent": {k: list(v) for k, v in r.missing().items()},
                "notes": r.notes,
                "results": [_jsonable(asdict(x)) for x in r.results],
            }
            for r in reports
        ],
    }


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


class Progress:
    """A progress bar on stderr for runs longer than a couple of seconds.

    tqdm when it imports, otherwise a one-line counter. It writes only when stderr is a
    terminal or ``BOGC_PROGRESS=1`` is set, and never when ``enabled`` is False.
    """

    def __init__(self, total: int, *, enabled: bool, delay: float = 2.0) -> None:
        self.total = total
        self.done = 0
        self.start = time.monotonic()
        self.delay = delay
        stream: TextIO = sys.stderr
        self.stream = stream
        self.active = enabled and (stream.isatty() or os.environ.get("BOGC_PROGRESS") == "1")
        self._bar: Any = None
        if self.active:
            try:
                from tqdm import tqdm

                self._bar = tqdm(total=total, delay=delay, file=stream, leave=False)
            except ImportError:
                self._bar = None

    def update(self, label: str) -> None:
        """One more check done; ``label`` names it."""
        self.done += 1
        if not self.active:
            return
        if self._bar is not None:
            self._bar.set_description(label[:40], refresh=False)
            self._bar.update(1)
        elif time.monotonic() - self.start >= self.delay:
            self.stream.write(f"\r[{self.done}/{self.total}] {label[:60]:<60}")
            self.stream.flush()

    def close(self) -> None:
        """Remove the bar."""
        if not self.active:
            return
        if self._bar is not None:
            self._bar.close()
        elif time.monotonic() - self.start >= self.delay:
            self.stream.write("\r" + " " * 80 + "\r")
            self.stream.flush()
