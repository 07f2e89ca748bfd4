"""A model to serve: a `.mar` unpacked, or a model folder laid out as its `.mar` would unpack.

First step of the offline server, as of TorchServe: what the worker loads is a folder with
`MAR-INF/MANIFEST.json` beside the serialized file, the model file, the handler and extra files.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..context import weights_file
from ..errors import ModelLoadError

DEFAULT_VERSION = "1.0"  # torch-model-archiver's --version default, and what _lay_out writes
BUILTIN_HANDLERS = (
    "base_handler",
    "image_classifier",
    "image_segmenter",
    "object_detector",
    "text_classifier",
    "vision_handler",
)


@dataclass
class ModelFolder:
    """An unpacked model: its folder, its manifest, and the temp folder to remove (if any)."""

    path: Path
    manifest: dict
    temporary: Path | None = None

    @property
    def handler(self) -> str:
        return self.manifest["model"].get("handler", "")

    @property
    def version(self) -> str:
        """The manifest's `modelVersion` (what `/predictions/NAME/VERSION` names)."""
        return model_version(self.manifest)

    def remove(self) -> None:
        if self.temporary is not None:
            shutil.rmtree(self.temporary, ignore_errors=True)
            self.temporary = None


def open_model(source: str | os.PathLike, name: str, handler: str | None = None) -> ModelFolder:
    """Unpack a `.mar`, or lay out a model folder the way `torch-model-archiver` would pack it.

    Args:
        source: A `.mar` file, an unpacked `.mar` (a folder with `MAR-INF`), or a model folder
            (one weights file, optionally `model.py`, `handler.py`, `index_to_name.json`).
        name: The model name.
        handler: For a model folder: what `torch-model-archiver --handler` takes, a builtin name
            (`image_classifier`), a file, or `file:function`; defaults to the folder's handler.py.
    """
    path = Path(source).expanduser().resolve()
    if path.is_file() and zipfile.is_zipfile(path):
        return _unpack(path)
    if not path.exists():
        raise FileNotFoundError(f"{source} does not exist: pass a .mar file or a model folder")
    if path.is_file():
        raise ModelLoadError(f"{source} is not a .mar (a zip archive) nor a model folder")
    if (path / "MAR-INF" / "MANIFEST.json").is_file() and handler is None:
        return ModelFolder(path, _read_manifest(path))
    return _lay_out(path, name, handler)


def _unpack(mar: Path) -> ModelFolder:
    folder = Path(tempfile.mkdtemp(prefix=f"handlerkit-{mar.stem}-"))
    with zipfile.ZipFile(mar) as archive:
        archive.extractall(folder)
    if not (folder / "MAR-INF" / "MANIFEST.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        raise ModelLoadError(
            f"{mar} has no MAR-INF/MANIFEST.json: build it with torch-model-archiver"
        )
    return ModelFolder(folder, _read_manifest(folder), temporary=folder)


def _lay_out(source: Path, name: str, handler: str | None) -> ModelFolder:
    """Link the folder's files into a temp folder with the manifest the archiver would write."""
    handler = handler or ("handler.py" if (source / "handler.py").is_file() else None)
    if handler is None:
        raise ModelLoadError(
            f"{source} has no handler.py: pass handler='image_classifier' (a TorchServe "
            "builtin), handler='path/to/handler.py' or handler='handler.py:function'"
        )
    folder = Path(tempfile.mkdtemp(prefix=f"handlerkit-{name}-"))
    try:
        for item in source.iterdir():
            if item.is_file() and item.name != "MANIFEST.json":
                (folder / item.name).symlink_to(item)
        handler_entry = _link_handler(source, folder, handler)
        model = {"modelName": name, "handler": handler_entry, "modelVersion": DEFAULT_VERSION}
        try:
            weights = weights_file(source)
        except ValueError as error:
            raise ModelLoadError(str(error)) from None
        if weights:
            model["serializedFile"] = weights
        if (source / "model.py").is_file():
            model["modelFile"] = "model.py"
        manifest = {"runtime": "python", "model": model, "archiverVersion": "handlerkit"}
        (folder / "MAR-INF").mkdir()
        (folder / "MAR-INF" / "MANIFEST.json").write_text(json.dumps(manifest, indent=2))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return ModelFolder(folder, manifest, temporary=folder)


def _link_handler(source: Path, folder: Path, handler: str) -> str:
    """Put the handler file into `folder`; return the manifest's handler entry."""
    file, _, function = handler.partition(":")
    if not file.endswith(".py") and os.sep not in file:
        return handler  # a builtin name such as image_classifier (or a module on sys.path)
    path = Path(file) if Path(file).is_absolute() else source / file
    if not path.is_file():
        path = Path(file).resolve()
    if not path.is_file():
        raise ModelLoadError(f"handler file {file} not found in {source} or the current folder")
    target = folder / path.name
    if not target.exists():
        target.symlink_to(path.resolve())
    return path.name + (f":{function}" if function else "")


def model_version(manifest: dict) -> str:
    """A manifest's model version; TorchServe's default when it names none."""
    return str(manifest.get("model", {}).get("modelVersion") or DEFAULT_VERSION)


def version_of(source: str | os.PathLike) -> str:
    """The version of a `.mar`, an unpacked `.mar` or a model folder (read, not unpacked)."""
    path = Path(source).expanduser().resolve()
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if "MAR-INF/MANIFEST.json" in archive.namelist():
                return model_version(json.loads(archive.read("MAR-INF/MANIFEST.json")))
    elif (path / "MAR-INF" / "MANIFEST.json").is_file():
        return model_version(_read_manifest(path))
    return DEFAULT_VERSION


def _read_manifest(folder: Path) -> dict:
    return json.loads((folder / "MAR-INF" / "MANIFEST.json").read_text())
