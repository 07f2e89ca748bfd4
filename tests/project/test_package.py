"""The package as a learner installs it: the wheel, a fresh virtual environment, the README's line.

Builds the wheel from a copy of the checkout, makes a new virtual environment (no system site
packages), installs the wheel with the README's `pip install` line (only the wheel's path put in
for the repository's address; pip resolves every dependency), copies the series out with
`handlerkit notebooks`, and executes every notebook with Java hidden: those the README's table says
run with that line must run, the others must stop in their first cell with one line naming what
to install. Slow (measured on 2 shared cores under heavy load: about 16 minutes to build and
install, then several minutes per notebook, notebook 05 the longest): `-m "not package"` skips it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from handlerkit.course.notebooks import series

pytestmark = pytest.mark.package

REPO = Path(__file__).resolve().parents[2]
NOT_SOURCES = ("build", "dist", "*.egg-info", "__pycache__", "model_store", "logs", "out")
# The README's pip line; the test puts the wheel it built where the line names a wheel.
PIP_LINE = re.compile(r'^pip install "(\S+\.whl)(\[[a-z,]+\])"$', re.M)
# Executes each notebook in the learner's environment; on an error, stops there (as Jupyter's
# "Run all" does) and reports the failing cell. Stored outputs are cleared first.
EXECUTE = """
import json, sys, time
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

report = {}
for path in sys.argv[1:]:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    started = time.monotonic()
    try:
        NotebookClient(nb, timeout=900, kernel_name="python3").execute()
    except CellExecutionError:
        pass
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    errors = [
        (i, output) for i, cell in enumerate(code) for output in cell.outputs
        if output.output_type == "error"
    ]
    report[path] = {
        "seconds": round(time.monotonic() - started, 1),
        "cells": len(code),
        "executed": sum(cell.execution_count is not None for cell in code),
        "error": errors and {"cell": errors[0][0], **errors[0][1]},
    }
print(json.dumps(report))
"""


def run(command: list, cwd: Path, env: dict | None = None, timeout: float = 1800) -> str:
    """Run `command`; its stdout, or a failure that shows the end of what it printed."""
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, (
        f"{' '.join(map(str, command))} exited {done.returncode}:\n"
        f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


def copy_sources(dest: Path) -> Path:
    """What a fresh clone holds: the checkout without hidden folders, builds, caches, outputs."""

    def ignore(folder, names):
        skipped = shutil.ignore_patterns(*NOT_SOURCES)(folder, names)
        return skipped | {name for name in names if name.startswith(".")}

    return Path(shutil.copytree(REPO, dest, ignore=ignore))


def readme_notebooks() -> dict[str, str]:
    """The README's notebook table: notebook name -> what it needs (its last column)."""
    rows = re.findall(
        r"^\| `(\d\d_\w+)` \|.*\| ([^|]+) \|$", (REPO / "README.md").read_text(), re.M
    )
    assert len(rows) == 9, f"the README's notebook table has {len(rows)} rows"
    return {f"{name}.ipynb": needs.strip() for name, needs in rows}


def without_java(tmp: Path) -> str:
    """A PATH on which no `java` is found: the system's folders, as links, less Java's."""
    shadow = tmp / "bin-without-java"
    shadow.mkdir()
    for folder in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        for entry in Path(folder).glob("*") if Path(folder).is_dir() else []:
            link = shadow / entry.name
            if not entry.name.startswith(("java", "jar", "jshell", "keytool")) and not (
                link.exists() or link.is_symlink()
            ):
                link.symlink_to(entry)
    return str(shadow)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built offline from a copy of the checkout in which caches were planted."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = copy_sources(tmp / "source")
    planted = [
        source / "data" / "mnist" / "__pycache__" / "model.cpython-311.pyc",
        source / "notebooks" / ".ipynb_checkpoints" / "01_densenet-checkpoint.ipynb",
    ]
    for path in planted:  # what a learner's or a test run's checkout has: never shipped
        path.parent.mkdir(parents=True)
        path.write_bytes(b"cache")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    run([*pip_wheel, "--no-index", "--wheel-dir", tmp / "dist", source], cwd=tmp)
    (found,) = (tmp / "dist").glob("handlerkit-*.whl")
    return found


@pytest.fixture(scope="module")
def learner(wheel, tmp_path_factory):
    """A fresh virtual environment with the wheel installed by the README's line; its env."""
    tmp = tmp_path_factory.mktemp("learner")
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp)  # no system site packages, no checkout
    ((_, extras),) = PIP_LINE.findall((REPO / "README.md").read_text())
    home = tmp / "home"  # a learner's own home: no kernels or settings of this machine's user
    home.mkdir()
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "JAVA_HOME", "VIRTUAL_ENV")
    }
    env.update(HOME=str(home), CI="1", PATH=f"{venv / 'bin'}:{without_java(tmp)}")
    requirement = f"{wheel}{extras}"  # the README's line, with this wheel's path
    run([venv / "bin" / "python", "-m", "pip", "install", requirement], cwd=tmp, env=env)
    assert shutil.which("java", path=env["PATH"]) is None
    yield {"python": venv / "bin" / "python", "bin": venv / "bin", "env": env, "site": venv}
    # 6.5 GB (torch's CUDA build): pytest keeps its last three temp folders, which filled the disk
    shutil.rmtree(venv, ignore_errors=True)


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """A working folder outside the checkout."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def test_wheel_ships_the_model_folders_and_the_series(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    data = {
        f"handlerkit/data/{path.relative_to(REPO / 'data').as_posix()}"
        for path in (REPO / "data").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert {"handlerkit/data/mnist/mnist_cnn.pt", "handlerkit/data/densenet/model.py"} <= data
    assert data <= names, f"missing from the wheel: {sorted(data - names)}"
    shipped_series = {n for n in names if n.startswith("handlerkit/notebook_series/")}
    expected = {f"handlerkit/notebook_series/{p.as_posix()}" for p in series(REPO / "notebooks")}
    assert shipped_series == expected
    caches = [n for n in names if "__pycache__" in n or "checkpoint" in n or n.endswith(".pyc")]
    assert not caches, f"caches shipped: {caches}"


def test_installed_package_uses_its_own_folders(learner, elsewhere):
    probe = (
        "import json, handlerkit\n"
        "from handlerkit import samples\nfrom handlerkit.course import notebooks\n"
        "folders = [samples.MNIST_DIR, samples.DENSENET_DIR, samples.EFFICIENTNET_DIR,"
        " notebooks.SERIES_DIR]\n"
        "print(json.dumps([handlerkit.__file__] + [str(f) for f in folders if f.is_dir()]))\n"
    )
    paths = json.loads(run([learner["python"], "-c", probe], elsewhere, learner["env"]))
    assert len(paths) == 5, f"a folder is missing: {paths}"
    for path in paths:
        assert Path(path).is_relative_to(learner["site"]), f"{path} is not in the learner's venv"


def test_command_line_traces_a_digit_from_another_folder(learner, elsewhere):
    command = [learner["bin"] / "handlerkit", "trace", "digit:3", "--out", "x.png"]
    assert "figure saved to x.png" in run(command, elsewhere, learner["env"])
    assert (elsewhere / "x.png").stat().st_size > 10_000


def test_notebooks_command_copies_the_series_and_keeps_edits(learner, elsewhere):
    copy = elsewhere / "my notebooks"
    out = run([learner["bin"] / "handlerkit", "notebooks", copy], elsewhere, learner["env"])
    names = [p.as_posix() for p in series(REPO / "notebooks")]
    assert f"{len(names)} notebooks copied" in out
    assert [p.as_posix() for p in series(copy)] == names
    for name in names:
        assert (copy / name).read_bytes() == (REPO / "notebooks" / name).read_bytes()

    edited = copy / names[0]
    edited.write_text(edited.read_text().replace("DenseNet", "MyNet"))
    out = run([learner["python"], "-m", "handlerkit", "notebooks", copy], elsewhere, learner["env"])
    assert "0 notebooks copied" in out
    assert f"skipped {names[0]} (already there with your edits: kept)" in out
    assert f"same    {names[1]} (already there, unchanged)" in out
    assert "MyNet" in edited.read_text()


def test_every_notebook_runs_or_stops_in_its_first_cell_naming_what_to_install(learner, elsewhere):
    needs = readme_notebooks()
    run([learner["bin"] / "handlerkit", "notebooks", "nb"], elsewhere, learner["env"])
    folder = elsewhere / "nb"
    names = sorted(needs)
    execute = [learner["python"], "-c", EXECUTE, *names]
    report = json.loads(run(execute, folder, learner["env"], timeout=3600).splitlines()[-1])
    print(json.dumps({n: {k: v for k, v in r.items() if k != "error"} for n, r in report.items()}))
    problems = []
    for name in names:
        result, runs = report[name], "+" not in needs[name]
        error = result["error"]
        if runs and error:
            problems.append(f"{name} failed in code cell {error['cell']}: {error['evalue']}")
        elif not runs and not (error and error["cell"] == 0 and error["ename"] == "Missing"):
            problems.append(f"{name} should stop in its first cell (needs {needs[name]}): {error}")
        elif not runs:
            line = error["evalue"]
            assert error["traceback"] == [f"Missing: {line}"], "one line, no traceback"
            assert result["executed"] == 1, f"{name} ran on past its first cell"
            wanted = set(",".join(re.findall(r"handlerkit\[([a-z,]+)\]", line)).split(","))
            listed = set(re.search(r"\[([a-z,]+)\]", needs[name]).group(1).split(","))
            assert wanted - {""} <= listed, f"{name}: {line!r}, the README says {needs[name]!r}"
            assert ("Java 17" in line) == ("Java" in needs[name]), (name, line, needs[name])
    assert not problems, "\n".join(problems)
