"""The `serve` command line without starting a server: parsing, errors, and what it imports."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from handlerkit import samples
from handlerkit.__main__ import main
from handlerkit.run.child import EngineServer
from handlerkit.run.models import parse_models, per_model


def test_models_are_named_and_batched_per_model(tmp_path):
    mar = tmp_path / "dn.mar"
    mar.write_bytes(b"zip")
    specs = parse_models([f"mnist={samples.MNIST_DIR}", f"dn={mar}"], "image_classifier", {"dn": 4})
    assert [(s.name, s.batch_size, s.max_batch_delay) for s in specs] == [
        ("mnist", 1, 100),
        ("dn", 4, 100),
    ]
    assert specs[0].handler == "image_classifier" and specs[1].handler is None  # folders only


@pytest.mark.parametrize(
    "items, settings, message",
    [
        (["mnist"], {}, "is not NAME=MODEL"),
        (["mnist=/no/such/folder"], {}, "does not exist"),
        ([f"a={samples.MNIST_DIR}", f"a={samples.MNIST_DIR}"], {}, "version 1.0 is given twice"),
        ([f"a={samples.MNIST_DIR}"], {"batch_size": {"b": 2}}, "not served here"),
        ([f"a={samples.MNIST_DIR}"], {"batch_size": 0}, ">= 1"),
    ],
)
def test_a_wrong_model_list_is_refused_with_the_fix(items, settings, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        parse_models(items, **settings)


def test_per_model_values_from_the_command_line():
    assert per_model(None, 1) == 1
    assert per_model(["8"], 1) == 8
    assert per_model(["a=8", "b=2"], 1) == {"a": 8, "b": 2}
    with pytest.raises(ValueError, match="one number for every model"):
        per_model(["8", "a=2"], 1)


def test_the_command_exits_2_naming_what_is_missing(capsys):
    assert main(["serve", "mnist=/no/such/folder", "--engine", "litserve"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("engine", ["torchserve", "litserve", "ray"])
def test_the_command_exits_2_when_its_port_is_taken(capsys, engine):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        command = ["serve", f"mnist={samples.MNIST_DIR}", "--engine", engine, "--port", port]
        assert main(command) == 2
    assert f"cannot listen on 127.0.0.1:{port} (Address already in use)" in capsys.readouterr().err


def test_the_engine_server_runs_the_command_it_shows():
    server = EngineServer({"m": samples.MNIST_DIR}, "ray", batch_size={"m": 8}, replicas=2)
    server.port = 8080
    assert server.command()[1:] == [
        "-m", "handlerkit", "serve", f"m={samples.MNIST_DIR}", "--engine", "ray",
        "--port", "8080", "--host", "127.0.0.1", "--batch-size", "m=8",
        "--max-batch-delay", "100", "--replicas", "2",
    ]  # fmt: skip


def test_the_core_never_imports_an_engine():
    code = (
        "import sys, handlerkit, handlerkit.offline, handlerkit.run.child\n"
        "import handlerkit.run.serve_cli\n"
        "print(sorted({'litserve', 'ray', 'fastapi'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
