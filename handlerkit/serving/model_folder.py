"""A model to serve: a `.mar` unpacked, or a model folder laid out as its `.mar` would unpack.

First step of the offline server, as of TorchServe: what the worker loads is a folder with
`MAR-INF/MANIFEST.json` beside the serialized file, the model file, the handler and extra files.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
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
# What a .mar may unpack to (TorchServe sets no limit; handlerkit does, see docs/faults.md).
MAX_ENTRIES = 10_000
MAX_UNPACKED_BYTES = 4 << 30  # 4 GiB: DenseNet-161's weights are 115 MB


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
        manifest = _read_manifest(path, path)
        _check_handler_file(path, manifest, path)
        return ModelFolder(path, manifest)
    return _lay_out(path, name, handler)


def mar_bytes(source: str | os.PathLike, name: str, handler: str | None = None) -> bytes:
    """The model as `.mar` bytes: a `.mar` file itself, or a model folder laid out (as
    `open_model` does, so every engine serves the same folders) and zipped."""
    path = Path(source)
    if path.is_file():
        return path.read_bytes()
    folder = open_model(path, name, handler)
    try:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for item in sorted(folder.path.rglob("*")):
                if item.is_file():  # links followed: the archive holds the files themselves
                    archive.write(item, item.relative_to(folder.path).as_posix())
        return buffer.getvalue()
    finally:
        folder.remove()


def _unpack(mar: Path) -> ModelFolder:
    """The archive unpacked into a temp folder, removed again when anything is wrong."""
    folder = Path(tempfile.mkdtemp(prefix=f"handlerkit-{mar.stem}-"))
    try:
        with zipfile.ZipFile(mar) as archive:
            _check_entries(mar, archive.infolist())
            archive.extractall(folder)
        if not (folder / "MAR-INF" / "MANIFEST.json").is_file():
            raise ModelLoadError(
                f"{mar} has no MAR-INF/MANIFEST.json: build it with torch-model-archiver"
            )
        manifest = _read_manifest(folder, mar)
        _check_handler_file(folder, manifest, mar)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise ModelLoadError(
            f"{mar} cannot be unpacked ({error}): rebuild it with torch-model-archiver"
        ) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return ModelFolder(folder, manifest, temporary=folder)


def _check_entries(mar: Path, entries: list[zipfile.ZipInfo]) -> None:
    """Refuse links and archives past the limits before anything is written."""
    for entry in entries:
        if stat.S_ISLNK(entry.external_attr >> 16):
            raise ModelLoadError(
                f"{mar} holds a symbolic link ({entry.filename}): a .mar holds files only; "
                "archive the file the link points to"
            )
    if len(entries) > MAX_ENTRIES:
        raise ModelLoadError(f"{mar} holds {len(entries)} entries, over {MAX_ENTRIES}")
    size = sum(entry.file_size for entry in entries)
    if size > MAX_UNPACKED_BYTES:
        raise ModelLoadError(
            f"{mar} unpacks to {size:,} bytes, over handlerkit's {MAX_UNPACKED_BYTES:,}"
        )


def _check_handler_file(folder: Path, manifest: dict, mar: Path) -> None:
    """A handler named as a file must be in the archive (else ts reports a failed import)."""
    file = manifest["model"].get("handler", "").partition(":")[0]
    if file.endswith(".py") and not (folder / file).is_file():
        raise ModelLoadError(
            f"{mar}: MANIFEST.json names the handler {file}, which the archive does not hold: "
            f"archive it with torch-model-archiver --handler {file}"
        )


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
    try:
        if path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                if "MAR-INF/MANIFEST.json" in archive.namelist():
                    manifest = json.loads(archive.read("MAR-INF/MANIFEST.json"))
                    return (
                        model_version(manifest) if isinstance(manifest, dict) else DEFAULT_VERSION
                    )
        elif (path / "MAR-INF" / "MANIFEST.json").is_file():
            return model_version(_read_manifest(path, path))
    except (ValueError, OSError, zipfile.BadZipFile, ModelLoadError):
        pass  # opening the model names the problem
    return DEFAULT_VERSION


def _read_manifest(folder: Path, source: Path) -> dict:
    """MAR-INF/MANIFEST.json, which must be a JSON object with a "model" object."""
    try:
        manifest = json.loads((folder / "MAR-INF" / "MANIFEST.json").read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ModelLoadError(
            f"{source}: MAR-INF/MANIFEST.json is not valid JSON ({error}): rebuild it with "
            "torch-model-archiver"
        ) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("model"), dict):
        raise ModelLoadError(
            f'{source}: MAR-INF/MANIFEST.json is not a manifest (no "model" object): rebuild '
            "it with torch-model-archiver"
        )
    return manifest
