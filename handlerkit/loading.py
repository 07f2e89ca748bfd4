"""The steps of `BaseHandler.initialize`: choose the device, load the model, load the labels.

Each step is a plain function so a notebook can call them one by one; every failure names the
file at fault and the fix.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import pickle
import sys
from pathlib import Path

import torch
from torch import nn

from .errors import ModelLoadError


def choose_device(gpu_id: int | str | None) -> torch.device:
    """`cuda:<gpu_id>` when CUDA is available and a gpu_id is given, else CPU (as TorchServe)."""
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{gpu_id}")
    return torch.device("cpu")


def import_model_file(path: Path) -> type[nn.Module]:
    """Import `model.py` by its path and return the one class it defines (the model)."""
    if not path.is_file():
        raise ModelLoadError(
            f"the manifest names model file {path.name!r}, but {path} does not exist; "
            "put the nn.Module class definition there, or drop modelFile to load TorchScript"
        )
    return import_one_class(path, "model")


def import_one_class(path: Path, role: str = "handler") -> type:
    """Import a Python file by its path and return the one class it defines, as TorchServe does.

    TorchServe instantiates the single class of a model folder's `model.py` and of its
    `handler.py`. The file's folder is on `sys.path` while it runs (TorchServe's too), and each
    file gets its own module name, so two folders' `model.py` can be imported in one notebook
    without the second import returning the first module.

    Args:
        path: the Python file.
        role: what the class is ("model", "handler"), for the error message.
    """
    name = f"_handlerkit_{role}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == name]
    if len(classes) != 1:
        found = ", ".join(c.__name__ for c in classes) or "none"
        raise ModelLoadError(
            f"{path.name} defines {len(classes)} classes ({found}); TorchServe instantiates "
            f"exactly one: keep the {role} class and import the others from another module"
        )
    return classes[0]


def load_eager_model(model_file: Path, weights: Path | None, device: torch.device) -> nn.Module:
    """Instantiate the class in `model_file` and load the `state_dict` in `weights` into it."""
    model_class = import_model_file(model_file)
    model = model_class()
    if weights is not None:
        _require_file(weights)
        try:
            state_dict = torch.load(weights, map_location=device)
        except pickle.UnpicklingError:  # torch.load only unpickles tensors and plain containers
            raise ModelLoadError(
                f"{weights.name} is not a plain state_dict (a whole pickled model?); "
                "save it with torch.save(model.state_dict(), path)"
            ) from None
        try:
            model.load_state_dict(state_dict)
        except RuntimeError as err:
            raise ModelLoadError(
                f"the weights in {weights.name} do not fit class {model_class.__name__} "
                f"in {model_file.name}: {err}"
            ) from None
    return model.to(device).eval()


def load_torchscript_model(weights: Path, device: torch.device) -> torch.jit.ScriptModule:
    """Load a TorchScript archive (what TorchServe loads when the manifest has no modelFile)."""
    _require_file(weights)
    try:
        model = torch.jit.load(str(weights), map_location=device)
    except RuntimeError as err:
        raise ModelLoadError(
            f"{weights.name} is not TorchScript ({str(err).splitlines()[0]}); if it is a "
            "state_dict, add model.py with the nn.Module class as the manifest's modelFile"
        ) from None
    return model.eval()


def load_mapping(path: Path) -> dict[str, str] | None:
    """Read `index_to_name.json` with TorchServe's rules; None when the file is absent.

    Keys are class indices as strings; a list value means its last element is the label;
    the old `{"object_type_names": [...]}` form is accepted.
    """
    if not path.is_file():
        return None
    try:
        mapping = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ModelLoadError(f"{path.name} is not valid JSON ({err}); fix the file") from None
    if not isinstance(mapping, dict):
        raise ModelLoadError(
            f'{path.name} must be a JSON object like {{"0": "cat", "1": "dog"}}, '
            f"got a {type(mapping).__name__}"
        )
    if isinstance(mapping.get("object_type_names"), list):
        return {str(i): name for i, name in enumerate(mapping["object_type_names"])}
    labels = {}
    for key, value in mapping.items():
        label = value[-1] if isinstance(value, list) and value else value
        if not isinstance(label, str):
            raise ModelLoadError(
                f"{path.name}: the label of class {key!r} is {value!r}; "
                'labels must be a string or a list ending in one, e.g. ["n02123045", "tabby"]'
            )
        labels[key] = label
    return labels


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise ModelLoadError(
            f"the manifest names weights file {path.name!r}, but {path} does not exist; "
            "copy the weights into the model folder or fix serializedFile"
        )
