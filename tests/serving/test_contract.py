"""A handler that breaks TorchServe's rules for answers is told which rule, where, and the fix.

TorchServe answers each of these with one line ("Invalid model predict output", ...) or a dead
worker; `OfflineServer`'s `answer.error` and `python -m handlerkit run` name what the handler
returned, what TorchServe requires, what it does, and how to fix it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from handlerkit import samples
from handlerkit.__main__ import main
from handlerkit.offline import OfflineServer
from handlerkit.serving import contract

HANDLERS = Path(__file__).parents[1] / "fixtures" / "handlers"

# kind -> (TorchServe's status and message, words the explanation must hold)
REJECTED = {
    "none": (503, "Invalid model predict output", ["returned None", "missing `return`"]),
    "dict": (503, "Invalid model predict output", ["a dict with keys 'digit'", "[answer]"]),
    "tuple": (503, "Invalid model predict output", ["a tuple of 1", "list(...)"]),
    "generator": (503, "Invalid model predict output", ["a generator", "list(...)"]),
    "tensor": (503, "Invalid model predict output", ["a Tensor of shape (1, 10)"]),
    "numpy": (503, "Invalid model predict output", ["a numpy ndarray of shape (1, 10)"]),
    "spread": (503, "number of batch response mismatched", ["a list of 10", "[values]"]),
    "empty": (503, "number of batch response mismatched", ["a list of 0", "one answer per row"]),
    "tensor_inside": (503, "Unsupported model output data type.", ['answer[0]["p"]', ".tolist()"]),
    "numpy_inside": (
        503,
        "Unsupported model output data type.",
        ['a numpy int64 (7) at answer[0]["digit"]'],
    ),
    "set_inside": (503, "Unsupported model output data type.", ["a set of 1", "sorted(...)"]),
    "bytes_inside": (503, "Unsupported model output data type.", ["a bytes at", "base64"]),
    "header_int": (500, "Worker died.", ["response header 'X-Count': 3 (int)", "str(value)"]),
    "status_str": (500, "Worker died.", ["response status '400' (str)", "as an int"]),
}
MISLEADING = {
    "tensor_row": "torch.save bytes",
    "nan": 'NaN or infinity at answer[0]["p"]',
    "repr": "Python's repr, not JSON",
}


@pytest.fixture(scope="module")
def breaker_mar(tmp_path_factory):
    """The contract breaker as a `.mar`, as a user runs a production model."""
    from handlerkit.serve import archive

    store = tmp_path_factory.mktemp("store")
    return archive(samples.MNIST_DIR, store, "breaker", handler=HANDLERS / "contract_breaker.py")


@pytest.fixture(scope="module")
def server():
    handlers = {
        "breaker": HANDLERS / "contract_breaker.py",
        "dict": HANDLERS / "dict_postprocess.py",
    }
    models = {name: samples.MNIST_DIR for name in handlers}
    with OfflineServer(models, handler={k: str(v) for k, v in handlers.items()}) as server:
        yield server


@pytest.mark.parametrize("kind", REJECTED)
def test_a_broken_rule_gets_torchserves_answer_and_our_explanation(server, kind):
    status, message, words = REJECTED[kind]
    answer = server.predict("breaker", kind.encode())
    assert (answer.status, answer.json()["message"]) == (status, message)
    explanation = str(answer.error)
    said = "handle set" if kind in ("header_int", "status_str") else "handle returned"
    for part in (said, "TorchServe requires", "TorchServe does", "fix:", *words):
        assert part in explanation, f"{part!r} missing from:\n{explanation}"


def test_the_stage_is_postprocess_when_a_class_handler_returned_it(server):
    answer = server.predict("dict", samples.digit_png(0))
    assert answer.status == 503
    assert answer.error.stage == "postprocess"
    assert "postprocess returned a dict with keys 'digit'" in answer.error.message


@pytest.mark.parametrize("kind", MISLEADING)
def test_a_200_a_client_cannot_read_is_warned_about(server, kind):
    answer = server.predict("breaker", kind.encode())
    assert answer.status == 200 and answer.error is None
    warnings = [str(w) for w in server.worker("breaker").last_warnings]
    assert any(MISLEADING[kind] in w for w in warnings), warnings


def test_a_good_answer_is_neither_an_error_nor_a_warning(server):
    answer = server.predict("breaker", b"fine")
    assert (answer.status, answer.error, server.worker("breaker").last_warnings) == (200, None, [])


def test_ts_own_traceback_for_an_unserializable_answer_stays_out_of_the_output(server, capfd):
    server.predict("breaker", b"tensor_inside")
    out, err = capfd.readouterr()
    assert "Unable to serialize model output" not in out + err


def test_the_server_keeps_answering_after_a_worker_that_would_die(server):
    assert server.predict("breaker", b"header_int").status == 500
    assert server.predict("breaker", b"fine").status == 200


def test_status_set_for_the_first_row_only_is_named():
    class Processor:
        def __init__(self, status):
            self.status = status

        def get_response_status_code(self):
            return self.status

        def get_response_headers(self):
            return {}

    class Context:
        request_processor = [Processor(400), Processor(200), Processor(200)]

    answers = [{"digit": 1}, {"digit": 2}, {"error": "not an image"}]
    found = contract.misleading(answers, 3, Context())
    assert found and "answer[2] with status 200" in str(found[0]) and "idx" in found[0].fix


@pytest.mark.parametrize("kind", REJECTED)
def test_run_prints_stage_returned_required_and_fix_in_30_lines(
    breaker_mar, tmp_path, capsys, kind
):
    request = tmp_path / f"{kind}.txt"
    request.write_bytes(kind.encode())
    code = main(["run", str(breaker_mar), str(request)])
    out = capsys.readouterr().out
    assert code == 1
    assert "-- the handler failed in handle:" in out
    for part in ("TorchServe requires", "TorchServe does", "fix:"):
        assert part in out
    explanation = out.split("-- the handler failed in")[1].split("-- the last values")[0]
    assert len(explanation.strip().splitlines()) <= 30


def test_check_says_a_handler_that_fails_on_every_request_does_not_work(capsys):
    handler = str(HANDLERS / "mapping_without_labels.py")
    code = main(["check", str(samples.MNIST_DIR), "--handler", handler])
    out = capsys.readouterr().out
    assert code == 1 and "loads as TorchServe would" not in out
    assert "loads, but fails on a digit PNG got 503 (postprocess: TypeError" in out
    assert "a photo JPEG got 503 (inference: RuntimeError" in out
    assert "self.mapping, which is None: no index_to_name.json" in out


def test_check_passes_a_handler_that_answers_a_sample():
    from handlerkit.serving.check import check

    problems, worker = check(samples.MNIST_DIR)
    worker.close()
    assert not [p for p in problems if p.level == "error"], problems


@pytest.mark.serve
@pytest.mark.parametrize("kind", ["header_int", "status_str"])
def test_a_worker_that_dies_writing_the_reply_answers_as_torchserve(server, real_torchserve, kind):
    """TorchServe 0.12's worker process dies on these; its frontend answers 500 'Worker died.'."""
    from tests.fixtures.torchserve_battery import send

    real = send(real_torchserve, "POST", "/predictions/breaker", kind.encode())
    offline = server.predict("breaker", kind.encode())
    assert (offline.status, offline.body) == real[:2]
    deadline = time.monotonic() + 90  # TorchServe restarts its worker; leave it serving
    while send(real_torchserve, "POST", "/predictions/breaker", b"fine")[0] != 200:
        assert time.monotonic() < deadline, "TorchServe did not restart the breaker's worker"
        time.sleep(1)


@pytest.mark.parametrize("kind", REJECTED)
def test_run_trace_draws_a_picture_whatever_the_handler_returned(
    breaker_mar, tmp_path, capsys, kind
):
    request, picture = tmp_path / f"{kind}.txt", tmp_path / f"{kind}.png"
    request.write_bytes(kind.encode())
    args = ["run", str(breaker_mar), str(request), "--trace"]
    assert main([*args, str(picture)]) == 1
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "TorchServe requires" in capsys.readouterr().out
