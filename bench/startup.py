"""What a served handler costs to start, over the torch + torchvision it cannot avoid.

Run: .venv/bin/python bench/startup.py [--repeats N]
Each variant is a fresh interpreter, timed from start to exit; rounds alternate so load on the
machine hits all three alike. Targets: the handler import <= 0.3 s, `run` <= 1.0 s over torch.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from handlerkit import samples

BASELINE = "import torch, torchvision"
HANDLER = (
    "import importlib.util as u\n"
    "spec = u.spec_from_file_location('handler', {path!r})\n"
    "spec.loader.exec_module(u.module_from_spec(spec))"
)


def seconds(command: list[str]) -> float:
    """Wall time of one fresh interpreter running `command` to its end."""
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def variants(png: Path) -> dict[str, list[str]]:
    """The three commands: the baseline, importing the served handler, answering one digit."""
    handler = HANDLER.format(path=str(samples.MNIST_DIR / "handler.py"))
    return {
        "import torch, torchvision": [sys.executable, "-c", BASELINE],
        "import data/mnist/handler.py": [sys.executable, "-c", handler],
        "python -m handlerkit run data/mnist digit.png": [
            sys.executable,
            "-m",
            "handlerkit",
            "run",
            str(samples.MNIST_DIR),
            str(png),
        ],  # fmt: skip
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        png = Path(folder) / "digit.png"
        png.write_bytes(samples.digit_png(0))
        commands = variants(png)
        for command in commands.values():
            seconds(command)  # warm the file cache once
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, command in commands.items():
                times[name].append(seconds(command))
    base = statistics.median(times["import torch, torchvision"])
    print(f"| fresh interpreter ({args.repeats} rounds) | median s | over torch s | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for name, measured in times.items():
        m = statistics.median(measured)
        print(f"| {name} | {m:.3f} | {m - base:+.3f} | {m / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
