"""The ``bogc-ref`` command: a thin dispatcher over the sub-commands.

Each sub-command lives with the code it drives and contributes ``register(subparsers)``,
which adds its parser and sets ``func(args) -> int`` (the exit code). Exit code 2 is a
usage error, as argparse does.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Modules that each register one or more sub-commands.
COMMAND_MODULES = ("bogc_ref.conformance.cli", "bogc_ref.experiments.cli")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command whose module imports."""
    parser = argparse.ArgumentParser(
        prog="bogc-ref",
        description="Reference implementation and conformance harness for BOGC.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # that part of the package is not built (yet)
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bogc-ref`` script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
