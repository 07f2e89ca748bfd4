"""Which notebooks nbval runs, and with how many threads.

The solutions (notebooks/solutions/) repeat their student notebooks' cells, so running both
doubles the notebooks' time: `make test` (and CI) pass `--solutions`, which runs the worked
solutions under nbval too; a plain `pytest` skips them, and tests/course/test_exercises.py still
runs every solution's answers through its check.

Stored outputs must not depend on the machine: floats summed in another order (another thread
count, another BLAS kernel) change in their last digits. So the two copies of each notebook run
under different thread counts: the worked solutions with 1 torch/OpenMP thread, the student
notebooks with 2. Every `make test` compares both against the same stored outputs.
`HANDLERKIT_NB_THREADS=N` runs every notebook with N threads instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SOLUTIONS = Path(__file__).resolve().parent / "notebooks" / "solutions"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_ORIGINAL = {name: os.environ.get(name) for name in THREAD_VARIABLES}


def pytest_addoption(parser):
    parser.addoption(
        "--solutions",
        action="store_true",
        help="also run the worked solutions (notebooks/solutions/*.ipynb) under nbval",
    )


def pytest_ignore_collect(collection_path: Path, config):
    if collection_path.suffix == ".ipynb" and collection_path.parent == SOLUTIONS:
        return None if config.getoption("--solutions") else True
    return None


def notebook_threads(path: Path) -> str:
    """The thread count a notebook's kernel runs with (see the module docstring)."""
    return os.environ.get("HANDLERKIT_NB_THREADS") or ("1" if path.parent == SOLUTIONS else "2")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # nbval starts a notebook's kernel when its first cell is set up, with this environment.
    path = Path(str(item.fspath))
    for name in THREAD_VARIABLES:
        value = notebook_threads(path) if path.suffix == ".ipynb" else _ORIGINAL[name]
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
