"""The notebooks' shape, checked without running them (nbval runs them; this reads the files).

Each notebook is saved after a top-to-bottom run, so pictures show on first open; it sets the
device switch near the top, ends with Summary, Exercises (at least two checked ones) and, when it
has one, its Clean-up, and stores no machine-specific paths. The worked solutions (solutions/) too.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb")) + sorted(NOTEBOOKS.glob("solutions/*.ipynb"))
CHECK = re.compile(r"^exercises\.check\(", re.M)
DEVICE_SWITCH = re.compile(r"^DEVICE\s*=.*\btorch\.cuda\.is_available\(\)", re.M)
HEADING = re.compile(r"^##\s+(.+?)\s*$", re.M)


def code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code" and cell.source.strip()]


def first_line(cell) -> str:
    return cell.source.strip().splitlines()[0]


def output_text(cell) -> str:
    """Every text an output of `cell` stores (streams, plain text, markdown, error messages)."""
    parts = []
    for output in cell.outputs:
        parts.append(output.get("text", ""))
        parts += [v for k, v in output.get("data", {}).items() if k.startswith("text/")]
        parts.append(output.get("evalue", ""))
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


@pytest.fixture(params=PATHS, ids=[str(p.relative_to(NOTEBOOKS)) for p in PATHS])
def notebook(request):
    notebook = nbformat.read(request.param, as_version=4)
    notebook.metadata["path"] = request.param  # for the tests that need the file's name
    return notebook


def test_there_are_notebooks():
    assert PATHS, f"no notebooks in {NOTEBOOKS}"


def test_is_a_valid_notebook(notebook):
    nbformat.validate(notebook)


def test_saved_after_one_run_top_to_bottom(notebook):
    counts = [cell.execution_count for cell in code_cells(notebook)]
    assert counts == list(range(1, len(counts) + 1)), (
        f"execution counts {counts}: restart the kernel, run all cells, and save with outputs "
        "(jupyter nbconvert --to notebook --execute --inplace <notebook>)"
    )


def test_outputs_are_stored_and_have_no_errors(notebook):
    cells = code_cells(notebook)
    assert any(cell.outputs for cell in cells), "no outputs stored: save it after running it"
    errors = [first_line(c) for c in cells if any(o.output_type == "error" for o in c.outputs)]
    assert not errors, f"cells saved with an error: {errors}"


def test_device_switch_near_the_top(notebook):
    first = code_cells(notebook)[:3]
    assert any(DEVICE_SWITCH.search(cell.source) for cell in first), (
        'one of the first three code cells must set DEVICE = "cuda" if torch.cuda.is_available() '
        'else "cpu" (and derive GPU_ID from it)'
    )


def headings(cell) -> list[str]:
    return HEADING.findall(cell.source) if cell.cell_type == "markdown" else []


def test_ends_with_summary_exercises_and_clean_up(notebook):
    last = [(i, h) for i, cell in enumerate(notebook.cells) for h in headings(cell)]
    names = [h for _, h in last]
    tail = names[-3:] if names and names[-1].startswith("Clean-up") else names[-2:] + [None]
    assert tail[:2] == ["Summary", "Exercises"], (
        f"the last ## headings are {names[-3:]}; end with ## Summary, ## Exercises (the checked "
        "exercises), then ## Clean-up when the notebook has something to clean up"
    )
    summary = max(i for i, h in last if h == "Summary")
    exercises = max(i for i, h in last if h == "Exercises")
    between = [c for c in notebook.cells[summary:exercises] if c.cell_type == "code"]
    assert not between, "no code between ## Summary and ## Exercises"
    end = max(i for i, h in last if h == tail[2]) if tail[2] else len(notebook.cells)
    checks = [
        c for c in notebook.cells[exercises:end] if c.cell_type == "code" and CHECK.search(c.source)
    ]
    assert len(checks) >= 2, (
        f"{len(checks)} checked exercises after ## Exercises: at least two cells must call "
        'exercises.check("NN.name", answer), and the clean-up must come after them'
    )


def test_every_notebook_has_a_worked_solution():
    missing = [
        p.name
        for p in NOTEBOOKS.glob("*.ipynb")
        if not (NOTEBOOKS / "solutions" / p.name).is_file()
    ]
    assert not missing, (
        f"no solutions/ notebook for {missing}: the student notebooks are built from one"
    )


def test_no_machine_paths_in_outputs(notebook):
    repo = str(NOTEBOOKS.parent)
    pattern = re.compile(r"(/tmp/|/var/folders/|/private/var/|" + re.escape(repo) + r"/)")
    leaks = [first_line(c) for c in code_cells(notebook) if pattern.search(output_text(c))]
    assert not leaks, f"outputs show absolute paths of this machine: {leaks}"


MIN_PICTURES = 3


def test_stores_at_least_three_pictures(notebook):
    """Someone reading the saved notebook (on GitHub, in a course page) sees the pipeline drawn."""
    pictures = [
        output
        for cell in code_cells(notebook)
        for output in cell.outputs
        if any(kind in ("image/png", "image/jpeg") for kind in output.get("data", {}))
    ]
    assert len(pictures) >= MIN_PICTURES, (
        f"{len(pictures)} stored pictures (image/png or image/jpeg outputs); draw at least "
        f"{MIN_PICTURES} of what the notebook shows, then run it and save it with its outputs"
    )


def sanitize_rules() -> list[tuple[re.Pattern, str]]:
    """notebooks/sanitize.cfg's (regex, replace) pairs, in file order, as nbval applies them."""
    lines = (NOTEBOOKS / "sanitize.cfg").read_text().splitlines()
    return [
        (re.compile(line.removeprefix("regex:").strip()), after.removeprefix("replace:").strip())
        for line, after in zip(lines, lines[1:])
        if line.startswith("regex:") and after.startswith("replace:")
    ]


# A number with 8 or more significant digits after the point: a float printed at full precision,
# whose last digits change with the CPU, the thread count and the BLAS kernel.
MACHINE_DIGITS = re.compile(r"(?<![\w.])-?\d*\.0*[1-9]\d{7,}")


def compared(cell) -> bool:
    """nbval compares this cell's outputs (no NBVAL_IGNORE_OUTPUT/NBVAL_SKIP marker or tag)."""
    markers = ("NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP")
    tags = cell.metadata.get("tags", [])
    return not any(m in first_line(cell) or m.lower().replace("_", "-") in tags for m in markers)


def test_compared_outputs_hold_no_machine_dependent_digits(notebook):
    """A second machine (other CPU, other thread count) must get the outputs nbval compares."""
    rules = sanitize_rules()
    found = []
    for cell in code_cells(notebook):
        if not compared(cell):
            continue
        text = output_text(cell)
        for pattern, replace in rules:
            text = pattern.sub(replace, text)
        found += [(first_line(cell), m) for m in MACHINE_DIGITS.findall(text)[:2]]
    assert not found, (
        f"outputs that nbval compares print floats at full precision: {found}; round them to "
        "what the lesson needs, or sanitize them in notebooks/sanitize.cfg with the reason"
    )
