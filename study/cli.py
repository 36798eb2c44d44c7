"""The ``study`` command.  Each concept's module adds its own sub-command with ``register_cli``.

A mistake the user can fix is one line, ``study <command>: error: <what> — <what to do>``, exit
status 2 (study.errors); Ctrl-C is one line, exit status 130; a bug keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys

from study import batch, experiment, gbt, tag
from study.data import cli as data_cli
from study.errors import is_user_error, user_message
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
USER_ERROR_STATUS = 2  # as argparse exits on a bad option
INTERRUPTED_STATUS = 130  # 128 + SIGINT, as shells report Ctrl-C


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="study", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"study {args.command}: interrupted — run the same command again to go on: finished epochs, "
              f"cached audio and complete runs are kept", file=sys.stderr)
        return INTERRUPTED_STATUS
    except Exception as error:
        if not is_user_error(error):
            raise
        print(f"study {args.command}: error: {user_message(error, args.command)}", file=sys.stderr)
        return USER_ERROR_STATUS


if __name__ == "__main__":
    sys.exit(main())
