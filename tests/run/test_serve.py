"""Tests for handlerkit.serve against a real TorchServe (Java) on 127.0.0.1.

The model folder is built here: a tiny linear MNIST-shaped model and an ImageClassifier handler.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from handlerkit.loading import import_one_class
from handlerkit.run.torchserve import server as serve_server
from handlerkit.serve import ServeError, TorchServe, archive, measure

pytestmark = pytest.mark.serve

MODEL_PY = """
import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(28 * 28, 10)

    def forward(self, x):
        return self.linear(x.flatten(1))
"""

HANDLER_PY = """
import logging

from torchvision import transforms
from ts.torch_handler.image_classifier import ImageClassifier

logger = logging.getLogger(__name__)


class TinyHandler(ImageClassifier):
    image_processing = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
    )

    def preprocess(self, data):
        logger.info("handlerkit-batch-size %d", len(data))
        return super().preprocess(data)

    def postprocess(self, data):
        return data.argmax(1).tolist()
"""

BAD_HANDLER_PY = """
from ts.torch_handler.image_classifier import ImageClassifier


class BrokenHandler(ImageClassifier):
    def initialize(self, context):
        raise {error}("handlerkit-test: the weights are cursed")
"""

BURST = 240


def _write_folder(folder: Path, handler_source: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(MODEL_PY)
    (folder / "handler.py").write_text(handler_source)
    namespace: dict = {}
    exec(MODEL_PY, namespace)  # noqa: S102 - our own constant source
    torch.manual_seed(0)
    torch.save(namespace["TinyNet"]().state_dict(), folder / "model.pt")
    return folder


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _connects(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def _in_process_answers(folder: Path, payloads: list[bytes]) -> list:
    """Answer each payload with the same handler class, in this process, via MockContext."""
    from ts.torch_handler.unit_tests.test_utils.mock_context import MockContext

    sys.path.insert(0, str(folder))
    sys.modules.pop("model", None)
    try:
        context = MockContext(
            model_pt_file="model.pt", model_dir=str(folder), model_file="model.py", gpu_id=None,
            model_name="tiny",
        )  # fmt: skip
        handler = import_one_class(folder / "handler.py")()
        handler.initialize(context)
        return [handler.handle([{"data": data}], context)[0] for data in payloads]
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("model", None)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    return {
        "tiny": _write_folder(root / "tiny", HANDLER_PY),
        "bad": _write_folder(root / "bad", BAD_HANDLER_PY.format(error="ValueError")),
        "bad_rt": _write_folder(root / "bad_rt", BAD_HANDLER_PY.format(error="RuntimeError")),
        "store": root / "model_store",
    }


@pytest.fixture(scope="module")
def store(folders):
    archive(folders["tiny"], folders["store"], "tiny")
    archive(folders["bad"], folders["store"], "bad")
    archive(folders["bad_rt"], folders["store"], "bad_rt")
    return folders["store"]


@pytest.fixture(scope="module")
def payloads():
    rng = np.random.default_rng(0)
    return [_png(rng.integers(0, 256, size=(28, 28), dtype=np.uint8)) for _ in range(BURST)]


@pytest.fixture(scope="module")
def expected(folders, payloads):
    return _in_process_answers(folders["tiny"], payloads)


@pytest.fixture(scope="module")
def server(store):
    with TorchServe(store, {"tiny": "tiny.mar"}) as running:
        yield running
    assert not any(_connects(port) for port in running.ports.values())


def test_archive_builds_a_mar_with_model_handler_and_weights(store):
    with zipfile.ZipFile(store / "tiny.mar") as mar:
        names = set(mar.namelist())
        manifest = json.loads(mar.read("MAR-INF/MANIFEST.json"))
    assert {"model.py", "handler.py", "model.pt"} <= names
    assert manifest["model"]["modelName"] == "tiny"
    assert manifest["model"]["handler"] == "handler.py"
    assert manifest["model"]["serializedFile"] == "model.pt"


def test_archive_explains_a_missing_weights_file(folders, tmp_path):
    folder = tmp_path / "no_weights"
    shutil.copytree(folders["tiny"], folder)
    (folder / "model.pt").unlink()
    with pytest.raises(ServeError, match=r"no weights file \(\*\.pt or \*\.pth\)"):
        archive(folder, tmp_path / "store", "tiny")


def test_in_process_reference_is_not_trivial(expected):
    assert len(set(expected)) > 1, "the tiny model answers one class only; pick other seeds"


def test_served_answers_equal_in_process_answers(server, payloads, expected):
    answers = [server.predict("tiny", data) for data in payloads[:30]]
    assert [a.status for a in answers] == [200] * 30
    assert [a.json() for a in answers] == expected[:30]


def test_logs_are_in_log_dir_and_readable(server):
    assert (server.log_dir / "ts_log.log").is_file()
    assert "== model_log.log ==" in server.logs(tail=5)


@pytest.mark.parametrize("name, error", [("bad", "ValueError"), ("bad_rt", "RuntimeError")])
def test_failing_initialize_raises_with_the_handler_traceback(
    server, payloads, expected, name, error
):
    with pytest.raises(ServeError) as info:
        server.register(name, f"{name}.mar")
    message = str(info.value)
    assert "Traceback (most recent call last)" in message
    assert "handler.py" in message and "in initialize" in message
    assert f"{error}: handlerkit-test: the weights are cursed" in message
    assert "500 - Unknown exception" not in message  # TorchServe's follow-up, not the cause
    with pytest.raises(ServeError, match="not registered"):
        server.describe(name)
    assert server.predict("tiny", payloads[0]).json() == expected[0]


def test_burst_with_batch_size_8_loses_nothing_and_batches(server, payloads, expected):
    model = server.register("tiny", "tiny.mar", batch_size=8, max_batch_delay=200)
    assert model["batchSize"] == 8
    answers = server.predict_many("tiny", payloads, concurrency=len(payloads))
    assert len(answers) == len(payloads) >= 200
    assert [a.status for a in answers] == [200] * len(payloads)
    assert [a.json() for a in answers] == expected
    sizes = [int(n) for n in re.findall(r"handlerkit-batch-size (\d+)", server.logs(10_000))]
    assert max(sizes) > 1 and max(sizes) <= 8


def test_measure_reports_latency_and_throughput(server, payloads):
    result = measure(server, "tiny", payloads[:16], concurrency=16, sequential=3)
    assert result["ok"] == result["requests"] == 16
    assert result["p50_ms"] > 0 and result["throughput_rps"] > 0


def test_a_body_over_the_request_limit_gets_torchserve_413_answer(server, payloads, expected):
    # TorchServe answers 413 before reading a body over max_request_size (6.5 MB by default)
    answer = server.predict("tiny", b"\0" * 20_000_000)
    assert answer.status == 413
    assert server.predict("tiny", payloads[0]).json() == expected[0]


def test_register_passes_zero_batch_size_and_workers_on_to_torchserve(server):
    model = server.register("tiny_zero", "tiny.mar", batch_size=0, workers=0)
    try:  # TorchServe takes both: no worker yet (scale later), batch size as given
        assert (model["batchSize"], model["minWorkers"], model["workers"]) == (0, 0, [])
    finally:
        server.unregister("tiny_zero")


def test_a_taken_port_is_named_in_the_error(store):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServeError, match=rf"management port {port} .* already in use"):
            TorchServe(store, ports={"management": port}).start()


def test_a_port_taken_while_starting_is_named_in_the_error(store, monkeypatch):
    choose = serve_server.choose_ports
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setattr(
            serve_server, "choose_ports", lambda fixed: {**choose({}), "metrics": port}
        )
        with pytest.raises(ServeError, match=rf"exited during start.*metrics port {port}"):
            TorchServe(store).start()


def test_missing_java_is_explained(store, monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)
    with pytest.raises(ServeError, match=r"Java 17\+: apt-get install openjdk-17-jre-headless"):
        TorchServe(store).start()


def test_server_stops_when_the_body_raises_and_writes_nothing_to_cwd(
    folders, payloads, expected, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    server = TorchServe.for_folder(folders["tiny"], "tiny")
    with pytest.raises(RuntimeError, match="boom"):
        with server:
            ports, config = dict(server.ports), str(server._workdir / "config.properties")
            answer = server.predict("tiny", payloads[1])
            assert (answer.status, answer.json()) == (200, expected[1])
            assert all(_connects(port) for port in ports.values())
            raise RuntimeError("boom")
    assert not any(_connects(port) for port in ports.values())
    assert _processes_mentioning(config) == []
    assert not server.running
    assert list(tmp_path.iterdir()) == []


def test_a_port_offered_again_never_collides_with_a_fixed_one(monkeypatch):
    """The system may offer a fixed port (not held yet) as a free one: TorchServe would then bind
    two endpoints to it and stop at start (seen once in notebook 07's --engine torchserve)."""
    from handlerkit.run.torchserve import process

    monkeypatch.setattr(process, "free_ports", lambda n: [8080, 5001, 5002, 5003, 5004, 5005][:n])
    monkeypatch.setattr(process, "port_in_use", lambda port: False)
    ports = process.choose_ports({"inference": 8080})
    assert ports["inference"] == 8080 and len(set(ports.values())) == len(ports), ports
