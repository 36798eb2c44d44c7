"""The ``study`` command.  Each concept's module adds its own sub-command with ``register_cli``."""
from __future__ import annotations

import argparse
import importlib
import sys

# modules that define register_cli(subparsers); each sub-command sets func(args) -> int
COMMAND_MODULES = (
    "study.models",      # study models --csv
    "study.data.cli",    # study corpus / study cache
    "study.experiment",  # study train / study evaluate
    "study.gbt",         # study gbt
    "study.tag",         # study tag
    "study.batch",       # study batch / study report / study run
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="study", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
