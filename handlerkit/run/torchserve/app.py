"""TorchServe itself, for `--engine torchserve`: the models archived into a store and served.

The reference the other engines are measured against, through `handlerkit.serve` (Java, 127.0.0.1).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from ...serving.model_folder import mar_bytes
from ..models import HOST, ModelSpec, Settings
from .server import TorchServe


def store_models(specs: list[ModelSpec], store: Path) -> dict[str, list[str]]:
    """Put each model into `store` as `NAME.mar` (a second version as `NAME-VERSION.mar`); name
    -> its file names, the default version's first. A folder is laid out as on the other
    engines (`mar_bytes`), so every engine serves the same folders."""
    mars: dict[str, list[str]] = {}
    for spec in specs:
        file_name = f"{spec.name}-{spec.version}.mar" if spec.name in mars else f"{spec.name}.mar"
        (store / file_name).write_bytes(mar_bytes(spec.source, spec.name, spec.handler))
        mars.setdefault(spec.name, []).append(file_name)
    return mars


def announce_ports(server: TorchServe) -> None:
    """Every port the server opened, and what guards it (TorchServe's token, its model API)."""
    keys = server.folder / "key_file.json" if server.token_auth else None
    guard = f"token in {keys}" if keys else "no token"
    api = "model API on: registers any .mar" if server.model_api else "model API off"
    ports = server.ports
    print(f"  management http://{HOST}:{ports['management']}  ({guard}; {api})")
    print(f"  metrics    http://{HOST}:{ports['metrics']}")
    print(
        f"  gRPC       {HOST}:{ports['grpc_inference']} (inference, management on "
        f"{ports['grpc_management']})"
    )
    if keys:
        print(f"  inference needs: Authorization: Bearer {server.token('inference')}")
    print("", end="", flush=True)


def _extra_config(settings: Settings) -> dict[str, str]:
    """TorchServe's own keys for the KServe and metrics settings."""
    config = {"metrics_mode": settings.metrics_mode}
    if settings.service_envelope:
        config["service_envelope"] = settings.service_envelope
    if settings.open_inference_protocol:
        config["ts_open_inference_protocol"] = "true"
    return config


def run_forever(specs: list[ModelSpec], settings: Settings, ready=None) -> None:
    """Serve `specs` with a real TorchServe in the foreground until interrupted (Ctrl-C)."""
    if settings.host != HOST:
        raise ValueError(f"handlerkit runs TorchServe on {HOST} only; leave --host out")
    if settings.address:
        raise ValueError("--address joins a Ray cluster: use it with --engine ray")
    store = Path(tempfile.mkdtemp(prefix="handlerkit-store-"))
    try:
        mars = store_models(specs, store)
        batching = {
            spec.name: {
                "batch_size": spec.batch_size,
                "max_batch_delay": spec.max_batch_delay,
                "response_timeout": int(settings.response_timeout),
            }
            for spec in specs
        }
        server = TorchServe(
            store,
            mars,
            workers=settings.replicas,
            ports={"inference": settings.port, "metrics": settings.metrics_port},
            token_auth=settings.token_auth,
            model_api=settings.model_api,
            model_settings=batching,
            config=_extra_config(settings),
        )
        with server:
            if ready is not None:
                ready()
                announce_ports(server)
            while server.running:
                time.sleep(0.5)
    finally:
        shutil.rmtree(store, ignore_errors=True)
