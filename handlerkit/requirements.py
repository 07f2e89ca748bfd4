"""What a notebook or a model needs before it starts (Python packages, Java), checked in one call.

The ground floor: it imports only the standard library, so a notebook's first cell can call
`need(...)` before anything heavy, and stop there with one line that names what to install.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

# import name -> (the package pip installs, the handlerkit extra that brings it)
PACKAGES = {
    "ts": ("torchserve", "notebooks"),  # TorchServe's Python worker code (`ts`), no Java
    "model_archiver": ("torch-model-archiver", "notebooks"),
    "captum": ("captum", "notebooks"),
    "jupyterlab": ("jupyterlab", "notebooks"),
    "litserve": ("litserve", "litserve"),
    "ray": ("ray[serve]", "ray"),
}
JAVA = "Java 17+: apt-get install openjdk-17-jre-headless (or set JAVA_HOME to a Java 17+)"


class Missing(Exception):
    """Something this code needs is not installed; the message is one line naming the fix.

    In Jupyter it shows as that one line, without a traceback (`_render_traceback_`).
    """

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


def need(*names: str) -> None:
    """Raise `Missing` naming every one of `names` that is not installed, else do nothing.

    Args:
        names: import names from `PACKAGES` ("ts", "captum", "litserve", ...) and "java".

    Example: `need("ts", "java")` in notebook 04 stops with
    `Missing: this needs Java 17+ (...); pip install "handlerkit[notebooks]" (for torchserve)`.
    """
    unknown = [n for n in names if n != "java" and n not in PACKAGES]
    if unknown:
        raise ValueError(f"unknown requirement {unknown}; choose from {[*PACKAGES, 'java']}")
    fixes = [java_problem()] if "java" in names else []
    missing = [n for n in names if n in PACKAGES and importlib.util.find_spec(n) is None]
    if missing:
        extras = sorted({PACKAGES[n][1] for n in missing})
        packages = ", ".join(PACKAGES[n][0] for n in missing)
        fixes.append(f'pip install "handlerkit[{",".join(extras)}]" (for {packages})')
    fixes = [fix for fix in fixes if fix]
    if fixes:
        raise Missing("this needs " + "; and ".join(fixes))


def install_hint(module: str) -> str:
    """How to install the package that provides `module` (a top-level import name)."""
    top = module.split(".")[0]
    if top in PACKAGES:
        package, extra = PACKAGES[top]
        return f'pip install "handlerkit[{extra}]" (for {package})'
    return f"install the package that provides {top!r}"


def find_java() -> str:
    """The java executable (JAVA_HOME's, else the one on PATH), Java 17 or newer.

    Raises:
        Missing: no java, or one older than 17.
    """
    java_home = os.environ.get("JAVA_HOME")
    candidates = [str(Path(java_home) / "bin" / "java")] if java_home else []
    candidates.append(shutil.which("java") or "")
    for java in candidates:
        if java and os.access(java, os.X_OK):
            version = _java_version(java)
            if version is not None and version < 17:
                raise Missing(f"this needs {JAVA}; {java} is Java {version}")
            return java
    raise Missing(f"this needs {JAVA}")


def java_problem() -> str | None:
    """What is wrong with Java for TorchServe (none found, too old), or None when it is fine."""
    try:
        find_java()
    except Missing as missing:
        return str(missing).removeprefix("this needs ")
    return None


def _java_version(java: str) -> int | None:
    done = subprocess.run(
        [java, "-version"], capture_output=True, text=True, timeout=30, check=False
    )
    match = re.search(r'version "(\d+)', done.stderr + done.stdout)
    return int(match.group(1)) if match else None
