"""TorchServe itself, for `--engine torchserve`: the models archived into a store and served.

The reference the other engines are measured against, through `handlerkit.serve` (Java, 127.0.0.1).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from ..models import HOST, ModelSpec, Settings
from .archive import archive
from .server import TorchServe


def store_models(specs: list[ModelSpec], store: Path) -> dict[str, str]:
    """Put each model into `store` as `NAME.mar` (a folder is archived); name -> file name."""
    mars = {}
    for spec in specs:
        if spec.source.is_dir():
            mars[spec.name] = archive(spec.source, store, spec.name, handler=spec.handler).name
        else:
            shutil.copyfile(spec.source, store / f"{spec.name}.mar")
            mars[spec.name] = f"{spec.name}.mar"
    return mars


def run_forever(specs: list[ModelSpec], settings: Settings, ready=None) -> None:
    """Serve `specs` with a real TorchServe in the foreground until interrupted (Ctrl-C)."""
    if settings.host != HOST:
        raise ValueError(f"handlerkit runs TorchServe on {HOST} only; leave --host out")
    if settings.address:
        raise ValueError("--address joins a Ray cluster: use it with --engine ray")
    store = Path(tempfile.mkdtemp(prefix="handlerkit-store-"))
    try:
        mars = store_models(specs, store)
        server = TorchServe(store, workers=settings.replicas, ports={"inference": settings.port})
        with server:
            for spec in specs:
                server.register(spec.name, mars[spec.name], spec.batch_size, spec.max_batch_delay)
            if ready is not None:
                ready()
            while server.running:
                time.sleep(0.5)
    finally:
        shutil.rmtree(store, ignore_errors=True)
