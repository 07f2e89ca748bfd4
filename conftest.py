"""Which notebooks nbval runs: the series by default, the worked solutions on request.

The solutions (notebooks/solutions/) repeat their student notebooks' cells, so running both
doubles the notebooks' time: `make test` (and CI) pass `--solutions`, which runs the worked
solutions under nbval too; a plain `pytest` skips them, and tests/course/test_exercises.py still
runs every solution's answers through its check.
"""

from __future__ import annotations

from pathlib import Path

SOLUTIONS = Path(__file__).resolve().parent / "notebooks" / "solutions"


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
