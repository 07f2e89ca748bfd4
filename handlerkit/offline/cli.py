"""`python -m handlerkit run|check MODEL`: a TorchServe model answered, traced and checked, offline.

`run` prints each answer as a client of the server would see it (status, content type, body),
the trace table, and, when the handler fails, the stage, the traceback and the values before it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import tracing
from .check import check
from .frontend import Answer
from .server import OfflineServer
from .store import open_model


def add_commands(commands) -> None:
    """Add `run` and `check` to an argparse subparsers object."""
    run = commands.add_parser("run", help="answer inputs with a .mar or model folder, offline")
    run.add_argument("model", help="a .mar file or a model folder")
    run.add_argument("inputs", nargs="*", help="files to send, one request each (default: none)")
    run.add_argument("--handler", help="for a model folder: builtin name, file, or file:function")
    run.add_argument("--content-type", default="application/octet-stream")
    run.add_argument("--explain", action="store_true", help="POST /explanations/ instead")
    run.add_argument("--batch", action="store_true", help="send all inputs in one batch")
    run.add_argument("--trace", metavar="PNG", help="also draw the traced pipeline here")
    run.set_defaults(run=run_command)
    checker = commands.add_parser("check", help="name every load-time problem of a model")
    checker.add_argument("model", help="a .mar file or a model folder")
    checker.add_argument("--handler", help="for a model folder: builtin name, file, ...")
    checker.set_defaults(run=check_command)


def run_command(args: argparse.Namespace) -> int:
    name = Path(args.model).stem
    if not opens("run", args.model, name, args.handler):
        return 2
    bodies = [(Path(p).read_bytes(), {"Content-Type": args.content_type}) for p in args.inputs]
    path = f"/{'explanations' if args.explain else 'predictions'}/{name}"
    with OfflineServer({name: args.model}, handler=args.handler) as server:
        failed = server.load_error(name)
        if failed is not None:
            print(f"the model did not load ({failed.stage}):\n{failed.traceback}")
            print(f"`python -m handlerkit check {args.model}` explains what to fix")
            return 1
        capture = "full" if args.trace else "summary"
        with tracing.trace(server.handler(name), capture=capture) as trace:
            if args.batch:
                answers = server.batch(path, bodies)
            else:
                answers = [server.request("POST", path, *body) for body in bodies]
    for source, answer in zip(args.inputs, answers):
        print(f"== {source}")
        _print_answer(answer, trace)
    print(trace.table())
    if args.trace:
        from .. import viz  # noqa: F401 - registers the drawer

        trace.show().savefig(args.trace, dpi=90)
        print(f"figure saved to {args.trace}")
    return 0 if all(a.ok for a in answers) else 1


def check_command(args: argparse.Namespace) -> int:
    if not opens("check", args.model, Path(args.model).stem, args.handler):
        return 2
    problems, worker = check(args.model, handler=args.handler)
    if worker is not None:
        worker.close()
    for problem in problems:
        print(problem)
    errors = [p for p in problems if p.level == "error"]
    print("loads as TorchServe would" if not errors else f"{len(errors)} problem(s) to fix")
    return 1 if errors else 0


def opens(command: str, model: str, name: str, handler: str | None) -> bool:
    """Whether the model unpacks (or lays out); if not, one line on stderr says why."""
    try:
        open_model(model, name, handler).remove()
    except (OSError, ValueError, RuntimeError) as error:  # ModelLoadError is a RuntimeError
        print(f"handlerkit {command}: {error}", file=sys.stderr)
        return False
    return True


def _print_answer(answer: Answer, trace: tracing.Trace) -> None:
    content_type = answer.headers.get("content-type", "-")
    print(f"HTTP {answer.status}  content-type: {content_type}")
    try:
        print(answer.body.decode("utf-8"))
    except UnicodeDecodeError:
        print(f"<{len(answer.body)} bytes: {answer.body[:32]!r}...>")
    if answer.error is not None:
        print(f"-- the handler failed in {answer.error.stage}:\n{answer.error.traceback}")
        print("-- the last values recorded before it:")
        for record in list(trace)[-4:]:
            print(f"   {record!r}")
