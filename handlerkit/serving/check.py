"""`check`: load a model as TorchServe would and name every load-time problem with its fix.

Where TorchServe's log says "worker died", this reads the manifest, the handler and model files,
then loads the model through `ts`'s own loader and explains what it raised.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .frontend import Route, request_input
from .model_folder import BUILTIN_HANDLERS, open_model
from .worker import Worker

ENTRY_FUNCTION = "handle"


@dataclass
class Problem:
    """One thing that keeps a model from loading (`level` "error") or from answering well."""

    level: str  # "error" or "warning"
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}\n  fix: {self.fix}"


def check(source: str | os.PathLike, name: str | None = None, handler: str | None = None):
    """Every problem found in a `.mar` or model folder, loading it for real; [] when it loads.

    Returns:
        (problems, worker): the problems, and the loaded `Worker` (None when it did not load);
        close the worker when done.
    """
    name = name or Path(source).stem
    try:
        folder = open_model(source, name, handler)
    except (OSError, ValueError, RuntimeError) as error:
        return [Problem("error", str(error), "pass a .mar, or a folder with its handler")], None
    problems = _static_problems(folder.path, folder.manifest)
    worker = Worker(name, folder)
    if worker.load_error is not None:
        if any(p.level == "error" for p in problems):  # the cause is named above already
            last = worker.load_error.traceback.strip().splitlines()[-1]
            if not last.startswith("handlerkit.errors.ModelLoadError"):  # else: the same words
                problems.append(
                    Problem("error", f"TorchServe's worker raised: {last}", "see above")
                )
        else:
            problems.append(_explain(worker.load_error, folder.path, folder.manifest))
        worker.close()
        return _unique(problems), None
    problems += _answer_problems(folder.path, worker)
    problems += _dry_request_problems(name, worker)
    return _unique(problems), worker


def _static_problems(path: Path, manifest: dict) -> list[Problem]:
    model = manifest.get("model", {})
    problems = []
    serialized = model.get("serializedFile")
    if serialized and not (path / serialized).is_file():
        problems.append(
            Problem(
                "error",
                f"the manifest names weights file {serialized!r}, which is not in the archive",
                "archive again with --serialized-file pointing at the weights",
            )
        )
    model_file = model.get("modelFile")
    if model_file:
        problems += _class_count_problems(path / model_file, "model file", "the nn.Module class")
    if not model_file and not serialized and _uses_base_handler(path, model.get("handler", "")):
        problems.append(
            Problem(
                "error",
                "the archive has neither a model file nor weights, but its handler loads a model",
                "add --model-file model.py and --serialized-file weights.pt (state_dict), "
                "or a TorchScript .pt as --serialized-file",
            )
        )
    handler_file = _handler_file(path, model.get("handler", ""))
    if handler_file is not None:
        function = model["handler"].partition(":")[2] or ENTRY_FUNCTION
        tree = _parse(handler_file)
        if tree is not None and not _defines_function(tree, function):
            problems += _class_count_problems(handler_file, "handler file", "the handler class")
    return problems


def _class_count_problems(file: Path, role: str, what: str) -> list[Problem]:
    if not file.is_file():
        return [Problem("error", f"the {role} {file.name} is missing", f"add {file.name}")]
    tree = _parse(file)
    if tree is None:
        return [
            Problem("error", f"{file.name} is not valid Python", f"fix the syntax of {file.name}")
        ]
    classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    if len(classes) == 1:
        return []
    if not classes:
        return [
            Problem(
                "error",
                f"the {role} {file.name} defines no class"
                + (" and no handle(data, context) function" if role == "handler file" else ""),
                f"define {what} in {file.name}"
                + (", or a module-level handle(data, context)" if role == "handler file" else ""),
            )
        ]
    return [
        Problem(
            "error",
            f"the {role} {file.name} defines {len(classes)} classes ({', '.join(classes)}); "
            "TorchServe instantiates exactly one",
            f"keep {what} in {file.name} and import the others from another module",
        )
    ]


def _answer_problems(path: Path, worker: Worker) -> list[Problem]:
    """Problems that do not stop loading but change the answers."""
    problems = []
    if _answers_with_labels(worker.entry) and not (path / "index_to_name.json").is_file():
        problems.append(
            Problem(
                "warning",
                "no index_to_name.json: answers name class indices, not labels",
                'add index_to_name.json ({"0": "label", ...}) as an --extra-files',
            )
        )
    return problems


def _dry_request_problems(name: str, worker: Worker) -> list[Problem]:
    """Two sample requests (a grey digit PNG, a colour JPEG photo): a handler that fails on both
    with a 5xx will most likely fail on every request."""
    failures, mapping_missing = [], False
    for what, body in _sample_images():
        request = request_input("check", body, {}, Route("predictions", name))
        reply = worker.predict([request])
        status = reply.predictions[0].status if reply.predictions else reply.code
        if status < 500:
            return []
        error = worker.last_error
        cause = f"{error.stage}: {error.message.splitlines()[0]}" if error else reply.message
        failures.append(f"{what} got {status} ({cause})")
        mapping_missing |= "NoneType" in cause and getattr(worker.entry, "mapping", "") is None
    fix = "run one request with `python -m handlerkit run MODEL IMAGE` and read the traceback"
    if mapping_missing:
        failures.append("the handler reads self.mapping, which is None: no index_to_name.json")
        fix = 'add index_to_name.json ({"0": "label", ...}), or check for None in postprocess'
    return [Problem("error", "loads, but fails on " + "; ".join(failures), fix)]


def _sample_images() -> list[tuple[str, bytes]]:
    """A 28x28 grey PNG with a stroke, and a 224x224 colour JPEG: what most models take."""
    import io

    from PIL import Image, ImageDraw

    digit = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(digit).line([(14, 4), (14, 24)], fill=255, width=3)
    photo = Image.linear_gradient("L").resize((224, 224)).convert("RGB")
    out = []
    for what, image, kind in (("a digit PNG", digit, "PNG"), ("a photo JPEG", photo, "JPEG")):
        buffer = io.BytesIO()
        image.save(buffer, kind)
        out.append((what, buffer.getvalue()))
    return out


def _answers_with_labels(handler) -> bool:
    """True when the handler's postprocess is an ImageClassifier's (ts's or handlerkit's)."""
    from ts.torch_handler.image_classifier import ImageClassifier as TsImageClassifier

    from ..handlers.image_classifier import ImageClassifier

    postprocess = getattr(type(handler), "postprocess", None)
    return postprocess in (TsImageClassifier.postprocess, ImageClassifier.postprocess)


# What ts raises while loading, and what it means: (pattern, message, fix).
KNOWN_ERRORS = [
    (
        r"Expected only one class in custom service code or a function entry point",
        "the handler file defines several classes (or none) and no handle() function",
        "keep one handler class in the handler file, or add handle(data, context)",
    ),
    (
        r"Expected only one class as model definition",
        "the model file defines several classes; TorchServe instantiates exactly one",
        "keep the nn.Module class in model.py and import helpers from another module",
    ),
    (
        r"Missing the model.py file",
        "the manifest names a model file that is not in the archive",
        "archive with --model-file pointing at the file",
    ),
    (
        r"Error\(s\) in loading state_dict",
        "the weights do not fit the model class (different layers or shapes)",
        "save the weights with torch.save(model.state_dict(), path) from this model class",
    ),
    (
        r"No module named 'ts\.torch_handler\.",
        "the handler could not be imported, so TorchServe looked for a builtin of that name",
        "run `python -c 'import <handler module>'` in the model folder: the handler file "
        "itself raised ImportError (a missing package or a typo in its imports)",
    ),
    (
        r"No module named",
        "a module the handler or model imports is not installed",
        "install it (pip install ...) or add it with --requirements-file",
    ),
    (
        r"No model weights could be loaded",
        "there is no model file and the weights are not TorchScript (.pt)",
        "add --model-file model.py for a state_dict, or save TorchScript as a .pt",
    ),
    (
        r"Expect handle method in class",
        "the handler class has no handle method",
        "subclass ts.torch_handler.base_handler.BaseHandler, or define handle(self, data, ctx)",
    ),
]


def _explain(error, path: Path, manifest: dict) -> Problem:
    text = f"{error.message}\n{error.traceback}"
    last = error.traceback.strip().splitlines()[-1] if error.traceback else error.message
    for pattern, message, fix in KNOWN_ERRORS:
        if re.search(pattern, text):
            if "No module named 'ts.torch_handler." in text:
                message += f" ({_handler_import_error(path, manifest)})"
            return Problem("error", f"{message}. TorchServe's worker raised: {last}", fix)
    return Problem(
        "error",
        f"loading raised in {error.stage}: {last}",
        "read the traceback (handlerkit.offline.OfflineServer(...).load_error(name))",
    )


def _handler_import_error(path: Path, manifest: dict) -> str:
    """Why the handler file itself fails to import (ts hides it behind the builtin lookup)."""
    handler_file = _handler_file(path, manifest.get("model", {}).get("handler", ""))
    if handler_file is None:
        return "no such handler file or builtin"
    spec = importlib.util.spec_from_file_location("_handlerkit_check_handler", handler_file)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path))
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - the point is to report it
        return f"{handler_file.name} raised {type(err).__name__}: {err}"
    finally:
        sys.path.remove(str(path))
    return f"{handler_file.name} imports without error"


def _handler_file(path: Path, handler: str) -> Path | None:
    file = handler.partition(":")[0]
    if not file or file in BUILTIN_HANDLERS:
        return None
    candidate = path / (file if file.endswith(".py") else f"{file}.py")
    return candidate if candidate.is_file() else None


def _uses_base_handler(path: Path, handler: str) -> bool:
    if handler.partition(":")[0] in BUILTIN_HANDLERS:
        return True
    file = _handler_file(path, handler)
    return file is not None and "torch_handler" in file.read_text(errors="replace")


def _parse(file: Path) -> ast.Module | None:
    try:
        return ast.parse(file.read_text())
    except SyntaxError:
        return None


def _defines_function(tree: ast.Module, name: str) -> bool:
    return any(isinstance(n, ast.FunctionDef) and n.name == name for n in tree.body)


def _unique(problems: list[Problem]) -> list[Problem]:
    seen, kept = set(), []
    for problem in problems:
        if problem.message not in seen:
            seen.add(problem.message)
            kept.append(problem)
    return kept
