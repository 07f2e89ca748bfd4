"""`serve --engine torchserve` keeps TorchServe 0.12's defaults: token authorization on, the
model API (registration over HTTP) off, and it announces every port it opens. It serves the
model folders the other engines serve (a handler with no weights file, say)."""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path

import pytest

from handlerkit.run.child import EngineServer
from tests.fixtures.torchserve_battery import send

pytestmark = [pytest.mark.serve, pytest.mark.engines]

FAULTY = Path(__file__).parents[1] / "fixtures" / "handlers" / "faulty.py"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faulty")
    (folder / "faulty.py").write_text(FAULTY.read_text())
    with EngineServer({"faulty": folder}, "torchserve", handler="faulty.py", token_auth=True) as s:
        yield s


def announced(server, what: str) -> str:
    return re.search(rf"{what}\s+(\S+)", server.output()).group(1)


def test_inference_needs_the_token_it_announces(guarded):
    status, body, _ = send(guarded, "POST", "/predictions/faulty", b"fine")
    assert status == 400 and b"token" in body.lower()  # TorchServe 0.12's refusal
    headers = {"Authorization": f"Bearer {guarded.token}"}
    status, body, _ = send(guarded, "POST", "/predictions/faulty", b"fine", headers)
    assert status == 200 and body.startswith(b"fine from")  # a folder with no weights file


def test_every_port_is_announced_and_the_model_api_is_off(guarded, tmp_path):
    management = announced(guarded, "management")
    assert "model API off" in guarded.output() and "token in" in guarded.output()
    assert announced(guarded, "metrics").startswith("http://127.0.0.1:")
    assert re.search(r"gRPC\s+127\.0\.0\.1:\d+ \(inference, management on \d+\)", guarded.output())
    keys = re.search(r"token in (\S+)\)?;", guarded.output()).group(1)
    key = json.loads(Path(keys).read_text())["management"]["key"]

    class Management:  # `send` takes a server with a URL
        url = management

    query = urllib.parse.urlencode({"url": f"file://{tmp_path}/x.mar", "model_name": "x"})
    auth = {"Authorization": f"Bearer {key}"}
    status, body, _ = send(Management, "POST", f"/models?{query}", b"", auth)
    assert status == 405 and b"MethodNotAllowedException" in body  # registration is off
    assert send(Management, "GET", "/models", b"", auth)[0] == 200
