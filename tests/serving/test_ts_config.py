"""`handlerkit.serving.ts_config`: a user's config.properties and flags, read as TorchServe 0.12.

The files under tests/reference_api/config_properties/ are TorchServe's own examples (source
named in each) and the three-model case of issue 31; `java.util.Properties` is the reference for
the syntax when Java is installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

from handlerkit.serving.ts_config import (
    Address,
    ConfigError,
    ConfigWarning,
    parse_properties,
    read_config,
    torchserve_parser,
)

FILES = Path(__file__).parents[1] / "reference_api" / "config_properties"

TRICKY = r"""# a comment \
not_continued=1
   ! bang comment
key\ with\ spaces : caf\u00e9 \
      continued \\
colon:value
spaced   value with  inner  spaces
empty=
tab\tkey=a\=b\:c
dup=first
dup=second
trailing=keeps trailing blanks   ?
models={\
  "m": {"1.0": {"minWorkers": 1}}\
}
""".replace("?\n", "\n")


DESCRIBED = ("minWorkers", "maxWorkers", "batchSize", "maxBatchDelay", "responseTimeout")


def read(name: str, *flags: str, env: dict | None = None, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        return read_config(FILES / name, list(flags), environ=env or {}, **kwargs)


def test_properties_syntax():
    props = parse_properties(TRICKY)
    assert props == {
        "not_continued": "1",
        "key with spaces": "café continued \\",
        "colon": "value",
        "spaced": "value with  inner  spaces",
        "empty": "",
        "tab\tkey": "a=b:c",
        "dup": "second",
        "trailing": "keeps trailing blanks   ",
        "models": '{"m": {"1.0": {"minWorkers": 1}}}',
    }


@pytest.mark.skipif(shutil.which("java") is None, reason="needs Java for java.util.Properties")
def test_properties_syntax_matches_java(tmp_path):
    """The same text through java.util.Properties.load gives the same keys and values."""
    source = tmp_path / "Dump.java"
    source.write_text(
        "import java.util.*; import java.io.*;\n"
        "public class Dump { public static void main(String[] a) throws Exception {\n"
        "  Properties p = new Properties(); p.load(new FileInputStream(a[0]));\n"
        "  for (String k : new TreeSet<>(p.stringPropertyNames())) {\n"
        "    System.out.println(k.chars().mapToObj(Integer::toString)"
        '.reduce((x, y) -> x + "," + y).orElse("") + " " +'
        " p.getProperty(k).chars().mapToObj(Integer::toString)"
        '.reduce((x, y) -> x + "," + y).orElse("")); } } }\n'
    )
    files = [tmp_path / "tricky.properties", *sorted(FILES.glob("*.properties"))]
    files[0].write_bytes(TRICKY.encode("latin-1"))
    for path in files:
        out = subprocess.run(
            ["java", str(source), str(path)], capture_output=True, text=True, check=True
        ).stdout

        def decode(codes: str) -> str:
            return "".join(chr(int(c)) for c in codes.split(",") if c)

        java = dict(
            (decode(k), decode(v)) for k, _, v in (line.partition(" ") for line in out.splitlines())
        )
        assert parse_properties(path.read_bytes().decode("latin-1")) == java, path.name


def test_defaults_are_torchserve_012s():
    config = read_config(None, [], environ={}, warn=False)
    assert config.inference_address == Address("http", "127.0.0.1", 8080)
    assert config.management_address.port == 8081 and config.metrics_address.port == 8082
    assert config.enable_model_api is False  # model API off by default since 0.11
    assert config.disable_token_authorization is False  # token authorization on
    assert config.metrics_mode == "log" and config.service_envelope is None
    assert (config.max_request_size, config.default_response_timeout) == (6553500, 120)
    assert config.default_workers_per_model == 0
    entry = config.model_version("anything", "1.0")
    assert (entry.batch_size, entry.max_batch_delay, entry.response_timeout) == (1, 100, 120)


def test_issue_31_three_models_one_in_two_versions():
    config = read("three_models.properties")
    assert config.model_store == Path("model_store")
    assert config.startup_models() == [
        ("mnist", "mnist.mar"),
        (None, "mnist_v2.mar"),
        ("densenet", "densenet.mar"),
        ("efficientnet", "efficientnet.mar"),
    ]
    assert sorted(config.models) == ["densenet", "efficientnet", "mnist"]
    assert sorted(config.models["mnist"]) == ["1.0", "2.0"]
    new = config.model_version("mnist", "2.0")
    assert (new.default_version, new.mar_name, new.max_workers) == (True, "mnist_v2.mar", 1)
    assert new.batch_size == 1 and new.response_timeout == 60  # server defaults
    # TorchServe reads defaultVersion only from snapshots: the reader says so (once)
    assert any("defaultVersion" in line for line in config.problems())
    old = config.model_version("mnist", "1.0")
    assert (old.batch_size, old.max_batch_delay, old.response_timeout) == (4, 50, 30)
    assert config.model_version("densenet", "1.0").batch_size == 8
    # minWorkers 0 counts as unset (getJsonIntValue): default_workers_per_model applies
    assert config.model_version("efficientnet", "1.0").min_workers == 2
    assert config.enable_model_api and config.disable_token_authorization
    assert config.metrics_mode == "prometheus" and config.max_request_size == 10485760
    assert config.ignored == {"job_queue_size": "100"} and config.unknown == {}


def test_torchserves_own_test_config():
    config = read("frontend_test.properties")
    assert config.inference_address == Address("https", "127.0.0.1", 8443)
    assert config.management_address.scheme == "https"
    assert config.startup_models() == [(None, "noop.mar")]
    noop = config.model_version("noop", "1.11")
    assert (noop.version, noop.batch_size, noop.min_workers, noop.max_workers) == ("1.11", 4, 1, 1)
    assert config.max_request_size == 2047093252
    assert {"async_logging", "private_key_file", "enable_envvars_config"} <= set(config.ignored)
    assert config.unknown == {}


def test_docker_config_binds_every_interface_and_is_flagged():
    with pytest.warns(ConfigWarning, match="inference_address=http://0.0.0.0:8080 is not loopback"):
        config = read_config(FILES / "docker.properties", [], environ={})
    assert config.inference_address.host == "0.0.0.0" and not config.inference_address.loopback
    assert config.model_store == Path("/home/model-server/model-store")


def test_unknown_keys_are_reported_once():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = read_config(FILES / "kserve.properties", [], environ={})
    assert config.unknown == {"NUM_WORKERS": "1"}
    assert "model_snapshot" in config.ignored and config.load_models == ("all",)
    assert config.startup_models() == [(None, "all")]
    assert len(caught) == 1 and "unknown key NUM_WORKERS='1'" in str(caught[0].message)
    assert "0.0.0.0" in str(caught[0].message)  # the kserve sample binds every interface


def test_batch_size_at_top_level_is_unknown_as_in_torchserve(tmp_path):
    """TorchServe has no global batch_size key: batch size is per model (or per register call)."""
    path = tmp_path / "config.properties"
    path.write_text("batch_size=8\nmax_batch_delay=5\n")
    config = read_config(path, [], environ={}, warn=False)
    assert config.unknown == {"batch_size": "8", "max_batch_delay": "5"}
    assert config.model_version("m", "1.0").batch_size == 1


def test_dollar_variables_are_substituted():
    env = {
        "SAGEMAKER_MODEL_STORE": "/opt/ml/model",
        "SAGEMAKER_BIND_TO_PORT": "8080",
        "SAGEMAKER_RESPONSE_TIMEOUT": "60",
        "SAGEMAKER_NUM_MODEL_WORKERS": "3",
        "SAGEMAKER_HANDLER": "h.py:handle",
        "SAGEMAKER_MAX_RESPONSE_SIZE": "100",
        "SAGEMAKER_MAX_REQUEST_SIZE": "200",
    }
    config = read("sagemaker.properties", env=env)
    assert config.model_store == Path("/opt/ml/model")
    assert config.inference_address.port == config.management_address.port == 8080
    assert (config.default_workers_per_model, config.max_request_size) == (3, 200)
    assert config.default_response_timeout == 60
    with pytest.raises(ConfigError, match="SAGEMAKER_MODEL_STORE"):
        read("sagemaker.properties")


def test_command_line_overrides_the_file(tmp_path):
    path = tmp_path / "config.properties"
    path.write_text("model_store=from_file\nload_models=a.mar\nenable_model_api=false\n")
    flags = ["--model-store", "from_flag", "--models", "x=x.mar", "y.mar", "--enable-model-api",
             "--disable-token-auth", "--ncs", "--foreground"]  # fmt: skip
    config = read_config(path, flags, environ={}, warn=False)
    assert config.model_store == Path("from_flag")
    assert config.startup_models() == [("x", "x.mar"), (None, "y.mar")]
    assert config.enable_model_api and config.disable_token_authorization
    assert config.no_config_snapshots and config.foreground
    # --ts-config names the file when no path is given; $TS_CONFIG_FILE wins over it
    by_flag = read_config(None, ["--ts-config", str(path)], environ={})
    assert by_flag.model_store == Path("from_file")
    other = tmp_path / "other.properties"
    other.write_text("model_store=from_env_file\n")
    env = {"TS_CONFIG_FILE": str(other)}
    assert read_config(None, ["--ts-config", str(path)], environ=env).model_store.name == (
        "from_env_file"
    )


def test_environment_overrides_only_when_enabled(tmp_path):
    path = tmp_path / "config.properties"
    env = {"TS_DEFAULT_WORKERS_PER_MODEL": "7", "TS_MODEL_STORE": "env_store",
           "TS_ALLOWED_URLS": "file://.*", "TS_TOKEN_EXPIRATION_TIME_MIN": "5"}  # fmt: skip
    path.write_text("default_workers_per_model=2\n")
    assert read_config(path, [], environ=env).default_workers_per_model == 2
    path.write_text("default_workers_per_model=2\nenable_envvars_config=true\n")
    config = read_config(path, ["--model-store", "flag_store"], environ=env, warn=False)
    assert config.default_workers_per_model == 7
    assert config.model_store == Path("env_store")  # env is applied after the flags
    assert config.allowed_urls == "file://.*|http(s)?://.*"  # needs use_env_allowed_urls
    assert config.ignored["token_expiration_min"] == "5"
    path.write_text("enable_envvars_config=true\nuse_env_allowed_urls=true\n")
    assert read_config(path, [], environ=env, warn=False).allowed_urls == "file://.*"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("inference_address=127.0.0.1:8080", "invalid address"),
        ("inference_address=unix:/tmp/ts.sock", "invalid address"),
        ("management_address=http://127.0.0.1:70000", "invalid port"),
        ("default_workers_per_model=two", "not a whole number"),
        ('models={"m": ', "not valid JSON"),
        ('models={"m": {"1.0": {"batchSize": "4"}}}', "batch_size must be int"),
        ('models={"m": ["1.0"]}', "must look like"),
    ],
)
def test_bad_values_name_the_problem(tmp_path, text, message):
    path = tmp_path / "config.properties"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        read_config(path, [], environ={}, warn=False)


def test_addresses_without_port_take_torchserves_defaults():
    assert Address.parse("http://localhost", "inference").port == 80
    assert Address.parse("https://localhost", "management").port == 8444
    assert Address.parse("HTTPS://127.0.0.1", "metrics") == Address("https", "127.0.0.1", 8445)
    assert Address.parse("http://localhost:1", "inference").loopback
    assert not Address.parse("http://10.0.0.5:8080", "inference").loopback


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="--ts-config file not found"):
        read_config(None, ["--ts-config", str(tmp_path / "nope.properties")], environ={})


def test_parser_accepts_torchserves_flags():
    args = torchserve_parser().parse_args(
        ["--ts-config", "c.properties", "--dt", "--ncs", "--models", "all"]
    )
    assert args.ts_config == "c.properties" and args.disable_token_auth and args.models == ["all"]
    assert json.loads(json.dumps(vars(args)))  # plain values only


@pytest.mark.serve
def test_a_real_torchserve_reads_the_three_model_file_the_same(tmp_path):
    """Issue 31's file, unchanged but for ports and store, on TorchServe 0.12: same settings.

    Every version's workers, batch size, batch delay and response timeout as `model_version`
    resolves them; the default version is the one loaded first, whatever `defaultVersion` says.
    """
    import urllib.request

    from handlerkit import samples
    from handlerkit.serve import archive

    store = tmp_path / "model_store"
    for name, version, mar in [("mnist", "1.0", "mnist"), ("mnist", "2.0", "mnist_v2"),
                               ("densenet", "1.0", "densenet"),
                               ("efficientnet", "1.0", "efficientnet")]:  # fmt: skip
        built = archive(samples.MNIST_DIR, tmp_path / mar, name, version=version)
        store.mkdir(exist_ok=True)
        built.rename(store / f"{mar}.mar")
    config = read("three_models.properties")
    lines = (FILES / "three_models.properties").read_text().splitlines()
    kept = [line for line in lines if not line.startswith(("inference_", "management_",
                                                           "metrics_", "model_store"))]  # fmt: skip
    with _torchserve_with(store, kept) as server:
        for name, versions in config.models.items():
            for version in versions:
                url = f"{server.management_url}/models/{name}/{version}"
                described = json.loads(urllib.request.urlopen(url, timeout=60).read())[0]
                mine = config.model_version(name, version)
                theirs = {key: described[key] for key in DESCRIBED}
                assert theirs == {
                    "minWorkers": mine.min_workers,
                    "maxWorkers": mine.max_workers,
                    "batchSize": mine.batch_size,
                    "maxBatchDelay": mine.max_batch_delay,
                    "responseTimeout": mine.response_timeout,
                }, (name, version)
            default = json.loads(
                urllib.request.urlopen(f"{server.management_url}/models/{name}", timeout=60).read()
            )[0]["modelVersion"]
            # defaultVersion is not read at start: the first version loaded is the default, and
            # mnist.mar (1.0) is loaded before mnist_v2.mar (2.0, marked defaultVersion)
            assert default == "1.0", name


def _torchserve_with(store: Path, lines: list[str]):
    """A real TorchServe whose config.properties ends with `lines` (see tests/reference_api)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "reference_api"))
    from api_replay import real_torchserve

    return real_torchserve(store, dict(line.split("=", 1) for line in _logical(lines)))


def _logical(lines: list[str]) -> list[str]:
    text = "\n".join(line for line in lines if line and not line.startswith("#"))
    return [f"{key}={value}" for key, value in parse_properties(text).items()]
