"""``bogc-ref verify`` and ``bogc-ref vectors``.

``bogc-ref verify`` with no arguments checks every backend available here (NumPy always)
in float32 and float64 against the golden vectors and prints one table per
implementation and a one-line verdict, always the last line it prints. Each candidate
runs in its own worker process (see :mod:`~bogc_ref.conformance.adapter`); the reference,
the expected values, the comparisons and the report stay in this process.

Exit code: 0 when every check ran and passed, 1 on a conformance failure (including a
candidate that cannot survive being loaded), 2 on a usage error (with a one-line message
on stderr, before any check runs), 3 when the checks ran but the ``--json`` report could
not be written (the verdict line says ``verdict: ERROR``), 130 when interrupted with Ctrl-C.

Every module of the harness a run needs is imported, and the golden vectors read, before
the first candidate is started, so a candidate cannot change them on disk before they are
read. Console output never fails on a candidate's text: characters the console cannot
encode are written as backslash escapes.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import math
import os
import platform
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import bogc_ref

from . import contract, fresh, golden, laws  # noqa: F401  (imported before any candidate)
from .adapter import FUNCTIONS, Adapter, close_all
from .errors import LoadFailure
from .loading import UsageError, available_backends, check_spec
from .reaper import Reaper
from .report import ImplementationReport, Progress, as_json, render, verdict
from .runner import CaseResult
from .runtime import default_memory_limit, format_bytes, parse_memory
from .tiers import TIER_NAMES, TIERS, Plan, Tier
from .tolerances import describe

DTYPES = ("float32", "float64")
BACKEND_CHOICES = ("numpy", "torch", "cupy", "all")
#: Default --max-examples with --properties.
DEFAULT_MAX_EXAMPLES = 50
#: Exit code after a Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130
#: Exit code when the checks ran but the --json report could not be written.
REPORT_NOT_WRITTEN = 3
#: --fresh-seed takes 0 <= N < this; the default is drawn at random from that range.
FRESH_SEED_LIMIT = 2**32
#: Environment variable giving the fresh seed when --fresh-seed is not given (the test
#: suite sets it, so that its runs draw the same inputs every time).
FRESH_SEED_VARIABLE = "BOGC_FRESH_SEED"


def register(subparsers: Any) -> None:
    """Add the ``verify`` and ``vectors`` sub-commands."""
    verify = subparsers.add_parser(
        "verify",
        help="check implementations against the reference (golden vectors, properties)",
        description=(
            "Check BOGC implementations against the reference. With no arguments, every "
            "backend available on this machine is checked in float32 and float64. Each "
            "candidate runs in its own process."
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
        "--device",
        choices=("cpu", "cuda"),
        help="device for the bundled backends (default: theirs); not with --impl",
    )
    verify.add_argument(
        "--properties",
        action="store_true",
        help="also run the property checks (laws) on generated inputs; needs hypothesis",
    )
    verify.add_argument(
        "--max-examples",
        type=int,
        metavar="N",
        help=f"generated examples per law, with --properties (default {DEFAULT_MAX_EXAMPLES})",
    )
    verify.add_argument(
        "--case-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help=(
            "time limit of one candidate call (default 60; 0: none). A call past it fails "
            "its case; the candidate's process is killed and replaced"
        ),
    )
    verify.add_argument(
        "--memory-limit",
        default="50%",
        metavar="SIZE",
        help=(
            "resident memory the candidate's process may use, e.g. 4G, 512M, 40%% of this "
            "machine, 0 for none (default 50%%). Past it the call fails and the process is "
            "replaced"
        ),
    )
    verify.add_argument(
        "--skip-tier",
        action="append",
        choices=TIER_NAMES,
        default=[],
        metavar="TIER",
        help=f"leave a tier of checks out of the run and the verdict ({', '.join(TIER_NAMES)}); "
        "repeatable",
    )
    verify.add_argument(
        "--fresh-seed",
        type=int,
        metavar="N",
        help=(
            "seed of the fresh tier's inputs and of the Monte Carlo sampler's seeds, 0 <= N < "
            "2**32 (default: a new random seed each run, printed in the report)"
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


@dataclass(frozen=True)
class Options:
    """The validated settings of one ``verify`` run."""

    dtypes: list[str]
    timeout: float | None
    memory_limit: int | None
    max_examples: int
    json_path: Path | None
    skipped: tuple[str, ...]
    fresh_seed: int


def _json_path(text: str | None) -> Path | None:
    """``--json`` made absolute now, so a candidate's ``os.chdir`` cannot move it."""
    if text is None:
        return None
    path = Path(text).expanduser().absolute()
    if path.is_dir():
        raise UsageError(f"--json: {text!r} is a folder; give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"--json: folder {str(path.parent)!r} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise UsageError(f"--json: folder {str(path.parent)!r} is not writable")
    existed = path.exists()
    try:  # opening it is the only test that holds for every file system and user
        with path.open("a"):
            pass
    except OSError as exc:
        raise UsageError(f"--json: cannot write {str(path)!r}: {exc.strerror or exc}") from None
    if not existed:
        path.unlink(missing_ok=True)
    return path


def validate(args: argparse.Namespace) -> Options:
    """Every check of the command line that needs no candidate; UsageError on the first."""
    if not (math.isfinite(args.case_timeout) and args.case_timeout >= 0):
        raise UsageError(
            f"--case-timeout: must be a number of seconds >= 0 (0: no limit), got "
            f"{args.case_timeout:g}"
        )
    if args.max_examples is not None:
        if not args.properties:
            raise UsageError("--max-examples: only applies with --properties")
        if args.max_examples < 1:
            raise UsageError(f"--max-examples: must be >= 1, got {args.max_examples}")
    if args.properties:
        try:
            from . import properties, strategies  # noqa: F401  (they import hypothesis)
        except ImportError:
            raise UsageError(
                "--properties needs the hypothesis package (pip install hypothesis)"
            ) from None
    if args.impl is not None and args.device is not None:
        raise UsageError(
            "--device: applies to the bundled backends (--backend); an --impl places its "
            "arrays itself, in its from_numpy"
        )
    try:
        memory = parse_memory(args.memory_limit)
    except ValueError as exc:
        raise UsageError(f"--memory-limit: {exc}") from None
    fresh_seed = _fresh_seed(args.fresh_seed)
    skipped = tuple(dict.fromkeys(args.skip_tier))
    running = [t.name for t in _tiers(skipped, args.properties)]
    if not running:
        raise UsageError(
            f"--skip-tier: every tier is skipped ({', '.join(skipped)}); nothing to run"
        )
    return Options(
        dtypes=[args.dtype] if args.dtype else list(DTYPES),
        timeout=args.case_timeout if args.case_timeout > 0 else None,
        memory_limit=memory,
        max_examples=args.max_examples or DEFAULT_MAX_EXAMPLES,
        json_path=_json_path(args.json),
        skipped=skipped,
        fresh_seed=fresh_seed,
    )


def _fresh_seed(given: int | None) -> int:
    """The run's fresh seed: ``--fresh-seed``, else :data:`FRESH_SEED_VARIABLE` from the
    environment (a test suite's or CI's reproducible default), else one drawn at random."""
    source = "--fresh-seed"
    if given is None and FRESH_SEED_VARIABLE in os.environ:
        source, text = FRESH_SEED_VARIABLE, os.environ[FRESH_SEED_VARIABLE]
        try:
            given = int(text)
        except ValueError:
            raise UsageError(f"{source}: expected an integer, got {text!r}") from None
    if given is None:
        return secrets.randbelow(FRESH_SEED_LIMIT)
    if not 0 <= given < FRESH_SEED_LIMIT:
        raise UsageError(f"{source}: must be in 0..{FRESH_SEED_LIMIT - 1}, got {given}")
    return given


def _specs(args: argparse.Namespace) -> tuple[list[tuple[str, str]], list[str]]:
    """``(spec, display name)`` of each candidate, and notes on backends left out."""
    notes: list[str] = []
    if args.impl is not None:
        return [(check_spec(f"impl:{args.impl}"), args.impl)], notes
    backend = args.backend or "all"
    if backend not in BACKEND_CHOICES:
        raise UsageError(
            f"--backend: unknown backend {backend!r} (choose from {', '.join(BACKEND_CHOICES)})"
        )
    device = f"@{args.device}" if args.device else ""
    if backend != "all":
        return [(check_spec(f"backend:{backend}{device}"), f"{backend}{device}")], notes
    specs = []
    for name in available_backends():
        if name == "numpy" and args.device == "cuda":
            notes.append("numpy skipped: it runs on the cpu only")
            continue
        try:
            specs.append((check_spec(f"backend:{name}{device}"), f"{name}{device}"))
        except UsageError as exc:
            notes.append(f"{name} skipped: {exc}")
    if not specs:
        raise UsageError("no backend is available for --device " + str(args.device))
    return specs, notes


def near_misses(attributes: tuple[str, ...]) -> list[str]:
    """Public names of a candidate that look like interface names (``calibrate_grad``)."""
    found = []
    for name in attributes:
        lowered = name.lower()
        close = difflib.get_close_matches(lowered, FUNCTIONS, n=1, cutoff=0.7)
        containing = [f for f in FUNCTIONS if f in lowered or lowered in f]
        match = close[0] if close else containing[0] if containing else None
        if match is not None:
            found.append(f"{name} (for {match}?)")
    return found


def _start(args: argparse.Namespace, options: Options, adapters: list[Adapter]) -> list[str]:
    """Start every candidate's worker (they load in parallel); notes on backends left out.

    Raises UsageError for a candidate that can be refused without importing it.
    """
    specs, notes = _specs(args)
    load_timeout = None if options.timeout is None else max(options.timeout, 60.0)
    for spec, name in specs:
        adapter = Adapter(
            spec,
            name=name,
            timeout=options.timeout,
            memory_limit=options.memory_limit,
            load_timeout=load_timeout,
        )
        adapters.append(adapter)
        adapter.start()
    return notes


def _wait(
    args: argparse.Namespace, adapters: list[Adapter], notes: list[str]
) -> tuple[list[Adapter], list[ImplementationReport]]:
    """Wait for each worker to load its candidate.

    Returns the loaded adapters and a failing report for each candidate whose worker did not
    survive loading it. Raises UsageError for a candidate that cannot be imported or
    provides none of the interface functions.
    """
    loaded, broken = [], []
    for adapter in adapters:
        try:
            adapter.wait_loaded()
        except UsageError as exc:
            if args.impl is None and args.backend in (None, "all"):
                notes.append(f"{adapter.name} skipped: {exc}")
                adapter.close()
                continue
            raise
        except LoadFailure as exc:
            broken.append(_load_failure_report(adapter, exc))
            continue
        if not adapter.stages():
            misses = near_misses(adapter.attributes)
            hint = f"; near misses: {', '.join(misses)}" if misses else ""
            raise UsageError(
                f"{adapter.name} provides none of the interface functions "
                f"({', '.join(FUNCTIONS)}){hint}"
            )
        loaded.append(adapter)
    if not loaded and not broken:
        raise UsageError("no backend is available for --device " + str(args.device))
    return loaded, broken


def _load_failure_report(adapter: Adapter, exc: LoadFailure) -> ImplementationReport:
    report = ImplementationReport(adapter.name, adapter.spec, adapter.version, {})
    reason = f"the candidate could not be loaded: {exc.describe()}"
    report.results.append(CaseResult.verdict("load", "load", "", "-", reason, 0.0, tier="load"))
    return report


def _tiers(skipped: tuple[str, ...], properties: bool) -> list[Tier]:
    """The tiers this run goes through."""
    return [t for t in TIERS if t.name not in skipped and (properties or not t.needs_properties)]


@contextlib.contextmanager
def _escaping_console() -> Iterator[None]:
    """stdout and stderr write what they cannot encode as backslash escapes (a candidate's
    version, messages and warnings may hold any text, lone surrogates included)."""
    previous = []
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if callable(reconfigure):
            with contextlib.suppress(Exception):
                errors = stream.errors
                reconfigure(errors="backslashreplace")
                previous.append((reconfigure, errors))
    try:
        yield
    finally:
        for reconfigure, errors in previous:
            with contextlib.suppress(Exception):
                reconfigure(errors=errors)


def run_verify(args: argparse.Namespace) -> int:
    """The ``verify`` sub-command; returns the exit code."""
    with _escaping_console():
        try:
            options = validate(args)
        except UsageError as exc:
            return _usage(str(exc))
        adapters: list[Adapter] = []
        # Orphans of the candidates' processes are adopted, and killed before the verdict.
        with Reaper() as reaper:
            try:
                return _verify(args, options, adapters, reaper)
            except KeyboardInterrupt:
                for adapter in adapters:
                    adapter.close(graceful=False)
                reaper.sweep()
                sys.stderr.flush()
                print("verdict: INTERRUPTED (stopped by Ctrl-C before every check ran; no report)")
                return INTERRUPTED
            finally:
                for adapter in adapters:
                    adapter.close(graceful=False)


def _plans(
    loaded: list[Adapter], cases: tuple[golden.GoldenCase, ...], options: Options
) -> list[tuple[Adapter, Plan]]:
    plans = []
    for adapter in loaded:
        provided = frozenset(f for names in adapter.stages().values() for f in names)
        todo = [
            (c, d) for c in cases if c.function in provided for d in options.dtypes if d in c.dtypes
        ]
        plan = Plan(provided, todo, options.dtypes, options.max_examples, options.fresh_seed)
        plans.append((adapter, plan))
    return plans


def _nothing_to_check(
    plans: list[tuple[Adapter, Plan]], tiers: list[Tier], options: Options
) -> None:
    """UsageError when a candidate has no check left in the tiers that run."""
    for adapter, plan in plans:
        if not any(tier.count(adapter, plan) for tier in tiers):
            skipped = f" (--skip-tier {', '.join(options.skipped)})" if options.skipped else ""
            raise UsageError(
                f"nothing to check on {adapter.name}: the tiers that run "
                f"({', '.join(t.name for t in tiers)}){skipped} have no check for the "
                f"functions it provides ({', '.join(sorted(plan.provided))})"
            )


def _verify(
    args: argparse.Namespace, options: Options, adapters: list[Adapter], reaper: Reaper
) -> int:
    tiers = _tiers(options.skipped, args.properties)
    try:
        manifest, cases = golden.stored()  # before any candidate runs
        notes = _start(args, options, adapters)
        loaded, reports = _wait(args, adapters, notes)
        plans = _plans(loaded, cases, options)
        _nothing_to_check(plans, tiers, options)
    except UsageError as exc:
        return _usage(str(exc))

    total = sum(tier.count(adapter, plan) for adapter, plan in plans for tier in tiers)
    progress = Progress(total, enabled=not args.quiet)
    started = time.perf_counter()
    try:
        for adapter, plan in plans:
            report = ImplementationReport(
                adapter.name, adapter.spec, adapter.version, adapter.stages()
            )
            for tier in tiers:
                report.results.extend(tier.run(adapter, plan, progress.update))
            reports.append(report)
    finally:
        progress.close()
    by_name = {a.name: a for a in adapters}
    close_all(adapters)
    reaper.sweep()  # nothing the candidates started may outlive the checks
    for report in reports:
        adapter = by_name[report.name]
        report.candidate_output = adapter.output.summary()
        report.worker_failures = list(adapter.failures)
        report.notes.extend(adapter.notes)
    if notes and reports:
        reports[0].notes.extend(notes)
    elapsed = time.perf_counter() - started

    code = 0 if all(r.passed for r in reports) else 1
    line = verdict(reports, options.skipped)
    if options.json_path is not None:
        document = as_json(
            reports, _settings(args, options), _extra(manifest, elapsed), options.skipped
        )
        try:
            # ensure_ascii: any text (lone surrogates too) is written as \u escapes
            text = json.dumps(document, indent=1, ensure_ascii=True) + "\n"
            options.json_path.write_text(text, encoding="ascii")
        except OSError as exc:
            problem = f"--json: could not write the report to {str(options.json_path)!r}: {exc}"
            print(f"bogc-ref verify: error: {problem}", file=sys.stderr)
            checks = line.removeprefix("verdict: ")
            line = f"verdict: ERROR (no report: {problem}; the checks alone: {checks})"
            code = REPORT_NOT_WRITTEN
    if not args.quiet:
        print(
            f"bogc-ref verify: spec {bogc_ref.SPEC_VERSION}, suite {golden.SUITE_VERSION}, "
            f"dtypes {', '.join(options.dtypes)}, fresh seed {options.fresh_seed} (--fresh-seed "
            f"{options.fresh_seed} repeats this run), {elapsed:.1f} s; each candidate in its own "
            f"process (case timeout {_limit(options.timeout, 's')}, memory limit "
            f"{_limit(options.memory_limit, 'bytes')})"
        )
        print(
            "tolerances: |c - r| <= atol + rtol|r|, rtol = max(floor, c*eps*kappa + R), R the "
            "rounding of the reductions; 'worst err/tol' is the largest error over its "
            "tolerance (<= 1 passes); rtol of each case in --json"
        )
        for report in reports:
            print()
            print(render(report))
        print()
    sys.stdout.flush()
    sys.stderr.flush()
    print(line, flush=True)
    return code


def _limit(value: float | None, unit: str) -> str:
    if value is None:
        return "none"
    return format_bytes(value) if unit == "bytes" else f"{value:g} {unit}"


def _settings(args: argparse.Namespace, options: Options) -> dict[str, Any]:
    return {
        "backend": args.backend,
        "impl": args.impl,
        "dtypes": options.dtypes,
        "device": args.device,
        "properties": args.properties,
        "max_examples": options.max_examples if args.properties else None,
        "case_timeout": args.case_timeout,
        "memory_limit_bytes": options.memory_limit,
        "default_memory_limit_bytes": default_memory_limit(),
        "skipped_tiers": list(options.skipped),
        "fresh_seed": options.fresh_seed,
    }


def _extra(manifest: dict[str, Any], elapsed: float) -> dict[str, Any]:
    return {
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
        "process_model": "each candidate in its own worker process (bogc_ref.conformance.worker)",
    }


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
