"""`python -m handlerkit serve NAME=MODEL ... --engine {torchserve,litserve,ray}`: the command.

Parses the command line into `ModelSpec`s and `Settings`, then runs the engine in the foreground
until Ctrl-C; each engine's module is imported only when it is chosen.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from ..serving import metrics
from ..serving.kserve import ENVELOPES
from .asgi import bind
from .cli import opens
from .models import (
    ENGINES,
    HOST,
    RESPONSE_TIMEOUT_S,
    ModelSpec,
    Settings,
    parse_models,
    per_model,
    served,
)

READY = "Ctrl-C stops"  # printed once every model is registered (TorchServe) or deployed (Ray)
EXTRAS = {"litserve": "litserve", "ray": "ray"}  # engine -> the pip extra that installs it


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `serve` command to `python -m handlerkit`'s subcommands."""
    parser = subparsers.add_parser(
        "serve",
        help="serve models behind TorchServe's inference API on TorchServe, LitServe or Ray Serve",
        description="Serve .mar files or model folders behind TorchServe's inference API.",
    )
    parser.add_argument(
        "models",
        nargs="+",
        metavar="NAME=MODEL",
        help="a .mar or model folder; a NAME twice serves two versions (the first: default)",
    )
    parser.add_argument("--engine", choices=ENGINES, default="torchserve")
    parser.add_argument("--port", type=int, default=8080, help="inference API port")
    parser.add_argument("--host", default=HOST, help=f"address to listen on (default {HOST})")
    parser.add_argument(
        "--batch-size",
        action="append",
        metavar="B|NAME=B",
        help="largest batch per handle call (default 1), for every model or NAME=B per model",
    )
    parser.add_argument(
        "--max-batch-delay",
        action="append",
        metavar="MS|NAME=MS",
        help="ms to wait to fill a batch (default 100), for every model or NAME=MS per model",
    )
    parser.add_argument("--replicas", type=int, default=1, help="workers/replicas per model")
    parser.add_argument("--address", help="ray: the cluster to join (e.g. auto)")
    parser.add_argument(
        "--response-timeout",
        type=float,
        default=RESPONSE_TIMEOUT_S,
        metavar="S",
        help="seconds a batch may compute before its worker is restarted (default 120)",
    )
    parser.add_argument("--handler", help="for model folders: a builtin name or handler file")
    parser.add_argument(
        "--disable-token-auth",
        action="store_true",
        help="torchserve: no keys needed (TorchServe's default: keys in key_file.json)",
    )
    parser.add_argument(
        "--enable-model-api",
        action="store_true",
        help="torchserve: allow registering models over HTTP (TorchServe's default: off)",
    )
    parser.add_argument(
        "--service-envelope",
        choices=ENVELOPES,
        help="TorchServe's service_envelope: requests and answers in KServe v1 (kserve) or v2 "
        "(kservev2) form, on every route (default: as they come)",
    )
    parser.add_argument(
        "--open-inference-protocol",
        action="store_true",
        help="TorchServe's ts_open_inference_protocol: answer /v2, /v2/health/live and ready",
    )
    parser.add_argument(
        "--metrics-port", type=int, default=8082, help="metrics API port (/metrics)"
    )
    parser.add_argument(
        "--metrics-mode",
        choices=metrics.MODES,
        default="log",
        help="TorchServe's metrics_mode: prometheus writes the counters at /metrics",
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 0 on Ctrl-C, 2 when the command line names something missing
    or the port is taken."""
    try:
        specs = parse_models(
            args.models,
            args.handler,
            per_model(args.batch_size, 1),
            per_model(args.max_batch_delay, 100),
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"handlerkit serve: {error}", file=sys.stderr)
        return 2
    if not all(opens("serve", spec.source, spec.name, spec.handler) for spec in specs):
        return 2
    settings = Settings(
        args.port,
        args.host,
        args.replicas,
        args.address,
        args.response_timeout,
        not args.disable_token_auth,
        args.enable_model_api,
        args.service_envelope,
        args.open_inference_protocol,
        args.metrics_port,
        args.metrics_mode,
    )
    for option, port in (("--port", settings.port), ("--metrics-port", settings.metrics_port)):
        busy = _cannot_listen(settings.host, port)
        if busy:  # before any engine starts: they would fail later, and less clearly
            print(
                f"handlerkit serve: cannot listen on {busy}: choose another {option}",
                file=sys.stderr,
            )
            return 2
    if args.engine == "ray" and args.address:
        use_cluster_token()
    elif args.engine == "ray":
        keep_local_ray_on_loopback()
    run_forever = _engine(args.engine)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` cleans up as Ctrl-C does
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:  # a shell's background job (`&`)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C (SIGINT) still stops
    try:
        run_forever(specs, settings, ready=lambda: _announce(args.engine, specs, settings))
    except KeyboardInterrupt:
        pass
    return 0


def serve_main(argv: list[str] | None = None) -> int:
    """`serve`'s command line on its own: `serve_main(["mnist=data/mnist", "--engine", "ray"])`."""
    parser = argparse.ArgumentParser(prog="python -m handlerkit")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)]))


def use_cluster_token() -> None:
    """Joining a Ray cluster: send its token, as the nodes `ray start` joins do.

    `ray start` turns token authentication on and keeps the token in ~/.ray/auth_token (or
    RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH), but a driver that joins by address uses it only when
    RAY_AUTH_MODE says "token" (else the cluster refuses it). Ray reads that setting once, when it
    is imported, so this runs before. An explicit RAY_AUTH_MODE is kept.
    """
    if "RAY_AUTH_MODE" in os.environ:
        return
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or path.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


def keep_local_ray_on_loopback() -> None:
    """A local Ray: its node address stays 127.0.0.1, so every Ray process listens there.

    Ray 2.60's `ray.init(_node_ip_address="127.0.0.1")` swaps a loopback address for the
    machine's (`resolve_ip_for_localhost`), and Ray's gRPC servers then listen on every
    interface, unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER is 0 (Ray's single-machine mode, the
    default on macOS and Windows; it refuses only `ray start --address`). Ray reads it once, when
    it is imported, so this runs before; Ray's processes inherit it.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


def _cannot_listen(host: str, port: int) -> str | None:
    """Why the inference API could not listen on host:port (in use, say), or None."""
    try:
        bind(host, port).close()
    except OSError as error:
        return f"{host}:{port} ({error.strerror})"
    return None


def _engine(engine: str):
    try:
        if engine == "litserve":
            from .litserve import run_forever
        elif engine == "ray":
            from .ray import run_forever
        else:
            from .torchserve.app import run_forever
    except ImportError as error:
        extra = EXTRAS.get(engine, "serve")
        sys.exit(f"--engine {engine} needs {error.name}: pip install 'handlerkit[{extra}]'")
    return run_forever


def _announce(engine: str, specs: list[ModelSpec], settings: Settings) -> None:
    base = f"http://{settings.host}:{settings.port}"
    print(f"handlerkit serve on {engine}: {READY}", flush=True)
    table = served(specs)
    for spec in specs:
        batch = f"batch_size {spec.batch_size}, max_batch_delay {spec.max_batch_delay} ms"
        path = f"/predictions/{spec.name}"
        if len(table.of(spec.name)) > 1:  # versions side by side: each at its own path
            default = table.default(spec.name) == spec.version
            path += f"/{spec.version}" + (f" (and {path}: default)" if default else "")
        print(f"  POST {base}{path}  <- {spec.source} ({batch})", flush=True)


def _interrupt(signum, frame) -> None:
    if os.getpid() != _MAIN_PID:  # an engine's forked child: die as it would have
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise KeyboardInterrupt


_MAIN_PID = os.getpid()
