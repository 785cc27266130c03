"""The verify report: one table per implementation, the failures, a one-line verdict, JSON.

Results are grouped by tier (``golden``, ``statistical``, ``laws``, and any other tier a
check declares), then by stage and dtype. Each row names the case with the largest error
relative to its tolerance, so the number and the name always belong together; errors are
shown as that ratio (at most 1 passes), never as raw magnitudes whose scale depends on the
case. A statistical row shows its z-score over its own bound; a law row shows how many laws
and examples ran. Failures are listed one per line, labelled with their tier; with more than
:data:`MAX_DETAILED` of them only the first of each tier is shown in full, the others in the
JSON report.
"""

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

#: Tiers in the order they are shown; unknown tiers follow.
TIER_ORDER = ("load", "golden", "fresh", "statistical", "contract", "laws")
#: With more failures than this, each is one line and the details go to the JSON report.
MAX_DETAILED = 10


def tier_of(result: CaseResult) -> str:
    """The tier of a result: its ``tier`` (a law row left at the default is a law)."""
    if result.kind == "law" and result.tier in ("", "golden"):
        return "laws"
    return result.tier or result.kind


def _order(values: set[str], known: tuple[str, ...]) -> list[str]:
    return [v for v in known if v in values] + sorted(values - set(known))


def error_ratio(result: CaseResult) -> float:
    """Error over tolerance (at most 1 passes); inf for a failure without numbers."""
    ratio = getattr(result, "ratio", float("nan"))
    if isinstance(ratio, float) and not math.isnan(ratio):
        return ratio
    if result.rtol and math.isfinite(result.rel_err) and result.rtol > 0:
        return result.rel_err / result.rtol
    return math.inf if not result.ok else math.nan


@dataclass
class ImplementationReport:
    """Everything checked for one implementation."""

    name: str
    spec: str
    version: str
    present: dict[str, tuple[str, ...]]
    results: list[CaseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The candidate's captured stdout, stderr and warnings (``OutputLog.summary()``).
    candidate_output: dict[str, Any] = field(default_factory=dict)
    #: Why each worker process was lost (each also failed the case it was running).
    worker_failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every check passed (and at least one ran)."""
        return bool(self.results) and all(r.ok for r in self.results)

    def missing(self) -> dict[str, tuple[str, ...]]:
        """Interface functions the implementation lacks, by stage."""
        out = {}
        for stage, names in STAGES.items():
            lacking = tuple(n for n in names if n not in self.present.get(stage, ()))
            if lacking:
                out[stage] = lacking
        return out


def plain(x: float) -> str:
    """A number for the console: three significant digits, no NumPy repr."""
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{float(x):.3g}"


def _leading_int(text: str) -> int:
    head = text.split(" ", 1)[0]
    return int(head) if head.isdigit() else 0


def _measure(tier: str, group: list[CaseResult]) -> tuple[str, str]:
    """(what the group measured, the case it names) for one row."""
    if tier == "laws":
        failing = [r for r in group if not r.ok]
        examples = sum(_leading_int(r.bound) for r in group)
        return (f"{len(group)} laws, {examples} examples", failing[0].name if failing else "-")
    scored = [(error_ratio(r), r) for r in group]
    finite = [(x, r) for x, r in scored if not math.isnan(x)]
    if not finite:
        return ("-", group[0].name)
    ratio, worst = max(finite, key=lambda item: item[0])
    if ratio == 0:
        return ("0", "(all exact)")
    if tier == "statistical":
        return (f"z/bound {plain(ratio)}", worst.name)
    return (plain(ratio) if math.isfinite(ratio) else "failed", worst.name)


def _rows(report: ImplementationReport) -> list[tuple[str, ...]]:
    """One row per stage, tier and dtype: passed, the worst error in units of its
    tolerance (at most 1 passes; for statistical checks z over its bound) and the case
    that had it (the first failure when there is one)."""
    rows: list[tuple[str, ...]] = []
    dtypes = sorted({r.dtype for r in report.results})
    tiers = _order({tier_of(r) for r in report.results}, TIER_ORDER)
    stages = _order({r.stage for r in report.results}, STAGE_NAMES)
    for tier in tiers:
        for stage in stages:
            for dtype in dtypes:
                group = [
                    r
                    for r in report.results
                    if tier_of(r) == tier and r.stage == stage and r.dtype == dtype
                ]
                if group:
                    measured, worst = _measure(tier, group)
                    passed = f"{sum(r.ok for r in group)}/{len(group)}"
                    rows.append((tier, stage, dtype, passed, measured, worst))
    return rows


def _label(result: CaseResult) -> str:
    tier = tier_of(result)
    return "law" if tier == "laws" else tier


def _where(result: CaseResult) -> str:
    if tier_of(result) == "load":
        return "load"
    return f"[{result.stage} {result.dtype}] {result.name} ({_label(result)})"


def _indent(text: str) -> str:
    return text.replace("\n", "\n      ")


def failure_lines(report: ImplementationReport) -> list[str]:
    """``FAIL [stage dtype] name (tier): reason``, one per failure.

    With at most :data:`MAX_DETAILED` failures each is shown in full (reason and
    reproduction); with more, each is one line and only the first failure of each tier is
    shown in full after them (all of them are in full in the JSON report).
    """
    failures = [r for r in report.results if not r.ok]
    if not failures:
        return []
    lines = [f"  failures ({len(failures)}):"]
    if len(failures) <= MAX_DETAILED:
        return lines + [f"  FAIL {_where(r)}: {_indent(r.reason)}" for r in failures]
    for r in failures:
        first = r.reason.splitlines()[0][:200] if r.reason else ""
        lines.append(f"  FAIL {_where(r)}: {first}")
    firsts = {tier_of(r): r for r in reversed(failures)}
    lines.append("  the first failure of each tier in full (every one in the JSON report, --json):")
    for r in failures:
        if firsts.get(tier_of(r)) is r:
            lines.append(f"  FAIL {_where(r)}: {_indent(r.reason)}")
    return lines


def render(report: ImplementationReport) -> str:
    """The table of one implementation, its absent stages, its failures, its output."""
    header = ("tier", "stage", "dtype", "passed", "worst err/tol", "worst case")
    rows = [header, *_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [f"{report.name} (version {report.version}; {report.spec})"]
    if any(tier_of(r) == "load" for r in report.results):
        rows = []  # nothing ran: the failure line says why
    for i, row in enumerate(rows):
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    if report.present:
        for stage, names in report.missing().items():
            state = "absent" if stage not in report.present else "partly absent"
            lines.append(f"  {stage} {state}: {', '.join(names)} not provided")
    lines.extend(f"  note: {n}" for n in report.notes)
    if report.worker_failures and rows:
        lines.append(
            f"  worker processes lost: {len(report.worker_failures)} (each failed its case and "
            "was replaced)"
        )
    lines.extend(failure_lines(report))
    output = report.candidate_output
    if output:
        from .capture import console_summary

        lines.extend(f"  {line}" for line in console_summary(output))
    return "\n".join(lines)


def _stages_of(results: list[CaseResult]) -> list[str]:
    return _order({r.stage for r in results if not r.ok}, STAGE_NAMES)


def verdict(reports: list[ImplementationReport], skipped: tuple[str, ...] = ()) -> str:
    """One line: PASS or FAIL, with the failing implementations and stages."""
    total = sum(len(r.results) for r in reports)
    bad = [r for r in reports if not r.passed]
    if not bad:
        names = ", ".join(r.name for r in reports)
        extra = f"; tiers skipped: {', '.join(skipped)}" if skipped else ""
        return f"verdict: PASS ({names}: all {total} checks passed{extra})"
    parts = []
    for r in bad:
        if any(tier_of(x) == "load" for x in r.results):
            parts.append(f"{r.name}: could not be loaded")
            continue
        stages = _stages_of(r.results)
        n_fail = sum(not x.ok for x in r.results)
        where = f" in {', '.join(stages)}" if stages else " (nothing checked)"
        parts.append(f"{r.name}: {n_fail} failed{where}")
    return "verdict: FAIL (" + "; ".join(parts) + ")"


def as_json(
    reports: list[ImplementationReport],
    settings: dict[str, Any],
    extra: dict[str, Any],
    skipped: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The machine-readable report."""
    return {
        **extra,
        "settings": settings,
        "passed": all(r.passed for r in reports),
        "verdict": verdict(reports, skipped),
        "implementations": [
            {
                "name": r.name,
                "spec": r.spec,
                "version": r.version,
                "passed": r.passed,
                "present": {k: list(v) for k, v in r.present.items()},
                "absent": {k: list(v) for k, v in r.missing().items()},
                "notes": r.notes,
                "tiers": {
                    tier: {
                        "passed": sum(x.ok for x in r.results if tier_of(x) == tier),
                        "total": sum(tier_of(x) == tier for x in r.results),
                    }
                    for tier in _order({tier_of(x) for x in r.results}, TIER_ORDER)
                },
                "worker_failures": r.worker_failures,
                "candidate_output": r.candidate_output,
                "results": [_jsonable({**asdict(x), "tier": tier_of(x)}) for x in r.results],
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
