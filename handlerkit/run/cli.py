"""`python -m handlerkit run|check MODEL`: a TorchServe model answered, traced and checked, offline.

`run` prints each answer as a client of the server would see it (status, content type, body),
the trace table, and, when the handler fails, the stage, the traceback and the values before it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import tracing
from ..serving.check import check
from ..serving.frontend import Answer
from ..serving.model_folder import open_model
from .offline import OfflineServer


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
                warnings = [server.worker(name).last_warnings] + [[]] * (len(answers) - 1)
            else:
                answers, warnings = [], []
                for body in bodies:
                    answers.append(server.request("POST", path, *body))
                    warnings.append(server.worker(name).last_warnings)
    for source, answer, warned in zip(args.inputs, answers, warnings):
        print(f"== {source}")
        _print_answer(answer, trace)
        for warning in warned:
            print(
                f"-- TorchServe sends this with {answer.status}, but a client cannot read it "
                f"as meant:\n{warning}"
            )
    print(trace.table())
    if args.trace:
        from ..show import viz  # noqa: F401 - registers the drawer

        drawn = _drawn_request(args.inputs, args.batch)
        trace.show(row=0, title=drawn).savefig(args.trace, dpi=90)
        print(f"figure saved to {args.trace}: {drawn}")
    return 0 if all(a.ok for a in answers) else 1


def _drawn_request(inputs: list[str], batch: bool) -> str:
    """Which input the figure shows: the batch's first, or the last one sent (its own call)."""
    if not inputs:
        return "no request"
    if batch:
        return f"request 0 of the batch ({Path(inputs[0]).name})"
    if len(inputs) == 1:
        return Path(inputs[0]).name
    return f"{Path(inputs[-1]).name} (the last of {len(inputs)} requests, each sent alone)"


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
        print(f"-- the handler failed in {answer.error.stage}:")
        print(answer.error.traceback.rstrip() or answer.error.message)
        print("-- the last values recorded before it:")
        for record in list(trace)[-4:]:
            print(f"   {record!r}")
