"""Command line: `python -m handlerkit trace|run|check ...`, handlers outside Jupyter.

`trace IMAGE` runs handlerkit's handler on one image (a sample name such as chelsea or digit:N,
or a file), prints the stage table and the answer, and saves the traced pipeline as a PNG;
`run MODEL INPUT...` answers with any .mar or model folder offline; `check MODEL` names the
problems that keep a model from loading; `notebooks DIR` copies the notebook series into DIR
(keeping your edits).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MODELS = ("efficientnet", "densenet", "mnist")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m handlerkit", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    trace_cmd = commands.add_parser("trace", help="trace one image through a handler")
    trace_cmd.add_argument("image", help="a sample name (e.g. chelsea, digit:7) or an image file")
    trace_cmd.add_argument(
        "--model",
        choices=MODELS,
        default=None,
        help="model folder (default: mnist for digits, else efficientnet)",
    )
    trace_cmd.add_argument("--out", default="trace.png", help="where to save the figure")
    trace_cmd.add_argument("--gpu", type=int, default=None, help="gpu_id, if CUDA is available")
    notebooks_cmd = commands.add_parser("notebooks", help="copy the notebook series into DIR")
    notebooks_cmd.add_argument("dir", help="your folder; notebooks already there are kept")
    from .run.cli import add_commands

    add_commands(commands)
    from .run.serve_cli import add_parser as add_serve_parser

    add_serve_parser(commands)  # serve NAME=MODEL ... --engine {torchserve,litserve,ray}
    from .run.compare import add_parser as add_compare_parser

    add_compare_parser(commands)  # compare URL URL | --mar MODEL --engine ENGINE
    args = parser.parse_args(argv)
    if args.command == "notebooks":
        from handlerkit.course.notebooks import copy_notebooks

        print(copy_notebooks(args.dir))
        return 0
    if args.command != "trace":
        return args.run(args)
    return run_trace(args.image, args.model, Path(args.out), args.gpu)


def run_trace(image: str, model: str | None, out: Path, gpu_id: int | None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import handlerkit

    data = _image_bytes(image)
    model = model or ("mnist" if image.startswith("digit:") else "efficientnet")
    handler, context = _handler(model, gpu_id)
    with handlerkit.trace(handler) as t:
        answer = handler.handle([{"data": data}], context)[0]
    print(t.table())
    print(json.dumps(answer, indent=2))
    t.show().savefig(out, dpi=90)
    print(f"figure saved to {out}")
    return 0 if not (isinstance(answer, dict) and "error" in answer) else 1


def _image_bytes(image: str) -> bytes:
    from handlerkit.course import samples

    if image.startswith("digit:"):
        return samples.digit_png(int(image.split(":", 1)[1]))
    if image in samples.PHOTO_NAMES:
        return samples.photo_bytes(image)
    path = Path(image)
    if not path.is_file():
        sys.exit(
            f"{image!r} is neither a sample ({', '.join(samples.PHOTO_NAMES)}, digit:N) nor a file"
        )
    return path.read_bytes()


def _handler(model: str, gpu_id: int | None):
    import handlerkit
    from handlerkit.course import samples

    if model == "mnist":
        return handlerkit.MNISTDigitClassifier.for_folder(samples.MNIST_DIR, gpu_id)
    if model == "densenet":
        return handlerkit.ImageClassifier.for_folder(samples.densenet_folder()[0], gpu_id)
    from handlerkit.handlers.image_classifier import EfficientNetLiteClassifier

    return EfficientNetLiteClassifier.for_folder(samples.efficientnet_folder(), gpu_id)


if __name__ == "__main__":
    raise SystemExit(main())
