"""Build configuration pyproject.toml cannot express: ship the top-level data/ and notebooks/.

The repository keeps one copy of the model folders (data/) and of the notebook series
(notebooks/); the wheel installs them inside the package, as handlerkit/data and
handlerkit/notebook_series, where handlerkit.samples finds them. Which of their files are
shipped (no caches, no checkpoints) is in pyproject.toml's package-data.
"""

from setuptools import find_namespace_packages, find_packages, setup

SHIPPED = {"handlerkit.data": "data", "handlerkit.notebook_series": "notebooks"}


def folders(name: str, folder: str) -> list[str]:
    """`folder` and its subfolders (data/mnist, notebooks/solutions, ...) as packages of `name`."""
    subfolders = find_namespace_packages(folder, exclude=["*__pycache__*"])
    return [name] + [f"{name}.{sub}" for sub in subfolders]


setup(
    packages=find_packages(include=["handlerkit*"])
    + [package for name, folder in SHIPPED.items() for package in folders(name, folder)],
    package_dir=SHIPPED,
)
