"""The benchmark's command line: `python -m bench` from the checkout (what `make bench` runs).

Speed tables by default (`handlerkit.show.timing.benchmark`); `--memory` for the peak memory of
tracing (`handlerkit.show.timing.measure_memory`). Notebook 05 calls the same two functions.
"""

from __future__ import annotations

import argparse

import torch

from handlerkit.show.timing import MODELS, benchmark, measure_memory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Where a handler's time goes, handlerkit against TorchServe, "
        "and what tracing costs.",
    )
    parser.add_argument("--models", default=",".join(MODELS), help="densenet,mnist")
    parser.add_argument("--batches", default="1,8,32", help="comma-separated batch sizes")
    parser.add_argument("--batch", type=int, help="one batch size (same as --batches N)")
    parser.add_argument(
        "--repeats", type=int, help="alternating rounds per batch (5), or runs per variant (3)"
    )
    parser.add_argument("--devices", default=None, help="cpu,cuda (default: cpu, and cuda if any)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--quick", action="store_true", help="batches 1,8 and 3 rounds")
    parser.add_argument("--memory", action="store_true", help="peak RSS of tracing a batch")
    parser.add_argument(
        "--default-malloc", action="store_true", help="--memory with glibc's default malloc"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    if args.batch:
        batches = [args.batch]
    if args.memory:
        repeats = args.repeats or 3
        measure_memory(args.batch or 32, args.threads, repeats, not args.default_malloc)
        return 0
    repeats = args.repeats or 5
    if args.quick:
        batches, repeats = [b for b in batches if b <= 8] or batches, min(repeats, 3)
    devices = args.devices.split(",") if args.devices else ["cpu"]
    if args.devices is None and torch.cuda.is_available():
        devices.append("cuda")
    benchmark(args.models.split(","), batches, repeats, devices)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
