"""Context: a stand-in for the object TorchServe hands to `initialize` and `handle`.

It carries the model folder, the device id, the manifest and per-request headers/statuses, so a
handler runs in a notebook with no server, unchanged from how it runs inside TorchServe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The weights files a model folder may hold: a state_dict or TorchScript, as torch saves them.
WEIGHT_SUFFIXES = (".pt", ".pth")


@dataclass
class MetricRecord:
    """One metric a handler reported, e.g. HandlerTime in ms."""

    name: str
    value: float
    idx: Any = None
    unit: str = "ms"


class Metrics:
    """Collects what a handler reports through `context.metrics` (TorchServe's MetricsStore API)."""

    def __init__(self) -> None:
        self.records: list[MetricRecord] = []

    def add_time(self, name: str, value: float, idx: Any = None, unit: str = "ms") -> None:
        self.records.append(MetricRecord(name, value, idx, unit))

    def add_counter(self, name: str, value: float, idx: Any = None, dimensions: Any = None) -> None:
        self.records.append(MetricRecord(name, value, idx, "count"))

    def last(self, name: str) -> MetricRecord | None:
        """The newest record called `name`, or None."""
        return next((r for r in reversed(self.records) if r.name == name), None)


@dataclass
class Context:
    """What TorchServe tells a handler about its model and its requests.

    Attributes mirror `ts.context.Context`: `system_properties` (model_dir, gpu_id, batch_size,
    limit_max_image_pixels, ...), `manifest` ({"model": {modelName, serializedFile, modelFile,
    handler}}), `metrics` (with `add_time`), request headers and per-request response statuses.
    """

    model_name: str
    model_dir: str
    manifest: dict
    gpu_id: int | None = None
    batch_size: int = 1
    limit_max_image_pixels: bool | int = True
    model_yaml_config: dict = field(default_factory=dict)
    request_headers: list[dict] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)
    response_status: dict[int, tuple[int, str]] = field(default_factory=dict)

    @property
    def system_properties(self) -> dict:
        return {
            "model_dir": self.model_dir,
            "gpu_id": self.gpu_id,
            "batch_size": self.batch_size,
            "server_name": "handlerkit",
            "server_version": "local",
            "limit_max_image_pixels": self.limit_max_image_pixels,
        }

    @classmethod
    def local(
        cls,
        model_dir: str | Path,
        gpu_id: int | None = None,
        batch_size: int = 1,
        model_name: str | None = None,
        serialized_file: str | None = None,
        model_file: str | None = None,
        handler: str | None = None,
        limit_max_image_pixels: bool | int = True,
    ) -> Context:
        """A context for a TorchServe-style model folder, as TorchServe would build it.

        The manifest comes from `MAR-INF/MANIFEST.json` when the folder has one; otherwise it
        is inferred: `model.py` (if present) is the model file and the single weights file
        (`*.pt`, `*.pth`) is the serialized file. Arguments override what was found.
        """
        model_dir = Path(model_dir).resolve()
        if not model_dir.is_dir():
            raise FileNotFoundError(f"model folder {model_dir} does not exist")
        manifest = _read_manifest(model_dir)
        model = manifest.setdefault("model", {})
        model.setdefault("modelName", model_name or model_dir.name)
        if serialized_file:
            model["serializedFile"] = serialized_file
        elif "serializedFile" not in model:
            weights = weights_file(model_dir, "keep one or pass serialized_file=...")
            if weights:
                model["serializedFile"] = weights
        if model_file is not None:
            model["modelFile"] = model_file
        elif "modelFile" not in model and (model_dir / "model.py").is_file():
            model["modelFile"] = "model.py"
        if handler:
            model["handler"] = handler
        return cls(
            model_name=model_name or model["modelName"],
            model_dir=str(model_dir),
            manifest=manifest,
            gpu_id=gpu_id,
            batch_size=batch_size,
            limit_max_image_pixels=limit_max_image_pixels,
        )

    def for_requests(self, headers: list[dict]) -> Context:
        """Set the headers of the next batch (one dict per request) and clear old statuses."""
        self.request_headers = [dict(h) for h in headers]
        self.new_batch()
        return self

    def new_batch(self) -> None:
        """Forget the last batch's response statuses: a new batch starts.

        TorchServe's server gives each batch fresh statuses; `BaseHandler.handle` calls this
        on handlerkit's Context, so one Context can serve batch after batch.
        """
        self.response_status = {}

    def get_request_header(self, idx: int, key: str) -> str | None:
        if idx < len(self.request_headers):
            return self.request_headers[idx].get(key)
        return None

    def get_request_id(self, idx: int = 0) -> str | None:
        return self.get_request_header(idx, "request_id")

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        """Record the HTTP status for request `idx` (TorchServe sends it with that answer)."""
        self.response_status[idx] = (code, phrase)

    def get_response_status(self, idx: int) -> tuple[int, str]:
        return self.response_status.get(idx, (200, "OK"))


def _read_manifest(model_dir: Path) -> dict:
    path = model_dir / "MAR-INF" / "MANIFEST.json"
    if path.is_file():
        return json.loads(path.read_text())
    return {"model": {}}


def weights_file(model_dir: Path, several: str = "keep one") -> str | None:
    """A model folder's one weights file (`*.pt`, `*.pth`): its manifest's `serializedFile`.

    The one place this rule lives (`Context.local`, the offline server's model folders and
    `archive` call it). None when there is none; ValueError ending with `several` when several.
    """
    found = sorted(p.name for p in model_dir.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    if len(found) > 1:
        raise ValueError(
            f"{model_dir} holds {len(found)} weights files ({', '.join(found)}); {several}"
        )
    return found[0] if found else None
