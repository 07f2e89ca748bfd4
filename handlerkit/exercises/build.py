"""Student notebooks made from the worked solutions: one source, two notebooks that never drift.
Sits beside the checks; `python -m handlerkit.exercises build` runs it, `... sync` tests it.

The master is `notebooks/solutions/NN_*.ipynb`, run top to bottom with its answers. In its code
cells, otter-grader's markers say what the learner writes:

* lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` become ``...`` in the student's copy
  (at the marker's indentation);
* a line ending in ``# SOLUTION`` keeps what is left of its ``=`` and gets ``...`` after it;
* lines between ``# BEGIN PROMPT`` and ``# END PROMPT`` are comments in the solution and code in
  the student's copy (a starting point such as ``def top3(data):``), replacing the ``...``.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from ..course.samples import shipped

NOTEBOOKS = shipped("notebook_series", "notebooks")
SOLUTIONS = NOTEBOOKS / "solutions"
MARKER = re.compile(r"^(\s*)# (BEGIN|END) (SOLUTION|PROMPT)\s*$")
ONE_LINE = re.compile(r"^(\s*)(.*?=)\s*.*?\s*# SOLUTION\s*$")


def student_source(source: str) -> str:
    """The student's version of one code cell's source (see the module docstring)."""
    out: list[str] = []
    block = None  # "SOLUTION" or "PROMPT" while inside one
    prompted = False  # the current solution block is followed by a prompt
    lines = source.splitlines()
    for number, line in enumerate(lines):
        marker = MARKER.match(line)
        if marker:
            indent, edge, kind = marker.groups()
            if edge == "BEGIN":
                block = kind
                if kind == "SOLUTION":
                    prompted = _prompt_follows(lines, number)
            else:
                if kind == "SOLUTION" and not prompted:
                    out.append(f"{indent}...")
                block = None
            continue
        if block == "SOLUTION":
            continue
        if block == "PROMPT":
            out.append(re.sub(r"^(\s*)# ?", r"\1", line, count=1))
            continue
        one = ONE_LINE.match(line)
        out.append(f"{one.group(1)}{one.group(2)} ..." if one else line)
    return "\n".join(out)


def _prompt_follows(lines: list[str], begin: int) -> bool:
    """True when the SOLUTION block opened at `begin` is followed directly by a PROMPT block."""
    end = next(i for i in range(begin + 1, len(lines)) if MARKER.match(lines[i]))
    following = lines[end + 1] if end + 1 < len(lines) else ""
    marker = MARKER.match(following)
    return bool(marker and marker.groups()[1:] == ("BEGIN", "PROMPT"))


def student_notebook(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `solution` with the answers taken out and no outputs (run it to fill them)."""
    notebook = nbformat.from_dict(solution)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.source = student_source(cell.source)
            cell.outputs = []
            cell.execution_count = None
    return notebook


def pairs(solutions: Path = SOLUTIONS) -> list[tuple[Path, Path]]:
    """(solution, student) paths for every worked solution."""
    return [(path, solutions.parent / path.name) for path in sorted(solutions.glob("*.ipynb"))]


def out_of_sync(solutions: Path = SOLUTIONS) -> list[str]:
    """Student notebooks whose cells differ from what their solution makes (sources only)."""
    stale = []
    for solution, student in pairs(solutions):
        made = student_notebook(nbformat.read(solution, as_version=4))
        if not student.is_file():
            stale.append(f"{student.name}: missing")
            continue
        have = nbformat.read(student, as_version=4)
        if _sources(made) != _sources(have):
            stale.append(f"{student.name}: differs from solutions/{solution.name}")
    return stale


def _sources(notebook: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def build(
    names: list[str] | None = None, execute: bool = True, solutions: Path = SOLUTIONS
) -> None:
    """Write each student notebook from its solution, then run it so its outputs are stored.

    Args:
        names: Notebook file names or prefixes (``"03"``); all when None.
        execute: Run the written notebook top to bottom in a fresh kernel, saving outputs.
        solutions: The folder of worked solutions.
    """
    for solution, student in pairs(solutions):
        if names and not any(solution.name.startswith(name) for name in names):
            continue
        notebook = student_notebook(nbformat.read(solution, as_version=4))
        if execute:
            from nbclient import NotebookClient

            NotebookClient(
                notebook, timeout=900, resources={"metadata": {"path": str(student.parent)}}
            ).execute()
        nbformat.write(notebook, student)
        print(f"wrote {student.name} from solutions/{solution.name}")
