"""Several versions of one model side by side, as TorchServe serves them: the first registered is
the default, `/predictions/{model}/{version}` reaches that version, an unknown version is 404.

The echo model names the version that answered (its manifest's). The same requests against a real
TorchServe and the engines: tests/run/test_differential.py (echo in two versions on every runner).
"""

from __future__ import annotations

import json

import pytest
import torch

from handlerkit.offline import OfflineServer
from handlerkit.run.models import parse_models
from handlerkit.serving.versions import Versions
from tests.fixtures.torchserve_battery import HANDLERS


@pytest.fixture(scope="module")
def echo_mars(tmp_path_factory):
    """echo.mar (version 1.0) and echo_v2.mar (2.0) of the echo handler."""
    from handlerkit.serve import archive

    folder, store = tmp_path_factory.mktemp("echo"), tmp_path_factory.mktemp("store")
    torch.save({}, folder / "empty.pt")
    handler = str(HANDLERS / "echo_handler.py")
    v2 = archive(folder, store, "echo", handler=handler, version="2.0").rename(
        store / "echo_v2.mar"
    )  # before 1.0: both are written as echo.mar
    return archive(folder, store, "echo", handler=handler), v2


def version_answered(server, path: str) -> str:
    answer = server.request("POST", path, b"{}", {"Content-Type": "application/json"})
    assert answer.status == 200, answer.body
    return json.loads(answer.body)["version"]


def test_the_first_version_is_the_default_and_each_version_answers_at_its_path(echo_mars):
    v1, v2 = echo_mars
    with OfflineServer({"echo": [v1, v2]}) as server:
        assert version_answered(server, "/predictions/echo") == "1.0"
        assert version_answered(server, "/predictions/echo/1.0") == "1.0"
        assert version_answered(server, "/predictions/echo/2.0") == "2.0"
        assert version_answered(server, "/explanations/echo/2.0") == "2.0"
        missing = server.request("POST", "/predictions/echo/3.0", b"{}")
        assert missing.status == 404
        assert json.loads(missing.body) == {
            "code": 404,
            "type": "ModelVersionNotFoundException",
            "message": "Model version: 3.0 does not exist for model: echo",
        }
        assert server.served.of("echo") == ["1.0", "2.0"]
        assert server.handler("echo", "2.0") is not server.handler("echo")
    with OfflineServer({"echo": [v2, v1]}) as server:  # the order given decides the default
        assert version_answered(server, "/predictions/echo") == "2.0"


def test_the_same_version_twice_is_refused_by_name(echo_mars):
    v1, _ = echo_mars
    with pytest.raises(ValueError, match="'echo' version 1.0 is given twice"):
        OfflineServer({"echo": [v1, v1]}).start()
    with pytest.raises(ValueError, match="'echo' version 1.0 is given twice"):
        parse_models([f"echo={v1}", f"echo={v1}"])


def test_the_command_line_serves_a_name_given_twice_as_two_versions(echo_mars):
    v1, v2 = echo_mars
    specs = parse_models([f"echo={v2}", f"echo={v1}", "mnist=data/mnist"])
    assert [spec.key for spec in specs] == [("echo", "2.0"), ("echo", "1.0"), ("mnist", "1.0")]


def test_versions_resolve_as_torchserves_model_manager():
    served = Versions([("m", "1.0"), ("m", "2.0"), ("n", "0.1")])
    assert served.find("m", None) == ("m", "1.0")
    assert served.find("m", "2.0") == ("m", "2.0")
    assert served.find("m", "3.0") is None
    assert served.find("n", None) == ("n", "0.1")
    assert "m" in served and "x" not in served
    assert served.keys() == [("m", "1.0"), ("m", "2.0"), ("n", "0.1")]


@pytest.mark.serve
def test_the_torchserve_engine_loads_both_versions_at_start(echo_mars):
    """`serve --engine torchserve m=a.mar m=b.mar`: TorchServe's own load_models path."""
    from handlerkit.run.child import EngineServer
    from handlerkit.run.compare import send
    from handlerkit.run.generated_requests import Request

    v1, v2 = echo_mars
    with EngineServer({"echo": [v1, v2]}, "torchserve") as server:
        for path, version in (("", "1.0"), ("/1.0", "1.0"), ("/2.0", "2.0")):
            request = Request("POST", f"/predictions/echo{path}", (), b"x", "raw")
            reply = send(server.url, request)
            assert reply.status == 200 and json.loads(reply.body)["version"] == version
        missing = send(server.url, Request("POST", "/predictions/echo/3.0", (), b"x", "raw"))
        assert missing.status == 404
