"""The TorchServe process: find Java, pick its ports, write its config, its command and environment.

`TorchServe.start` calls these, then starts the command with `run.launcher`; none knows models.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from ... import requirements
from ..launcher import free_ports, port_in_use
from ..models import HOST
from .client import REQUEST_TIMEOUT_S
from .errors import ServeError

PORT_NAMES = ("inference", "management", "metrics", "grpc_inference", "grpc_management")


def find_java() -> str:
    """Return the java executable (17+), or raise `ServeError` saying how to install it."""
    try:
        return requirements.find_java()
    except requirements.Missing as missing:
        raise ServeError(f"TorchServe {missing}".replace(" this needs ", " needs ")) from None


def _torchserve_command() -> list[str]:
    """Return the command that runs the ``torchserve`` launcher, preferably this Python's."""
    beside = Path(sys.executable).with_name("torchserve")
    if beside.is_file():
        return [str(beside)]
    if importlib.util.find_spec("ts") is not None:
        return [sys.executable, "-m", "ts.model_server"]
    script = shutil.which("torchserve")
    if script is None:
        raise ServeError("torchserve is not installed: pip install torchserve")
    return [script]


def choose_ports(fixed: Mapping[str, int]) -> dict[str, int]:
    """Return one free 127.0.0.1 port per endpoint; fixed ports must be free."""
    unknown = set(fixed) - set(PORT_NAMES)
    if unknown:
        raise ServeError(f"unknown port names {sorted(unknown)}: use {', '.join(PORT_NAMES)}")
    for endpoint, port in fixed.items():
        if port_in_use(port):
            raise ServeError(
                f"{endpoint} port {port} on {HOST} is already in use: stop what listens "
                "there, or leave it out of ports= to pick a free one"
            )
    free = [endpoint for endpoint in PORT_NAMES if endpoint not in fixed]
    # Fixed ports are not held yet, so the system may offer one of them again: drop those.
    offered = [port for port in free_ports(len(free) + len(fixed)) if port not in fixed.values()]
    return {**fixed, **dict(zip(free, offered[: len(free)], strict=True))}


def write_config(
    workdir: Path,
    ports: Mapping[str, int],
    model_store: Path,
    workers: int,
    startup_timeout: float,
    token_auth: bool = False,
    model_api: bool = True,
    startup_models: Mapping[str, list[dict]] | None = None,
    extra: Mapping[str, str] | None = None,
) -> Path:
    """Write the ``config.properties`` that keeps TorchServe local, quick and quiet.

    `token_auth` and `model_api` are TorchServe's own switches (its defaults: on, off);
    `startup_models` (name -> each version's settings, with `marName` and `version`) load at
    start, the way to serve models when the model API (registration) is off; `extra` keys are
    written last (a later key wins)."""
    cores = os.cpu_count() or 1
    lines = [
        f"inference_address=http://{HOST}:{ports['inference']}",
        f"management_address=http://{HOST}:{ports['management']}",
        f"metrics_address=http://{HOST}:{ports['metrics']}",
        f"grpc_inference_address={HOST}",
        f"grpc_inference_port={ports['grpc_inference']}",
        f"grpc_management_address={HOST}",
        f"grpc_management_port={ports['grpc_management']}",
        f"disable_token_authorization={str(not token_auth).lower()}",
        f"enable_model_api={str(model_api).lower()}",
        "enable_envvars_config=false",
        f"model_store={model_store}",
        f"default_workers_per_model={workers}",
        "install_py_dep_per_model=false",
        "disable_system_metrics=true",
        f"number_of_netty_threads={max(2, cores)}",
        f"netty_client_threads={max(2, cores)}",
        "job_queue_size=1000",
        f"default_startup_timeout={int(startup_timeout)}",
        f"default_response_timeout={int(REQUEST_TIMEOUT_S)}",
        "unregister_model_timeout=30",
        "vmargs=-Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1",
    ]
    if startup_models:  # name -> its versions' settings; the first loaded is the default
        loads = ",".join(
            f"{name}={m['marName']}" for name, versions in startup_models.items() for m in versions
        )
        models = {
            name: {m["version"]: {k: v for k, v in m.items() if k != "version"} for m in versions}
            for name, versions in startup_models.items()
        }
        lines += [f"load_models={loads}", f"models={json.dumps(models)}"]
    lines += [f"{key}={value}" for key, value in (extra or {}).items()]
    path = workdir / "config.properties"
    path.write_text("\n".join(lines) + "\n")
    return path


def command(
    model_store: Path, config: Path, log_config: Path, token_auth: bool, model_api: bool
) -> list[str]:
    """The ``torchserve --foreground`` command line for one server."""
    argv = [
        *_torchserve_command(),
        "--start", "--foreground", "--ncs",
        "--model-store", str(model_store),
        "--ts-config", str(config),
        "--log-config", str(log_config),
    ]  # fmt: skip
    argv += [] if token_auth else ["--disable-token-auth"]
    argv += ["--enable-model-api"] if model_api else []
    return argv


def environment(workdir: Path, log_dir: Path, java: str) -> dict[str, str]:
    """This process's environment for the server: its logs, temp files, Java; no `TS_` setting."""
    folder = str(workdir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TS_")}
    env.update(
        LOG_LOCATION=str(log_dir),
        METRICS_LOCATION=str(log_dir),
        TMPDIR=folder,  # torchserve's pid file: one per server, not one per machine
        TEMP=folder,  # java.io.tmpdir: worker sockets and unpacked .mar files
        TMP=folder,
        JAVA_HOME=str(Path(java).resolve().parent.parent),
    )
    return env
