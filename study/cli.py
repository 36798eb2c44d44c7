"""The ``study`` command.  Each concept's module adds its own sub-command with ``register_cli``.

A mistake the user can fix is one line, ``study <command>: error: <what> — <what to do>``, exit
status 2 (study.errors); Ctrl-C is one line, exit status 130; a bug keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from study.errors import is_user_error, user_message

# each module's register_cli(subparsers) adds its sub-commands; each sets func(args) -> int.  Modules are
# imported only for the command asked for, so `study tag` starts without the training and data stack.
COMMANDS = {
    "study.models.cli": ("models",),  # study models --csv
    "study.data.cli": ("corpus", "cache"),
    "study.experiment": ("train", "evaluate"),
    "study.gbt": ("gbt",),
    "study.tag": ("tag",),
    "study.batch": ("batch", "report", "run"),
}
USER_ERROR_STATUS = 2  # as argparse exits on a bad option
INTERRUPTED_STATUS = 130  # 128 + SIGINT, as shells report Ctrl-C


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for every sub-command, or for ``command``'s module only when it names one."""
    parser = argparse.ArgumentParser(prog="study", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    wanted = [name for name, commands in COMMANDS.items() if command in commands] or list(COMMANDS)
    for name in wanted:
        importlib.import_module(name).register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
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
