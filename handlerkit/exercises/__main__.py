"""`python -m handlerkit.exercises build [03 ...] | sync`: make or test the student notebooks.
Sits on top of `build`; the notebooks' own cells call `handlerkit.exercises.check`.
"""

from __future__ import annotations

import argparse
import sys

from .build import build, out_of_sync


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handlerkit.exercises")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="write and run the student notebooks")
    make.add_argument("names", nargs="*", help="notebooks to build, e.g. 03 05 (default: all)")
    make.add_argument("--no-execute", action="store_true", help="write sources only")
    commands.add_parser("sync", help="fail when a student notebook differs from its solution")
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.names or None, execute=not args.no_execute)
        return 0
    stale = out_of_sync()
    for line in stale:
        print(line)
    if stale:
        print("run: python -m handlerkit.exercises build")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
