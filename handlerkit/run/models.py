"""What to serve and how: `NAME=MODEL` specs and the settings every engine shares.

First step of `python -m handlerkit serve`: the command line becomes these, then an engine runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..serving.model_folder import DEFAULT_VERSION, version_of
from ..serving.versions import Key, Versions

ENGINES = ("torchserve", "litserve", "ray")
HOST = "127.0.0.1"  # every server handlerkit starts listens on this address only
RESPONSE_TIMEOUT_S = 120  # TorchServe's default_response_timeout (a model's responseTimeout)


@dataclass(frozen=True)
class ModelSpec:
    """One model to serve: its name in `/predictions/{name}`, a `.mar` or a model folder, and
    how its requests are batched (TorchServe's `batch_size` and `max_batch_delay` in ms).
    `version`: its manifest's (a model folder's: "1.0"); several versions of a name are served
    side by side, at `/predictions/{name}/{version}`."""

    name: str
    source: Path
    handler: str | None = None  # for a model folder: what `torch-model-archiver --handler` takes
    batch_size: int = 1
    max_batch_delay: int = 100
    version: str = DEFAULT_VERSION

    @property
    def key(self) -> Key:
        return self.name, self.version


@dataclass(frozen=True)
class Settings:
    """How an engine serves the models (TorchServe's names and defaults where it has them).

    Attributes:
        port: The inference API's port.
        host: The address to listen on (loopback unless you mean to expose it).
        replicas: Workers (TorchServe, LitServe) or replicas (Ray Serve) per model.
        address: Ray only: the cluster to join (`auto`, `ray://host:10001`); None starts one here.
        response_timeout: Seconds a batch may compute before its worker is killed and restarted
            and its requests answered "Worker died." (TorchServe's `default_response_timeout`).
        token_auth, model_api: TorchServe only: its token authorization and model API.
        service_envelope: TorchServe's `service_envelope` ("kserve", "kservev2"), or None.
        open_inference_protocol: TorchServe's `ts_open_inference_protocol`: KServe v2's server
            routes (`/v2/health/live`, `/v2/health/ready`, `/v2`) answer.
        metrics_port: The metrics API's port (`/metrics`), TorchServe's `metrics_address`'s.
        metrics_mode: TorchServe's `metrics_mode`: "prometheus" writes the counters at
            `/metrics`; "log" (its default) writes nothing there.
    """

    port: int = 8080
    host: str = HOST
    replicas: int = 1
    address: str | None = None
    response_timeout: float = RESPONSE_TIMEOUT_S
    token_auth: bool = True  # TorchServe's default; its engine only (the others have no keys)
    model_api: bool = False  # TorchServe's default: no registration over HTTP
    service_envelope: str | None = None  # TorchServe's default: the request as it came
    open_inference_protocol: bool = False
    metrics_port: int = 8082  # TorchServe's
    metrics_mode: str = "log"  # TorchServe's default


def parse_models(
    items: list[str],
    handler: str | None = None,
    batch_size: int | Mapping[str, int] = 1,
    max_batch_delay: int | Mapping[str, int] = 100,
) -> list[ModelSpec]:
    """`["mnist=data/mnist", "dn=densenet.mar"]` -> model specs; each source must exist.

    A name given twice serves two versions side by side, as TorchServe's `--models m=a.mar
    m=b.mar` (each `.mar` its own manifest version); the first is the default.
    `batch_size` and `max_batch_delay`: one value for every model, or {name: value} (the
    others keep TorchServe's defaults, 1 and 100 ms); every version of a name gets its value.
    """
    specs = []
    for item in items:
        name, sep, source = item.partition("=")
        if not sep or not name or not source:
            raise ValueError(f"{item!r} is not NAME=MODEL: write e.g. mnist=data/mnist")
        path = Path(source).expanduser().resolve()
        if not path.exists():
            raise FileNotFoundError(f"{source} does not exist: pass a .mar file or a model folder")
        size, delay = setting_for(batch_size, name, 1), setting_for(max_batch_delay, name, 100)
        if size < 1 or delay < 0:
            raise ValueError(f"{name}: batch size {size} and delay {delay} ms: use >= 1 and >= 0")
        folder_handler = handler if path.is_dir() else None
        specs.append(ModelSpec(name, path, folder_handler, size, delay, version_of(path)))
    names = [spec.name for spec in specs]
    served(specs)  # the same version of a name twice: a clear error now, not at the first request
    for setting in (batch_size, max_batch_delay):
        unknown = set(setting) - set(names) if isinstance(setting, Mapping) else set()
        if unknown:
            raise ValueError(f"batch settings name {sorted(unknown)}, not served here: {names}")
    return specs


def served(specs: list[ModelSpec]) -> Versions:
    """The frontend's table of what `specs` serve: each name's versions, the first the default."""
    return Versions(spec.key for spec in specs)


def per_model(values: list[str] | None, default: int) -> int | dict[str, int]:
    """Command-line values such as `["8"]` or `["mnist=8", "dn=2"]` -> 8 or {name: value}."""
    if not values:
        return default
    plain = [v for v in values if "=" not in v]
    named = dict(v.split("=", 1) for v in values if "=" in v)
    if plain and named or len(plain) > 1:
        raise ValueError(f"{values}: give one number for every model, or NAME=NUMBER per model")
    try:
        return int(plain[0]) if plain else {name: int(v) for name, v in named.items()}
    except ValueError:
        raise ValueError(f"{values}: the values must be whole numbers") from None


def setting_for(setting, name: str, default=None):
    """One model's value of a setting given as one value for every model or as {name: value}."""
    return setting.get(name, default) if isinstance(setting, Mapping) else setting
