"""The ``study`` command.  Each concept's module adds its own sub-command with ``register_cli``."""
from __future__ import annotations

import argparse
import sys

from study import batch, experiment, gbt, tag
from study.data import cli as data_cli
from study.models import cli as models_cli

# each module's register_cli(subparsers) adds its sub-commands; each sets func(args) -> int
COMMANDS = (
    models_cli,  # study models --csv
    data_cli,  # study corpus / study cache
    experiment,  # study train / study evaluate
    gbt,  # study gbt
    tag,  # study tag
    batch,  # study batch / study report / study run
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="study", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
