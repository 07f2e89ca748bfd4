"""The TorchServe process: find Java, pick free ports, write its config, launch it, stop its group.

`TorchServe.start` and `stop` call these; they know about processes and ports, not about models.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from ... import requirements
from ..models import HOST
from .client import REQUEST_TIMEOUT_S
from .errors import ServeError

PORT_NAMES = ("inference", "management", "metrics", "grpc_inference", "grpc_management")
STOP_GRACE_S = 20.0


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
    ports, held = dict(fixed), []
    try:
        for endpoint in PORT_NAMES:
            if endpoint not in ports:
                sock = socket.socket()
                sock.bind((HOST, 0))
                held.append(sock)
                ports[endpoint] = sock.getsockname()[1]
    finally:
        for sock in held:
            sock.close()
    return ports


def port_in_use(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) == 0


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


def launch(
    workdir: Path,
    log_dir: Path,
    model_store: Path,
    config: Path,
    log_config: Path,
    java: str,
    token_auth: bool = False,
    model_api: bool = True,
) -> subprocess.Popen:
    """Start ``torchserve --foreground`` in its own process group inside the work folder."""
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
    command = [
        *_torchserve_command(),
        "--start", "--foreground", "--ncs",
        "--model-store", str(model_store),
        "--ts-config", str(config),
        "--log-config", str(log_config),
    ]  # fmt: skip
    command += [] if token_auth else ["--disable-token-auth"]
    command += ["--enable-model-api"] if model_api else []
    console = open(workdir / "console.log", "wb")  # noqa: SIM115
    try:
        return subprocess.Popen(
            command, cwd=folder, env=env, stdin=subprocess.DEVNULL,
            stdout=console, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    finally:
        console.close()


def stop_group(process: subprocess.Popen) -> None:
    """Stop the server's process group: SIGTERM, a grace period, then SIGKILL.

    Java and the Python workers get SIGTERM first, so the ``torchserve`` launcher (the group
    leader) reaps Java and exits by itself; no zombie ``java`` is left to the init process.
    """
    group = process.pid
    children = group_members(group) - {group}
    for pid in children:
        _signal(pid, signal.SIGTERM)
    if not children or not _wait_gone(process, STOP_GRACE_S):
        _signal_group(group, signal.SIGTERM)
        if not _wait_gone(process, 5):
            _signal_group(group, signal.SIGKILL)
            _wait_gone(process, 10)


def _wait_gone(process: subprocess.Popen, seconds: float) -> bool:
    """Reap the launcher and wait until no live process of its group is left."""
    deadline = time.monotonic() + seconds
    while process.poll() is None or group_members(process.pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_group(group: int, sig: signal.Signals) -> None:
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_members(group: int) -> set[int]:
    """Return the live (non-zombie) processes of a process group."""
    if not Path("/proc").is_dir():  # macOS: only ask whether the group still exists
        try:
            os.killpg(group, 0)
        except (ProcessLookupError, PermissionError):
            return set()
        return {group}
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            members.add(int(stat.parent.name))
    return members
