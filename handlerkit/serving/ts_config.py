"""A user's TorchServe `config.properties` and `torchserve` flags, read into one settings object.

Ground floor: standard library only. Every runner (TorchServe, LitServe, Ray, offline) can start
from the `TorchServeConfig` built here, so a file written for TorchServe 0.12 means the same.

What is mirrored from TorchServe 0.12 (`frontend/.../util/ConfigManager.java`, `ts/model_server.py`,
`ts/arg_parser.py`; see docs/torchserve_api.md):

- the file is Java properties (`java.util.Properties.load`, read as ISO-8859-1);
- the file is `$TS_CONFIG_FILE` if set, else `--ts-config`, else `./config.properties` if present;
- `$$NAME$$` in a value is replaced by the environment variable NAME (missing -> error);
- the command line (`--model-store`, `--models`, `--disable-token-auth`, `--enable-model-api`)
  overrides the file;
- with `enable_envvars_config=true`, environment variables `TS_<KEY>` override both
  (`TS_ALLOWED_URLS` only when `use_env_allowed_urls=true`);
- defaults: addresses `http://127.0.0.1:8080/8081/8082`, 0 default workers (TorchServe then uses
  one per GPU, else one per CPU), 6553500-byte request limit, 120 s response timeout, model API
  off, token authorization on, metrics mode `log`; per model batch size 1, max batch delay 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_ALLOWED_URLS = "file://.*|http(s)?://.*"
DEFAULT_BATCH_SIZE = 1  # RegisterModelRequest.DEFAULT_BATCH_SIZE
DEFAULT_MAX_BATCH_DELAY = 100  # RegisterModelRequest.DEFAULT_MAX_BATCH_DELAY, milliseconds
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

# Keys that TorchServe 0.12 reads and handlerkit does not act on (yet): kept, reported as ignored.
TORCHSERVE_KEYS_NOT_MIRRORED = frozenset(
    """debug blacklist_env_vars default_startup_timeout unregister_model_timeout
    number_of_netty_threads netty_client_threads job_queue_size number_of_gpu metrics_config
    model_metrics_auto_detect disable_system_metrics ipex_enable cpu_launcher_enable
    cpu_launcher_args ipex_gpu_enable async_logging cors_allowed_origin cors_allowed_methods
    cors_allowed_headers decode_input_request keystore keystore_pass keystore_type
    certificate_file private_key_file max_response_size limit_max_image_pixels
    default_service_handler model_server_home prefer_direct_buffer install_py_dep_per_model
    enable_metrics_api grpc_inference_address grpc_management_address grpc_inference_port
    grpc_management_port grpc_inference_max_connection_age_ms
    grpc_management_max_connection_age_ms grpc_inference_max_connection_age_grace_ms
    grpc_management_max_connection_age_grace_ms enable_grpc_ssl initial_worker_port
    initial_distribution_port workflow_store cpp_log_config ts_open_inference_protocol
    token_expiration_min ts_header_key_sequence_id ts_header_key_sequence_start
    ts_header_key_sequence_end use_native_io io_ratio metric_time_interval model_snapshot
    version system_metrics_cmd use_env_allowed_urls enable_envvars_config vmargs plugins_path
    python tsConfigFile""".split()
)

# The keys read into TorchServeConfig fields of the same name -> how each value is converted.
_READ_KEYS = {
    "inference_address": "address",
    "management_address": "address",
    "metrics_address": "address",
    "model_store": "path",
    "load_models": "load_models",
    "default_workers_per_model": "int",
    "max_request_size": "int",
    "default_response_timeout": "int",
    "enable_model_api": "bool",
    "disable_token_authorization": "bool",
    "service_envelope": "str",
    "metrics_mode": "str",
    "allowed_urls": "str",
    "models": "models",
}
# Keys ConfigManager lets a `TS_<KEY>` variable override (its `TS_*` fields); five differ in name.
_NOT_FROM_ENV = set(
    """use_native_io io_ratio metric_time_interval enable_envvars_config model_snapshot
    models version system_metrics_cmd use_env_allowed_urls vmargs plugins_path python
    tsConfigFile""".split()
)
_ENV_NAMES = {
    f"TS_{key.upper()}": key
    for key in (_READ_KEYS.keys() | TORCHSERVE_KEYS_NOT_MIRRORED) - _NOT_FROM_ENV
    if not key.startswith("ts_") and key != "token_expiration_min"
} | {
    "TS_OPEN_INFERENCE_PROTOCOL": "ts_open_inference_protocol",
    "TS_TOKEN_EXPIRATION_TIME_MIN": "token_expiration_min",
    "TS_HEADER_KEY_SEQUENCE_ID": "ts_header_key_sequence_id",
    "TS_HEADER_KEY_SEQUENCE_START": "ts_header_key_sequence_start",
    "TS_HEADER_KEY_SEQUENCE_END": "ts_header_key_sequence_end",
}
_MODEL_KEYS = {
    "defaultVersion": "default_version",
    "marName": "mar_name",
    "minWorkers": "min_workers",
    "maxWorkers": "max_workers",
    "batchSize": "batch_size",
    "maxBatchDelay": "max_batch_delay",
    "responseTimeout": "response_timeout",
    "startupTimeout": "startup_timeout",
}


_DEFAULT_PORTS = {"inference": (80, 443), "management": (8081, 8444), "metrics": (8082, 8445)}


class ConfigError(ValueError):
    """A config.properties value or flag that TorchServe itself would refuse."""


class ConfigWarning(UserWarning):
    """Keys that are kept but not acted on, and addresses that leave this machine."""


# --------------------------------------------------------------------- the settings


@dataclass(frozen=True)
class Address:
    """One listening address, as TorchServe's `Connector.parse` reads `http://host:port`."""

    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, api: str = "inference") -> Address:
        """Read `http(s)://host[:port]`; without a port, TorchServe's default for the `api`.

        Those defaults are Connector.parse's: inference 80/443, management 8081/8444,
        metrics 8082/8445 (http/https). Unix sockets (`unix:/path`) are refused.
        """
        match = re.fullmatch(r"(https|http)://([^:^/]+)(:([0-9]+))?", text.strip(), re.I)
        if match is None:
            raise ConfigError(f"invalid address {text!r}: write it as http://127.0.0.1:8080")
        scheme, host, port = match.group(1).lower(), match.group(2), match.group(4)
        if port is None:
            port = _DEFAULT_PORTS[api][scheme == "https"]
        if int(port) >= 65535:
            raise ConfigError(f"invalid port number in {text!r}")
        return cls(scheme, host, int(port))

    @property
    def loopback(self) -> bool:
        """True when only this machine can reach the address."""
        return self.host.lower() in LOOPBACK_HOSTS or self.host.startswith("127.")

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class ModelVersionConfig:
    """One entry of `models=`: settings for one version of one model (None: not given)."""

    version: str
    default_version: bool = False
    mar_name: str | None = None
    min_workers: int | None = None
    max_workers: int | None = None
    batch_size: int | None = None
    max_batch_delay: int | None = None
    response_timeout: int | None = None
    startup_timeout: int | None = None
    other: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class TorchServeConfig:
    """What a TorchServe started with this file and these flags would use."""

    inference_address: Address = Address("http", "127.0.0.1", 8080)
    management_address: Address = Address("http", "127.0.0.1", 8081)
    metrics_address: Address = Address("http", "127.0.0.1", 8082)
    model_store: Path | None = None
    load_models: tuple[str, ...] = ()
    default_workers_per_model: int = 0
    max_request_size: int = 6553500
    default_response_timeout: int = 120
    enable_model_api: bool = False
    disable_token_authorization: bool = False
    service_envelope: str | None = None
    metrics_mode: str = "log"
    allowed_urls: str = DEFAULT_ALLOWED_URLS
    models: dict[str, dict[str, ModelVersionConfig]] = field(default_factory=dict)
    default_batch_size: int = DEFAULT_BATCH_SIZE
    default_max_batch_delay: int = DEFAULT_MAX_BATCH_DELAY
    foreground: bool = False
    no_config_snapshots: bool = False
    source: Path | None = None
    ignored: dict[str, str] = field(default_factory=dict)
    unknown: dict[str, str] = field(default_factory=dict)

    def startup_models(self) -> list[tuple[str | None, str]]:
        """`load_models` as (name or None, url) pairs; `[(None, "all")]` for every archive."""
        pairs = []
        for entry in self.load_models:
            name, sep, url = entry.partition("=")
            pairs.append((name, url) if sep else (None, entry))
        return [(name, url) for name, url in pairs if url]

    def model_version(self, name: str, version: str) -> ModelVersionConfig:
        """The `models=` entry for one version of `name`, with TorchServe's defaults filled in.

        Unset numbers are filled in as TorchServe does: batch size 1, max batch delay 100 ms,
        the server's response timeout, `default_workers_per_model` workers; values <= 0 count
        as unset (`getJsonIntValue`).
        """
        entry = self.models.get(name, {}).get(version) or ModelVersionConfig(version)
        workers = self.default_workers_per_model or None
        return ModelVersionConfig(
            version=entry.version,
            default_version=entry.default_version,
            mar_name=entry.mar_name,
            min_workers=_positive(entry.min_workers) or workers,
            max_workers=_positive(entry.max_workers) or workers,
            batch_size=_positive(entry.batch_size) or self.default_batch_size,
            max_batch_delay=_positive(entry.max_batch_delay) or self.default_max_batch_delay,
            response_timeout=_positive(entry.response_timeout) or self.default_response_timeout,
            startup_timeout=_positive(entry.startup_timeout) or 120,
            other=entry.other,
        )

    def problems(self) -> list[str]:
        """One line per thing a reader should know: keys not acted on, addresses off this host."""
        lines = [f"unknown key {k}={v!r}: TorchServe 0.12 does not read it either"
                 for k, v in self.unknown.items()]  # fmt: skip
        lines += [f"key {k} is TorchServe's but handlerkit does not act on it"
                  for k in self.ignored]  # fmt: skip
        for name, versions in self.models.items():
            marked = [v for v, entry in versions.items() if entry.default_version]
            if len(versions) > 1 and marked:
                lines.append(
                    f"models= marks {name} {marked[0]} as defaultVersion, but TorchServe 0.12 "
                    "reads defaultVersion only from its snapshots: the version it loads first is "
                    f"the default; PUT /models/{name}/{marked[0]}/set-default changes it"
                )
        for name in ("inference_address", "management_address", "metrics_address"):
            address = getattr(self, name)
            if not address.loopback:
                lines.append(f"{name}={address} is not loopback: it would accept other machines")
        return lines


def _positive(value: int | None) -> int | None:
    return value if value is not None and value > 0 else None


# --------------------------------------------------------------------- Java properties


def parse_properties(text: str) -> dict[str, str]:
    """Read Java properties text as `java.util.Properties.load` does; a later key wins.

    Handles `key=value`, `key:value`, `key value`, `#`/`!` comments, `\\` line continuations
    (leading blanks of the next line dropped), and the escapes `\\t \\n \\r \\f \\uXXXX \\X`.
    """
    result: dict[str, str] = {}
    for line in _logical_lines(text):
        key, value = _split_key_value(line)
        result[_unescape(key)] = _unescape(value)
    return result


def _logical_lines(text: str) -> list[str]:
    lines, current = [], None
    for natural in re.split(r"\r\n|\r|\n", text):
        stripped = natural.lstrip(" \t\f")
        if current is None and (not stripped or stripped[0] in "#!"):
            continue  # blank and comment lines are never continued
        current = stripped if current is None else current + stripped
        trailing = len(current) - len(current.rstrip("\\"))
        if trailing % 2:  # an odd number of backslashes escapes the line end
            current = current[:-1]
        else:
            lines.append(current)
            current = None
    if current is not None:
        lines.append(current)
    return lines


def _split_key_value(line: str) -> tuple[str, str]:
    index, escaped = 0, False
    while index < len(line):
        char = line[index]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "=: \t\f":
            break
        index += 1
    key, rest = line[:index], line[index:].lstrip(" \t\f")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t\f")
    return key, rest


def _unescape(text: str) -> str:
    def replace(match: re.Match) -> str:
        code = match.group(1)
        if code.startswith("u"):
            if not re.fullmatch(r"u[0-9a-fA-F]{4}", code):
                raise ConfigError(f"malformed \\uxxxx escape in {text!r}")
            return chr(int(code[1:], 16))
        return {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(code, code)

    return re.sub(r"\\(u[0-9a-fA-F]{0,4}|.)", replace, text, flags=re.S)


# --------------------------------------------------------------------- reading a config


def read_config(
    path: str | os.PathLike | None = None,
    args: argparse.Namespace | Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    warn: bool = True,
) -> TorchServeConfig:
    """Build the settings a TorchServe started with this file, these flags and this env would use.

    Args:
        path: A config.properties file; overrides `args.ts_config`. None: TorchServe's choice
            (`$TS_CONFIG_FILE`, `--ts-config`, `./config.properties` when it exists).
        args: TorchServe's flags, parsed (`torchserve_parser().parse_args(...)`) or as a list.
        environ: The environment (default `os.environ`): `TS_CONFIG_FILE`, `$$NAME$$`, `TS_*`.
        warn: Emit one `ConfigWarning` listing `problems()` when there are any.

    Raises:
        ConfigError: A missing file, a malformed value, an unset `$$NAME$$` variable.
    """
    environ = os.environ if environ is None else environ
    if args is None or not isinstance(args, argparse.Namespace):
        args = torchserve_parser().parse_args(list(args or []))
    source = _config_file(path, args, environ)
    props = parse_properties(source.read_bytes().decode("latin-1")) if source else {}
    props = {key: _substitute(value, environ) for key, value in props.items()}
    props.update(_command_line(args))
    if props.get("enable_envvars_config", "false").lower() == "true":
        props.update(_environment(environ, props))
    config = _build(props)
    config.source, config.foreground = source, bool(args.foreground)
    config.no_config_snapshots = bool(args.no_config_snapshots)
    if warn and config.problems():
        where = source or "the command line"
        warnings.warn(f"{where}: " + "; ".join(config.problems()), ConfigWarning, stacklevel=2)
    return config


def _config_file(path, args, environ) -> Path | None:
    chosen = path or environ.get("TS_CONFIG_FILE") or args.ts_config
    if chosen is None:
        fallback = Path("config.properties")
        return fallback.resolve() if fallback.is_file() else None
    chosen = Path(chosen)
    if not chosen.is_file():
        raise ConfigError(f"--ts-config file not found: {chosen}")
    return chosen.resolve()


def _substitute(value: str, environ: Mapping[str, str]) -> str:
    def lookup(match: re.Match) -> str:
        name = match.group(1)
        if name not in environ:
            raise ConfigError(f"Invalid Environment Variable {name}: set it or edit the value")
        return environ[name]

    return re.sub(r"\$\$([^$]+[^$])\$\$", lookup, value)


def _command_line(args: argparse.Namespace) -> dict[str, str]:
    """The flags that ConfigManager lets override the file (ModelServer.Arguments)."""
    props = {}
    if args.model_store:
        props["model_store"] = args.model_store
    if args.models:
        props["load_models"] = ",".join(args.models)
    if args.enable_model_api:
        props["enable_model_api"] = "true"
    if args.disable_token_auth:
        props["disable_token_authorization"] = "true"
    return props


def _environment(environ: Mapping[str, str], props: Mapping[str, str]) -> dict[str, str]:
    allow_urls = props.get("use_env_allowed_urls", "false").lower() == "true"
    names = dict(_ENV_NAMES)
    if not allow_urls:
        names.pop("TS_ALLOWED_URLS", None)
    return {key: environ[name] for name, key in names.items() if name in environ}


def _build(props: Mapping[str, str]) -> TorchServeConfig:
    config = TorchServeConfig()
    for key, value in props.items():
        kind = _READ_KEYS.get(key)
        if kind is None:
            target = config.ignored if key in TORCHSERVE_KEYS_NOT_MIRRORED else config.unknown
            target[key] = value
        elif kind == "address":
            setattr(config, key, Address.parse(value, key.removesuffix("_address")))
        elif kind == "models":
            config.models = parse_models(value)
        else:
            setattr(config, key, _convert(key, kind, value))
    return config


def _convert(key: str, kind: str, value: str) -> Any:
    if kind == "int":
        try:
            return int(value.strip())
        except ValueError:
            raise ConfigError(f"{key}={value!r} is not a whole number") from None
    if kind == "bool":  # Java's Boolean.parseBoolean: only "true" (any case) is true
        return value.strip().lower() == "true"
    if kind == "path":
        return Path(value.strip()).expanduser()
    if kind == "load_models":
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if key == "service_envelope":  # unset or empty: TorchServe's own JSON/bytes envelope
        return value.strip() or None
    return value.strip()


def parse_models(text: str) -> dict[str, dict[str, ModelVersionConfig]]:
    """Read the `models=` JSON: `{"name": {"version": {"minWorkers": 1, ...}}}`."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        hint = "each line of a multi-line models= value but the last ends with '\\'"
        raise ConfigError(f"models= is not valid JSON ({error}): {hint}") from None
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ConfigError('models= must look like {"name": {"1.0": {"minWorkers": 1}}}')
    return {
        name: {str(version): _model_version(name, str(version), entry)
               for version, entry in versions.items()}
        for name, versions in raw.items()
    }  # fmt: skip


def _model_version(name: str, version: str, entry: Any) -> ModelVersionConfig:
    if not isinstance(entry, dict):
        raise ConfigError(f"models= {name} {version}: expected an object, got {entry!r}")
    known = {_MODEL_KEYS[k]: v for k, v in entry.items() if k in _MODEL_KEYS}
    other = {k: v for k, v in entry.items() if k not in _MODEL_KEYS}
    for key, value in known.items():
        wanted = bool if key == "default_version" else (str if key == "mar_name" else int)
        if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
            raise ConfigError(f"models= {name} {version}: {key} must be {wanted.__name__}")
    return ModelVersionConfig(version=version, other=other, **known)


# --------------------------------------------------------------------- torchserve's flags


def add_torchserve_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add `torchserve --start`'s flags (ts/arg_parser.py, 0.12) that settings come from."""
    parser.add_argument("--ts-config", dest="ts_config", help="config.properties to read")
    parser.add_argument("--model-store", dest="model_store", help="folder holding the .mar files")
    parser.add_argument("--models", nargs="+", metavar="[NAME=]MODEL.mar",
                        help="models to load at start; 'all' loads the whole store")  # fmt: skip
    parser.add_argument("--foreground", action="store_true", help="accepted, as torchserve's")
    parser.add_argument("--no-config-snapshots", "--ncs", dest="no_config_snapshots",
                        action="store_true", help="accepted; no snapshots are written")  # fmt: skip
    parser.add_argument("--disable-token-auth", "--dt", dest="disable_token_auth",
                        action="store_true", help="no token needed on the APIs")  # fmt: skip
    parser.add_argument("--enable-model-api", dest="enable_model_api", action="store_true",
                        help="allow registering and unregistering models")  # fmt: skip
    return parser


def torchserve_parser() -> argparse.ArgumentParser:
    """A parser that reads only TorchServe's flags (as `torchserve --start` takes them)."""
    return add_torchserve_flags(argparse.ArgumentParser(prog="torchserve", add_help=False))
