"""The tiers of checks ``bogc-ref verify`` runs, in order, each a name and two functions.

A tier turns a :class:`Plan` (what one candidate provides and what to check) into
:class:`~bogc_ref.conformance.runner.CaseResult` rows, setting ``adapter.context`` so that
whatever the candidate prints is recorded against the check that was running. Every tier
counts in the verdict unless ``--skip-tier NAME`` leaves it out; the laws run only with
``--properties``. Another tier is one more :class:`Tier` in :data:`TIERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import golden
from .adapter import Adapter
from .fresh import FRESH_SEED
from .runner import CaseResult, check_golden, check_monte_carlo

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """What to check on one candidate."""

    provided: frozenset[str]
    golden: list[tuple[golden.GoldenCase, str]]
    dtypes: list[str]
    max_examples: int
    #: The seed of the fresh tier's draws and of the candidate's Monte Carlo sampler.
    fresh_seed: int = FRESH_SEED


@dataclass(frozen=True)
class Tier:
    """A tier: ``run`` makes its rows, ``count`` says how many (for the progress bar)."""

    name: str
    run: Callable[[Adapter, Plan, Progress], list[CaseResult]]
    count: Callable[[Adapter, Plan], int]
    needs_properties: bool = False


def _golden(adapter: Adapter, plan: Plan, progress: Progress) -> list[CaseResult]:
    out = []
    for case, dtype in plan.golden:
        adapter.context = f"{case.name} {dtype}"
        out.append(check_golden(adapter, case, dtype))
        progress(f"{adapter.name} {case.name} {dtype}")
    return out


def _statistical(adapter: Adapter, plan: Plan, progress: Progress) -> list[CaseResult]:
    if "softmax_head_moments" not in plan.provided:
        return []
    mc_case = golden.load_case("softmax_mc_eps")
    out = []
    for dtype in plan.dtypes:
        adapter.context = f"softmax_mc_own_sampler {dtype}"
        out.append(check_monte_carlo(adapter, mc_case, dtype, seed=plan.fresh_seed))
        progress(f"{adapter.name} softmax_mc_own_sampler {dtype}")
    return out


def _fresh(adapter: Adapter, plan: Plan, progress: Progress) -> list[CaseResult]:
    from .fresh import run_fresh

    out = []
    for dtype in plan.dtypes:
        adapter.context = f"fresh {dtype}"
        out.extend(run_fresh(adapter, dtype, seed=plan.fresh_seed, progress=progress))
    return out


def _count_fresh(adapter: Adapter, plan: Plan) -> int:
    from .fresh import fresh_cases

    return sum(
        d in case.dtypes and case.function in plan.provided
        for case in fresh_cases(plan.fresh_seed)
        for d in plan.dtypes
    )


def _contract(adapter: Adapter, plan: Plan, progress: Progress) -> list[CaseResult]:
    from .contract import run_contract

    out = []
    for dtype in plan.dtypes:
        adapter.context = f"contract {dtype}"
        out.extend(run_contract(adapter, dtype, progress))
    return out


def _count_contract(adapter: Adapter, plan: Plan) -> int:
    from .contract import bad_inputs

    return len(plan.dtypes) * sum(e.function in plan.provided for e in bad_inputs())


def _laws(adapter: Adapter, plan: Plan, progress: Progress) -> list[CaseResult]:
    from .properties import run_laws

    return [
        r for dtype in plan.dtypes for r in run_laws(adapter, dtype, plan.max_examples, progress)
    ]


def _count_laws(adapter: Adapter, plan: Plan) -> int:
    from .properties import applicable_laws

    return len(applicable_laws(adapter)) * len(plan.dtypes)


#: The tiers in the order they run.
TIERS: tuple[Tier, ...] = (
    Tier("golden", _golden, lambda adapter, plan: len(plan.golden)),
    Tier("fresh", _fresh, _count_fresh),
    Tier(
        "statistical",
        _statistical,
        lambda adapter, plan: len(plan.dtypes) * ("softmax_head_moments" in plan.provided),
    ),
    Tier("laws", _laws, _count_laws, needs_properties=True),
    Tier("contract", _contract, _count_contract),
)

#: Their names, for ``--skip-tier``.
TIER_NAMES: tuple[str, ...] = tuple(t.name for t in TIERS)
