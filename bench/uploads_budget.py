"""Hostile and awkward uploads of at most 1 MB: time and extra peak memory, one fresh process each.

Budgets (issue 15): at most 2.5 s and 400 MB in the upload handler, 5 s and 700 MB in
ImageClassifier. Time is printed as wall and CPU seconds; the budget column judges CPU time,
which a busy shared machine inflates less. The cases and the measuring process are the tests'
fixture (tests/fixtures/upload_budget.py).
Run, from the checkout: .venv/bin/python -m bench.uploads_budget [--handlers uploads image tensor]
[--cases NAME ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tests.fixtures.upload_budget import (
    BUDGETS,
    CASES,
    HANDLERS,
    run_case,
    within_budget,
    write_cases,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handlers", nargs="+", default=["uploads", "image"], choices=BUDGETS)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = write_cases(Path(folder), args.cases)
        sizes = {name: path.stat().st_size for name, path in paths.items()}
        print(
            "| upload | bytes | handler | s | CPU s | + peak MB | status | within budget | answer |"
        )
        print("| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | --- |")
        for name in args.cases:
            for handler in args.handlers:
                r = run_case(handler, paths[name])
                ok = "yes" if within_budget(handler, r, clock="cpu_seconds") else "**no**"
                answer = r["answer"] if len(r["answer"]) <= 70 else r["answer"][:67] + "..."
                print(
                    f"| {name} | {sizes[name]:,} | {HANDLERS[handler]} | {r['seconds']} | "
                    f"{r.get('cpu_seconds')} | {r['extra_mb']} | {r['status']} | {ok} | {answer} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
