"""``bogc-ref verify`` and ``bogc-ref vectors``.

``bogc-ref verify`` with no arguments checks every backend available here (NumPy always)
in float32 and float64 against the golden vectors and prints one table per
implementation and a one-line verdict. Exit code: 0 when every check passed, 1 on a
conformance failure, 2 on a usage error (with a one-line message on stderr).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import bogc_ref

from . import golden
from .adapter import Adapter
from .contract import run_contract
from .fresh import run_fresh
from .loading import UsageError, available_backends, open_candidate
from .report import ImplementationReport, Progress, as_json, render, verdict
from .runner import CaseResult, check_golden, check_monte_carlo
from .tolerances import describe

DTYPES = ("float32", "float64")
BACKEND_CHOICES = ("numpy", "torch", "cupy", "all")


def register(subparsers: Any) -> None:
    """Add the ``verify`` and ``vectors`` sub-commands."""
    verify = subparsers.add_parser(
        "verify",
        help="check implementations against the reference (golden vectors, properties)",
        description=(
            "Check BOGC implementations against the reference. With no arguments, every "
            "backend available on this machine is checked in float32 and float64."
        ),
    )
    which = verify.add_mutually_exclusive_group()
    which.add_argument(
        "--backend",
        metavar="{numpy,torch,cupy,all}",
        help="a bundled backend, or all of those available (default: all)",
    )
    which.add_argument(
        "--impl",
        metavar="MODULE:ATTR|FILE.py:ATTR",
        help="any implementation: an importable module path or a Python file, and an attribute",
    )
    verify.add_argument("--dtype", choices=DTYPES, help="check one dtype (default: both)")
    verify.add_argument(
        "--device", choices=("cpu", "cuda"), help="device for the backends (default: theirs)"
    )
    verify.add_argument(
        "--properties",
        action="store_true",
        help="also run the property checks (laws) on generated inputs; needs hypothesis",
    )
    verify.add_argument(
        "--max-examples",
        type=int,
        default=50,
        metavar="N",
        help="generated examples per law with --properties (default 50)",
    )
    verify.add_argument(
        "--case-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help=(
            "time limit of one candidate call (default 60; 0: none). A call past it fails "
            "its case; its thread cannot be killed and keeps running in the background"
        ),
    )
    verify.add_argument("--json", metavar="REPORT.json", help="also write a JSON report")
    verify.add_argument("--quiet", action="store_true", help="print only the verdict")
    verify.set_defaults(func=run_verify)

    vectors = subparsers.add_parser(
        "vectors",
        help="regenerate or check the packaged golden vectors",
        description="Golden vectors: the reference's float64 outputs on the named cases.",
    )
    action = vectors.add_mutually_exclusive_group(required=True)
    action.add_argument("--regenerate", action="store_true", help="rewrite them from the reference")
    action.add_argument("--check", action="store_true", help="report numbers that would change")
    vectors.add_argument(
        "--dir", type=Path, default=golden.GOLDEN_DIR, help="folder (default: the package's)"
    )
    vectors.set_defaults(func=run_vectors)


def _usage(message: str) -> int:
    print(f"bogc-ref verify: error: {message}", file=sys.stderr)
    return 2


def _candidates(args: argparse.Namespace) -> tuple[list[Adapter], list[str]]:
    timeout = args.case_timeout if args.case_timeout and args.case_timeout > 0 else None
    notes: list[str] = []
    if args.impl is not None:
        return [open_candidate(f"impl:{args.impl}", timeout)], notes
    backend = args.backend or "all"
    if backend not in BACKEND_CHOICES:
        raise UsageError(
            f"--backend: unknown backend {backend!r} (choose from {', '.join(BACKEND_CHOICES)})"
        )
    device = f"@{args.device}" if args.device else ""
    if backend != "all":
        return [open_candidate(f"backend:{backend}{device}", timeout)], notes
    adapters = []
    for name in available_backends():
        if name == "numpy" and args.device == "cuda":
            notes.append("numpy skipped: it runs on the cpu only")
            continue
        try:
            adapters.append(open_candidate(f"backend:{name}{device}", timeout))
        except UsageError as exc:
            notes.append(f"{name} skipped: {exc}")
    if not adapters:
        raise UsageError("no backend is available for --device " + str(args.device))
    return adapters, notes


def run_verify(args: argparse.Namespace) -> int:
    """The ``verify`` sub-command; returns the exit code."""
    if args.max_examples < 1:
        return _usage(f"--max-examples: must be >= 1, got {args.max_examples}")
    if args.properties:
        try:
            import hypothesis  # noqa: F401
        except ImportError:
            return _usage("--properties needs the hypothesis package (pip install hypothesis)")
    try:
        adapters, notes = _candidates(args)
    except UsageError as exc:
        return _usage(str(exc))
    dtypes = [args.dtype] if args.dtype else list(DTYPES)
    manifest, cases = golden.stored()

    plans = []
    for adapter in adapters:
        present = adapter.stages()
        if not present:
            return _usage(f"{adapter.name} provides none of the interface functions")
        provided = {f for names in present.values() for f in names}
        todo = [(c, d) for c in cases if c.function in provided for d in dtypes if d in c.dtypes]
        plans.append((adapter, present, todo))

    total = sum(len(todo) + len(dtypes) for _, _, todo in plans)
    if args.properties:
        from .properties import applicable_laws

        total += sum(len(applicable_laws(a)) * len(dtypes) for a, _, _ in plans)
    progress = Progress(total, enabled=not args.quiet)
    started = time.perf_counter()
    reports = []
    try:
        for adapter, present, todo in plans:
            report = ImplementationReport(adapter.name, adapter.spec, adapter.version, present)
            report.results.extend(_golden_results(adapter, todo, progress))
            for dtype in dtypes:  # the fresh and contract tiers (11b)
                report.results.extend(run_fresh(adapter, dtype))
                report.results.extend(run_contract(adapter, dtype))
            if "softmax_head_moments" in present.get("stage1", ()):
                mc_case = golden.load_case("softmax_mc_eps")
                for dtype in dtypes:
                    report.results.append(check_monte_carlo(adapter, mc_case, dtype))
                    progress.update(f"{adapter.name} softmax_mc_own_sampler {dtype}")
            if args.properties:
                from .properties import run_laws

                for dtype in dtypes:
                    report.results.extend(
                        run_laws(adapter, dtype, args.max_examples, progress.update)
                    )
            reports.append(report)
    finally:
        progress.close()
    if notes and reports:
        reports[0].notes.extend(notes)
    elapsed = time.perf_counter() - started

    line = verdict(reports)
    if not args.quiet:
        tolerance_line = (
            "tolerances: |c - r| <= atol + rtol|r|, rtol = max(floor, c*eps*kappa + R), "
            "R = gamma(n)*cond of the reductions; floors float64 1e-12 (stage1 1e-11), "
            "float32 16 eps (stage1 32 eps); err/tol = error in units of the tolerance; "
            "rtol of each case in --json"
        )
        print(
            f"bogc-ref verify: spec {bogc_ref.SPEC_VERSION}, suite {golden.SUITE_VERSION}, "
            f"dtypes {', '.join(dtypes)}, {elapsed:.1f} s"
        )
        print(tolerance_line)
        for report in reports:
            print()
            print(render(report))
        print()
    print(line)
    if args.json:
        settings = {
            "backend": args.backend,
            "impl": args.impl,
            "dtypes": dtypes,
            "device": args.device,
            "properties": args.properties,
            "max_examples": args.max_examples,
            "case_timeout": args.case_timeout,
        }
        extra = {
            "suite_version": golden.SUITE_VERSION,
            "spec_version": bogc_ref.SPEC_VERSION,
            "golden_spec_version": manifest.get("spec_version"),
            "reference_version": bogc_ref.__version__,
            "tolerances": describe(),
            "platform": {
                "python": platform.python_version(),
                "numpy": np.__version__,
                "machine": platform.machine(),
            },
            "seconds": elapsed,
        }
        Path(args.json).write_text(
            json.dumps(as_json(reports, settings, extra), indent=1) + "\n", encoding="utf-8"
        )
    return 0 if all(r.passed for r in reports) else 1


def _golden_results(
    adapter: Adapter, todo: list[tuple[golden.GoldenCase, str]], progress: Progress
) -> list[CaseResult]:
    out = []
    for case, dtype in todo:
        out.append(check_golden(adapter, case, dtype))
        progress.update(f"{adapter.name} {case.name} {dtype}")
    return out


def run_vectors(args: argparse.Namespace) -> int:
    """The ``vectors`` sub-command: ``--regenerate`` or ``--check``."""
    directory = Path(args.dir)
    if args.regenerate:
        cases = golden.generate()
        golden.write(cases, directory)
        size = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
        print(f"wrote {len(cases)} cases to {directory} ({size / 1e6:.2f} MB)")
        return 0
    if not (directory / golden.MANIFEST).is_file():
        print(f"bogc-ref vectors: error: no {golden.MANIFEST} in {directory}", file=sys.stderr)
        return 2
    drift = golden.drift_report(directory)
    if drift.rounding:
        print(f"platform rounding within the tolerance policy ({len(drift.rounding)} arrays):")
        for line in drift.rounding:
            print(f"  {line}")
    if drift.problems:
        print(f"golden vectors drift ({len(drift.problems)} differences):")
        for p in drift.problems:
            print(f"  {p}")
        return 1
    print(f"golden vectors in {directory}: no drift (spec_version {bogc_ref.SPEC_VERSION})")
    return 0
