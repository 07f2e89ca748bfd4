"""Pack a TorchServe-style model folder into a .mar with torch-model-archiver.

First step of serving: `archive` writes the .mar that `TorchServe` then registers.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from ...context import weights_file
from .errors import ServeError


def archive(
    model_dir: str | os.PathLike,
    model_store: str | os.PathLike,
    name: str,
    handler: str | os.PathLike | None = None,
    version: str = "1.0",
    extra_files: Iterable[str | os.PathLike] = (),
    force: bool = True,
) -> Path:
    """Build `<model_store>/<name>.mar` from a TorchServe-style model folder.

    The folder holds one `*.pt`/`*.pth` weights file, optionally `model.py` (an eager
    model class), `handler.py` and `index_to_name.json`.

    Args:
        model_dir: The model folder.
        model_store: Folder the `.mar` is written to (created if missing).
        name: Model name; also the `.mar` file name.
        handler: A handler file, or a built-in handler name such as `"image_classifier"`.
            Defaults to `<model_dir>/handler.py`.
        version: Model version written into the archive manifest.
        extra_files: More files to pack next to `index_to_name.json`.
        force: Overwrite an existing `.mar`.

    Returns:
        The path of the `.mar` file.

    Raises:
        ServeError: The folder is incomplete or torch-model-archiver failed.
    """
    folder = Path(model_dir).resolve()
    if not folder.is_dir():
        raise ServeError(f"model folder {folder} does not exist: pass the folder with model.pt")
    store = Path(model_store).resolve()
    store.mkdir(parents=True, exist_ok=True)
    command = [
        *_archiver_command(),
        "--model-name", name,
        "--version", version,
        "--serialized-file", str(_weights_file(folder)),
        "--handler", _handler_argument(folder, handler),
        "--export-path", str(store),
    ]  # fmt: skip
    if (folder / "model.py").is_file():
        command += ["--model-file", str(folder / "model.py")]
    extras = [str(Path(f).resolve()) for f in extra_files]
    if (folder / "index_to_name.json").is_file():
        extras.append(str(folder / "index_to_name.json"))
    if extras:
        command += ["--extra-files", ",".join(extras)]
    if force:
        command.append("--force")
    return _run_archiver(command, store / f"{name}.mar")


def mar_in_store(model_store: Path, mar: str | os.PathLike) -> str:
    """Return the `url=` TorchServe's register API expects: the `.mar` name inside the store.

    Args:
        model_store: The server's model store.
        mar: A `.mar` file name in `model_store`, or a path inside it.
    """
    path = Path(mar)
    if not path.is_absolute():
        path = model_store / path
    path = path.resolve()
    if path.parent != model_store or not path.is_file():
        raise ServeError(
            f"{mar} is not a .mar in the model store {model_store}: "
            f"build it there with archive(model_dir, '{model_store}', name)"
        )
    return path.name


def _archiver_command() -> list[str]:
    """Return the command that runs torch-model-archiver, preferably with this Python."""
    if importlib.util.find_spec("model_archiver") is not None:
        return [sys.executable, "-m", "model_archiver.model_packaging"]
    script = _script("torch-model-archiver")
    if script is None:
        raise ServeError("torch-model-archiver is not installed: pip install torch-model-archiver")
    return [script]


def _script(name: str) -> str | None:
    """Return the console script `name` next to this Python, else the one on PATH."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.is_file() else shutil.which(name)


def _weights_file(folder: Path) -> Path:
    """Return the single weights file of a model folder."""
    try:
        found = weights_file(folder, "keep exactly one")
    except ValueError as error:
        raise ServeError(str(error)) from None
    if found is None:
        raise ServeError(
            f"{folder} has no weights file (*.pt or *.pth): save one with "
            f"torch.save(model.state_dict(), '{folder / 'model.pt'}')"
        )
    return folder / found


def _handler_argument(folder: Path, handler: str | os.PathLike | None) -> str:
    """Return what to pass as `--handler`: a file path or a built-in handler name."""
    if handler is None:
        default = folder / "handler.py"
        if not default.is_file():
            raise ServeError(
                f"{folder} has no handler.py: add one, or pass handler='image_classifier' "
                "(a TorchServe built-in) or handler='path/to/handler.py'"
            )
        return str(default)
    text = str(handler)
    if text.endswith(".py") or os.sep in text:
        path = Path(text) if Path(text).is_absolute() else folder / text
        if not path.is_file():
            path = Path(text).resolve()
        if not path.is_file():
            raise ServeError(f"handler file {text} not found in {folder} or the current folder")
        return str(path.resolve())
    return text


def _run_archiver(command: list[str], mar: Path) -> Path:
    """Run torch-model-archiver and check that it wrote `mar`."""
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, cwd=mar.parent, check=False
    )
    if done.returncode != 0 or not mar.is_file():
        output = (done.stderr + done.stdout).strip()
        raise ServeError(f"torch-model-archiver could not build {mar}:\n{output}")
    return mar
