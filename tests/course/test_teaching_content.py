"""Teaching content that must not mislead: the notebooks' text and figure code say what is true.

Issue 28: each test reads the notebooks' cell sources (solutions and student copies) or runs the
small piece of a cell that decides what is printed, and fails where the old text misled.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb")) + sorted((NOTEBOOKS / "solutions").glob("*.ipynb"))


def cells(prefix: str, solution: bool = True) -> list:
    folder = NOTEBOOKS / "solutions" if solution else NOTEBOOKS
    path = next(folder.glob(f"{prefix}_*.ipynb"))
    return nbformat.read(path, as_version=4).cells


def cell_with(prefix: str, needle: str) -> str:
    found = [c.source for c in cells(prefix) if needle in c.source]
    assert len(found) == 1, (prefix, needle, len(found))
    return found[0]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: f"{p.parent.name}/{p.name[:2]}")
def test_every_numbered_exercise_a_notebook_names_is_in_its_list(path):
    """ "Exercise 5, checked" needs a 5. in the notebook's Exercises list (07 had 1-4)."""
    notebook = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    listed = set()
    for block in re.findall(r"## Exercises\n(.*?)(?=\n#|\Z)", text, re.S):
        listed |= {int(n) for n in re.findall(r"^(\d+)\. ", block, re.M)}
    named = {int(n) for n in re.findall(r"\*\*Exercise (\d+), checked", text)}
    assert named <= listed, f"exercises {sorted(named - listed)} are not in the list {listed}"


def run_timing_print(rounds: list[tuple[float, float]]) -> str:
    """Run notebook 01's lines that turn the 15 (untraced, traced) timings into a sentence."""
    source = cell_with("01", "plain_ms, traced_ms =")
    start = source.index("plain_ms, traced_ms =")
    end = source.index("viz.show_timeline")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(source[start:end], {"rounds": rounds})
    return printed.getvalue()


def test_01_never_prints_a_negative_cost():
    noisy = [(10.0 + i % 5, 9.0 + i % 7) for i in range(15)]  # traced's best below untraced's
    text = run_timing_print(noisy)
    assert "costs about -" not in text and "within the noise" in text, text
    clear = [(10.0 + 0.1 * (i % 3), 25.0 + 0.1 * (i % 3)) for i in range(15)]
    assert "full capture costs about 15.0 ms" in run_timing_print(clear)


def test_latency_axes_start_at_zero():
    """A box plot of milliseconds whose axis starts at 15 ms exaggerates the differences."""
    for prefix in ("01", "02", "03", "04", "05", "06", "07", "08", "09"):
        for cell in cells(prefix):
            if cell.cell_type == "code" and re.search(r'set_ylabel\("ms"\)', cell.source):
                assert "set_ylim(bottom=0" in cell.source or "set_yscale" in cell.source, prefix


def test_06_log_excerpt_reaches_the_error_line():
    """The excerpt of the real server's log runs through the exception's own line."""
    source = cell_with("06", "Invoking custom service failed")
    traceback = [f"MODEL_LOG -   File line {i}" for i in range(20)]
    log = ["Backend received inference", "x", "MODEL_LOG - Invoking custom service failed."]
    log += traceback + ["MODEL_LOG - RuntimeError: mat1 and mat2 shapes cannot be multiplied"]
    log += ["after", "after"]

    class Real:
        def logs(self, tail, files):
            return "\n".join(log)

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(source.replace("# NBVAL_IGNORE_OUTPUT", ""), {"real": Real(), "short": str})
    assert "RuntimeError: mat1 and mat2" in printed.getvalue()
    assert "after" not in printed.getvalue()


def test_06_check_names_the_two_classes_once(tmp_path):
    import shutil

    from handlerkit import samples
    from handlerkit.serving.check import check

    broken = tmp_path / "broken"
    shutil.copytree(samples.MNIST_DIR, broken)
    with open(broken / "model.py", "a") as f:
        f.write("\n\nclass Helper(nn.Module):\n    pass\n")
    problems, worker = check(broken)
    said = "\n".join(str(p) for p in problems)
    assert said.count("defines 2 classes") == 1, said


@pytest.mark.parametrize("solution", [True, False], ids=["solution", "student"])
def test_08_the_baseline_is_not_called_black(solution):
    """Zeros in the normalized space are the mean colour, a grey: the text must not say black."""
    text = "\n".join(c.source for c in cells("08", solution))
    assert "from a black image" not in text and "black (all-zero)" not in text
    assert "not a black image" in cells("08", solution)[0].source


def test_08_compares_the_two_maps_on_one_scale():
    source = cell_with("08", "top1 = next(iter(top5))")
    assert "scale=" in source and "explanation_scale" in source
    text = "\n".join(c.source for c in cells("08"))
    assert "spread thin" not in text


def test_efficientnet_lite0_is_normalized_as_its_weights_were_trained():
    """Notebook 01 teaches mean = std = 0.5 for these weights: 08 explains with that, the CLI
    traces with it, and where a notebook keeps the default (09) it says so."""
    setup = cell_with("08", "samples.efficientnet_folder(), gpu_id=GPU_ID")
    assert "Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])" in setup
    assert "EfficientNetLiteClassifier.for_folder" in setup
    taught = cell_with("01", "class EfficientNetLiteClassifier")
    assert "Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])" in taught
    assert "mean = std = 0.5" in cell_with(
        "09", 'samples.efficientnet_folder(WORK / "efficientnet")'
    )

    from handlerkit.__main__ import _handler

    handler, _ = _handler("efficientnet", None)
    normalize = handler.image_processing.transforms[-1]
    assert list(normalize.mean) == [0.5] * 3 and list(normalize.std) == [0.5] * 3
