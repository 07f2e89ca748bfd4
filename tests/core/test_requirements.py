"""`requirements.need`: one line naming what to install, before anything heavy is imported."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from handlerkit import requirements
from handlerkit.requirements import Missing, need


def test_what_is_installed_passes_silently():
    need("ts", "model_archiver", "captum")  # the development environment has them


def test_missing_packages_name_their_extra_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "litserve", None)
    monkeypatch.setattr(requirements.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(Missing) as raised:
        need("ts", "litserve", "ray")
    message = str(raised.value)
    assert message == (
        'this needs pip install "handlerkit[litserve,notebooks,ray]" '
        "(for torchserve, litserve, ray[serve])"
    )
    assert "\n" not in message
    assert raised.value._render_traceback_() == [f"Missing: {message}"]  # Jupyter: that line only


def test_no_java_is_named_with_its_package(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)
    with pytest.raises(Missing, match=r"^this needs Java 17\+: apt-get install openjdk-17-jre"):
        need("java", "ts")


def test_an_unknown_name_is_a_mistake_not_a_missing_package():
    with pytest.raises(ValueError, match="unknown requirement"):
        need("tensorflow")


def test_importing_it_imports_nothing_heavy():
    # handlerkit/__init__ may import more (issue 26 trims it); the module itself stays light.
    path = requirements.__file__
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('r', {path!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    heavy = {"torch", "numpy", "PIL", "matplotlib", "ts", "IPython"} & set(loaded.split())
    assert not heavy, f"requirements imported {heavy}"
