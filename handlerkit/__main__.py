"""Command line: `python -m handlerkit trace IMAGE` runs a handler on one image outside Jupyter.

IMAGE is a sample name (chelsea, coffee, rocket, astronaut, grace_hopper, digit:N) or a file;
it prints the stage table and the answer, and saves the traced pipeline as a PNG.
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
    from handlerkit.engines.cli import add_parser as add_serve_parser

    add_serve_parser(commands)  # serve NAME=MODEL ... --engine {torchserve,litserve,ray}
    args = parser.parse_args(argv)
    if args.command == "serve":
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
    from handlerkit import samples

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
    from handlerkit import samples

    if model == "mnist":
        return handlerkit.MNISTDigitClassifier.for_folder(samples.MNIST_DIR, gpu_id)
    if model == "densenet":
        return handlerkit.ImageClassifier.for_folder(samples.densenet_folder()[0], gpu_id)
    return handlerkit.ImageClassifier.for_folder(samples.efficientnet_folder(), gpu_id)


if __name__ == "__main__":
    raise SystemExit(main())
