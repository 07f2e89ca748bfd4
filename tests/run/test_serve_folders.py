"""The repository's model folders, served by a real TorchServe, answer like their own handler here.

data/mnist is archived with the plain torch-model-archiver CLI, as a learner would; DenseNet-121 is
served with a handler.py that subclasses handlerkit.ImageClassifier. One server for the module.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from handlerkit import samples
from handlerkit.loading import import_one_class
from handlerkit.run.launcher import group_members
from handlerkit.serve import TorchServe, archive

pytestmark = pytest.mark.serve

HELD_OUT = range(0, 5000, 5)  # digits the model never trained on (handlerkit.course.train)
BURST = list(range(0, 5000, 20))  # 250 held-out digits, 25 of each class
EXACT = HELD_OUT[::25]  # 40 digits, 4 of each class, answered one at a time
MIXED = HELD_OUT[1::125][:7]  # 7 digits of different classes, batched with a bad upload
USED = {*BURST, *EXACT, *MIXED}
BATCH_SIZE, BATCH_DELAY_MS = 8, 50
# Batching changes the order of float sums inside the model: the probabilities of a request
# answered in a batch of 8 may differ from its answer alone in the last bits (2e-7 seen here).
FLOAT_NOISE = 1e-6
DENSENET_HANDLER = '''"""DenseNet-121 served by handlerkit's ImageClassifier."""

from handlerkit import ImageClassifier


class Handler(ImageClassifier):
    pass
'''
# Each `handle` call reports HandlerTime with the ids of the requests in its batch; the same id
# comes back to the client in the x-request-id header.
HANDLER_TIME = re.compile(
    r"HandlerTime\.Milliseconds:[^|]*\|#ModelName:(?P<model>[^,|]+).*?"
    r"\|#hostname:[^,]*,\d+,(?P<ids>.*?), pattern"
)


# --------------------------------------------------------------------------- helpers


def _in_process(mar: Path, dest: Path):
    """Unpack a .mar and initialize its own handler here, on the files the worker gets."""
    with zipfile.ZipFile(mar) as archive_file:
        archive_file.extractall(dest)
    return _initialized(dest)


def _initialized(folder: Path):
    """The folder's handler class, initialized the way the worker initializes it."""
    gpu_id = 0 if torch.cuda.is_available() else None  # TorchServe gives its worker GPU 0
    handler, context = import_one_class(folder / "handler.py").for_folder(folder, gpu_id)
    return lambda payload: handler.handle([{"data": payload}], context)[0]


def _use_batching(server: TorchServe, batch_size: int) -> None:
    """Re-register mnist with `batch_size` unless it already has it."""
    delay = BATCH_DELAY_MS if batch_size > 1 else 100
    model = server.describe("mnist")
    if (model["batchSize"], model["maxBatchDelay"]) != (batch_size, delay):
        server.register("mnist", "mnist.mar", batch_size=batch_size, max_batch_delay=delay)


def _log_size(server: TorchServe) -> int:
    return (server.log_dir / "ts_log.log").stat().st_size


def _handle_calls(server: TorchServe, offset: int, requests: int) -> list[list[str]]:
    """Request ids per mnist `handle` call logged after `offset`, once `requests` are logged."""
    deadline = time.monotonic() + 10  # the worker's metric lines reach the log a bit later
    while True:
        with open(server.log_dir / "ts_log.log", "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        calls = [m["ids"].split(",") for m in HANDLER_TIME.finditer(text) if m["model"] == "mnist"]
        if sum(map(len, calls)) >= requests or time.monotonic() > deadline:
            return calls
        time.sleep(0.1)


def _post(server: TorchServe, data: bytes) -> tuple[int, str, str, object]:
    """POST one digit; return status, reason phrase, x-request-id and the parsed body."""
    connection = http.client.HTTPConnection("127.0.0.1", server.ports["inference"], timeout=60)
    try:
        connection.request("POST", "/predictions/mnist", body=data)
        response = connection.getresponse()
        body = json.loads(response.read())
        return response.status, response.reason, response.getheader("x-request-id"), body
    finally:
        connection.close()


def _close(served: dict, expected: dict) -> bool:
    """Same digit, and each probability within float noise."""
    return served["digit"] == expected["digit"] and all(
        abs(p - q) <= FLOAT_NOISE
        for p, q in zip(served["probabilities"], expected["probabilities"], strict=True)
    )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def densenet_dir(tmp_path_factory) -> Path:
    folder, _ = samples.densenet_folder(tmp_path_factory.mktemp("served") / "densenet121")
    (folder / "handler.py").write_text(DENSENET_HANDLER)
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory, densenet_dir) -> Path:
    """mnist.mar from the plain CLI, exactly as a learner types it; densenet.mar via archive()."""
    store = tmp_path_factory.mktemp("model_store")
    command = [
        str(Path(sys.executable).with_name("torch-model-archiver")),
        "--model-name", "mnist", "--version", "1.0",
        "--model-file", "data/mnist/model.py",
        "--serialized-file", "data/mnist/mnist_cnn.pt",
        "--handler", "data/mnist/handler.py",
        "--export-path", str(store),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=samples.MNIST_DIR.parents[1], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout
    archive(densenet_dir, store, "densenet")
    return store


@pytest.fixture(scope="module")
def server(store):
    running = TorchServe(store, {"mnist": "mnist.mar", "densenet": "densenet.mar"})
    with running:
        group = running._process.pid  # TorchServe's launcher leads the group: java + workers
        yield running
    assert not running.running
    assert group_members(group) == set(), "a TorchServe process outlived the server"
    for port in running.ports.values():
        with pytest.raises(OSError):
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()


@pytest.fixture(scope="module")
def digits() -> dict[int, bytes]:
    return {i: samples.digit_png(i) for i in USED}


@pytest.fixture(scope="module")
def expected_digits(store, tmp_path_factory, digits) -> dict[int, dict]:
    """Each held-out digit answered alone by the handler of the unpacked mnist.mar."""
    answer_here = _in_process(store / "mnist.mar", tmp_path_factory.mktemp("mnist_unpacked"))
    return {i: answer_here(png) for i, png in digits.items()}


# --------------------------------------------------------------------------- tests


def test_the_cli_packs_the_mnist_folder_as_it_is(store):
    with zipfile.ZipFile(store / "mnist.mar") as mar:
        names = set(mar.namelist())
        manifest = json.loads(mar.read("MAR-INF/MANIFEST.json"))["model"]
        weights = mar.read("mnist_cnn.pt")
    assert names == {"MAR-INF/MANIFEST.json", "model.py", "mnist_cnn.pt", "handler.py"}
    assert manifest["modelName"] == "mnist"
    assert (manifest["modelFile"], manifest["handler"]) == ("model.py", "handler.py")
    assert manifest["serializedFile"] == "mnist_cnn.pt"
    assert weights == (samples.MNIST_DIR / "mnist_cnn.pt").read_bytes()


def test_served_mnist_equals_in_process_exactly_one_request_at_a_time(
    server, digits, expected_digits
):
    _use_batching(server, 1)
    answers = [server.predict("mnist", digits[i]) for i in EXACT]
    assert [a.status for a in answers] == [200] * len(EXACT)
    assert [a.json() for a in answers] == [expected_digits[i] for i in EXACT]


def test_served_densenet_equals_in_process_exactly(server, store, tmp_path):
    answer_here = _in_process(store / "densenet.mar", tmp_path)
    for name, jpeg in samples.photos().items():
        answer = server.predict("densenet", jpeg)
        expected = answer_here(jpeg)
        assert answer.status == 200, (name, answer.text)
        assert list(answer.json().items()) == list(expected.items()), name  # labels in top-k order


def test_a_batched_burst_loses_no_request_and_matches_in_process(server, digits, expected_digits):
    _use_batching(server, BATCH_SIZE)
    offset = _log_size(server)
    answers = server.predict_many("mnist", [digits[i] for i in BURST], concurrency=64)
    assert len(answers) == len(BURST) >= 200
    assert [a.status for a in answers] == [200] * len(BURST), {a.text for a in answers if not a.ok}
    assert [a.json()["digit"] for a in answers] == [expected_digits[i]["digit"] for i in BURST]
    assert all(_close(a.json(), expected_digits[i]) for a, i in zip(answers, BURST, strict=True))
    calls = _handle_calls(server, offset, len(BURST))
    sizes = [len(ids) for ids in calls]
    assert sum(sizes) == len(BURST) and len({i for ids in calls for i in ids}) == len(BURST)
    assert max(sizes) <= BATCH_SIZE and len(calls) < len(BURST) / 2, sizes  # really batched


def test_a_bad_upload_gets_its_own_400_while_its_batch_mates_succeed(
    server, digits, expected_digits
):
    _use_batching(server, BATCH_SIZE)
    payloads = [digits[i] for i in MIXED] + [b"not an image"]
    for _attempt in range(3):  # concurrent requests share a batch unless the machine stalls
        offset = _log_size(server)
        with ThreadPoolExecutor(len(payloads)) as pool:
            answers = list(pool.map(lambda data: _post(server, data), payloads))
        calls = _handle_calls(server, offset, len(payloads))
        if len(calls) == 1:
            break
    assert [sorted(ids) for ids in calls] == [sorted(a[2] for a in answers)], "not one batch"
    status, reason, _, body = answers[-1]
    assert status == 400
    assert body == {"error": reason}  # the handler's message is both body and reason phrase
    assert reason.startswith("not an image: Pillow cannot identify 12 bytes")
    assert [a[0] for a in answers[:-1]] == [200] * len(MIXED)
    assert all(_close(a[3], expected_digits[i]) for a, i in zip(answers[:-1], MIXED, strict=True))
