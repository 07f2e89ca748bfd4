"""The package a learner installs: the wheel, installed with no checkout on the path, in use.

Builds the wheel from a copy of the checkout, installs it into a target folder (pip --target),
then runs the command line and the notebooks from another folder with only that folder on
PYTHONPATH. Slow (about a minute and a half): deselect with `-m "not package"`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from handlerkit.course.notebooks import series

pytestmark = pytest.mark.package

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
NOT_SOURCES = ("build", "dist", "*.egg-info", "__pycache__", "model_store", "logs", "out")
EXECUTED = ["01_densenet_default_handler.ipynb", "03_custom_mnist_handler.ipynb"]


def run(command: list, cwd: Path, env: dict | None = None) -> str:
    """Run `command`; its stdout, or a failure that shows the end of what it printed."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
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
    pip_wheel = [PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    run([*pip_wheel, "--wheel-dir", tmp / "dist", source], cwd=tmp)
    (found,) = (tmp / "dist").glob("handlerkit-*.whl")
    return found


@pytest.fixture(scope="module")
def site(wheel, tmp_path_factory) -> Path:
    """The wheel installed into a target folder (its dependencies come from this environment)."""
    target = tmp_path_factory.mktemp("site")
    pip_install = [PYTHON, "-m", "pip", "install", "--no-deps", "--no-index", "--target", target]
    run([*pip_install, wheel], cwd=target)
    return target


@pytest.fixture(scope="module")
def env(site) -> dict:
    """The environment of a learner's process: the installed folder, and not the checkout."""
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": str(site)}


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


def test_installed_package_uses_its_own_folders(site, env, elsewhere):
    probe = (
        "import json, handlerkit\n"
        "from handlerkit import notebooks, samples\n"
        "folders = [samples.MNIST_DIR, samples.DENSENET_DIR, samples.EFFICIENTNET_DIR,"
        " notebooks.SERIES_DIR]\n"
        "print(json.dumps([handlerkit.__file__] + [str(f) for f in folders if f.is_dir()]))\n"
    )
    paths = json.loads(run([PYTHON, "-c", probe], elsewhere, env))
    assert len(paths) == 5, f"a folder is missing: {paths}"
    for path in paths:
        assert Path(path).is_relative_to(site / "handlerkit"), f"{path} is not in {site}"


def test_command_line_traces_a_digit_from_another_folder(env, elsewhere):
    out = run([PYTHON, "-m", "handlerkit", "trace", "digit:3", "--out", "x.png"], elsewhere, env)
    assert "figure saved to x.png" in out
    assert (elsewhere / "x.png").stat().st_size > 10_000


def test_notebooks_command_copies_the_series_and_keeps_edits(site, env, elsewhere):
    learner = elsewhere / "my notebooks"
    out = run([site / "bin" / "handlerkit", "notebooks", learner], elsewhere, env)
    names = [p.as_posix() for p in series(REPO / "notebooks")]
    assert f"{len(names)} notebooks copied" in out
    assert [p.as_posix() for p in series(learner)] == names
    for name in names:
        assert (learner / name).read_bytes() == (REPO / "notebooks" / name).read_bytes()

    edited = learner / names[0]
    edited.write_text(edited.read_text().replace("DenseNet", "MyNet"))
    out = run([PYTHON, "-m", "handlerkit", "notebooks", learner], elsewhere, env)
    assert "0 notebooks copied" in out
    assert f"skipped {names[0]} (already there with your edits: kept)" in out
    assert f"same    {names[1]} (already there, unchanged)" in out
    assert "MyNet" in edited.read_text()


def test_notebooks_run_from_the_copy_on_the_installed_package(site, env, elsewhere):
    learner = elsewhere / "course"
    run([PYTHON, "-m", "handlerkit", "notebooks", learner], elsewhere, env)
    probe = nbformat.v4.new_notebook()
    probe.cells = [
        nbformat.v4.new_code_cell(
            "import json, os, handlerkit\nfrom handlerkit import samples\n"
            "print(json.dumps([handlerkit.__file__, str(samples.MNIST_DIR), os.getcwd()]))"
        )
    ]
    nbformat.write(probe, learner / "where_is_handlerkit.ipynb")
    execute = [PYTHON, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute"]
    execute += ["--ExecutePreprocessor.timeout=600", "--output-dir", elsewhere / "executed"]
    run([*execute, "where_is_handlerkit.ipynb", *EXECUTED], learner, env)

    executed = nbformat.read(elsewhere / "executed" / "where_is_handlerkit.ipynb", as_version=4)
    module, mnist_dir, cwd = json.loads(executed.cells[0].outputs[0]["text"])
    assert Path(module).is_relative_to(site), f"the kernel imported {module}, not the installed one"
    assert Path(mnist_dir).is_relative_to(site)
    assert Path(cwd) == learner
    for name in EXECUTED:
        cells = nbformat.read(elsewhere / "executed" / name, as_version=4).cells
        outputs = [o for cell in cells if cell.cell_type == "code" for o in cell.outputs]
        assert outputs and not [o for o in outputs if o.output_type == "error"]
