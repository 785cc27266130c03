"""Counts of the contract fuzzer's outcome classes, reference / torch, as a table.

Usage (from a checkout whose ``bogc_ref`` is importable)::

    python tests/contract/report.py [--cases 400] [--seed 0] [--show 2]

Runs ``--cases`` seeded random calls per function (the same generator as the tests)
plus the structured edge cases on each available backend and prints, per outcome
class, the counts; ``--show N`` prints N example calls of each bad class.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from contract_cases import FUNCTIONS, RngChooser, draw_case, structured_edge_cases
from contract_driver import available, check
from contract_verdicts import BAD, CLASSES


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=400, help="random calls per function")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=0, help="examples per bad class")
    ns = parser.parse_args()
    backends = [b for b in ("numpy", "torch") if available(b)]
    cases = list(structured_edge_cases())
    for f_index, function in enumerate(FUNCTIONS):
        for i in range(ns.cases):
            cases.append(
                draw_case(RngChooser(ns.seed * 1_000_003 + f_index * 100_000 + i), function)
            )
    counts: dict[str, Counter[str]] = {b: Counter() for b in backends}
    examples: dict[tuple[str, str], list[str]] = defaultdict(list)
    for case in cases:
        for backend in backends:
            outcome = check(case, backend)
            if outcome.cls == "not_provided":
                continue
            counts[backend][outcome.cls] += 1
            if outcome.cls in BAD and len(examples[backend, outcome.cls]) < ns.show:
                examples[backend, outcome.cls].append(f"{case!r}\n      -> {outcome.detail}")
    names = {"numpy": "reference", "torch": "torch"}
    header = f"{'class':<20}" + "".join(f"{names[b]:>11}" for b in backends)
    print(f"{len(cases)} calls per backend ({ns.cases} random per function, seed {ns.seed})")
    print(header)
    for cls in CLASSES:
        row = "".join(f"{counts[b][cls]:>11}" for b in backends)
        print(f"{cls:<20}{row}{'' if cls in BAD else '   (good)'}")
    bad_total = "".join(f"{sum(counts[b][c] for c in BAD):>11}" for b in backends)
    print(f"{'bad, total':<20}{bad_total}")
    for (backend, cls), items in sorted(examples.items()):
        print(f"\n[{names[backend]}] {cls}:")
        for item in items:
            print("  ", item)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
