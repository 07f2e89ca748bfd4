"""A served handler loads no drawing library: `import handlerkit` and data/mnist/handler.py.

Each TorchServe worker imports the handler file; matplotlib, widgets and the sample-data packages
belong to the notebooks (handlerkit.show, handlerkit.course), not to serving.
"""

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("matplotlib", "ipywidgets", "IPython", "skimage", "mlxtend")
MNIST_HANDLER = Path(__file__).resolve().parents[2] / "data" / "mnist" / "handler.py"


def loaded_after(code: str) -> list[str]:
    """The heavy packages in `sys.modules` after running `code` in a fresh interpreter."""
    check = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.parametrize(
    "code",
    [
        "import handlerkit",
        "import importlib.util as u\n"
        f"spec = u.spec_from_file_location('handler', {str(MNIST_HANDLER)!r})\n"
        "spec.loader.exec_module(u.module_from_spec(spec))",
    ],
    ids=["import handlerkit", "data/mnist/handler.py"],
)
def test_a_served_handler_loads_no_drawing_library(code):
    assert loaded_after(code) == []


def test_drawing_loads_when_a_trace_is_shown():
    assert "matplotlib" in loaded_after("import handlerkit.show.viz")
