"""`OfflineServer` contains faults as TorchServe's worker process does: threads each get their own
answer, a handler that exits answers "Worker died." and the host keeps running, a model in its
own process (`isolate=True`) survives `os._exit` and a hung handler, and `close()` leaves the
host's process as it was."""

from __future__ import annotations

import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from handlerkit.offline import OfflineServer
from handlerkit.run.host_state import HostState

FAULTY = Path(__file__).parents[1] / "fixtures" / "handlers" / "faulty.py"
DIED = {"code": 500, "type": "InternalServerException", "message": "Worker died."}
BUGGY = """
def handle(data, context):
    if data is None:
        return None
    body = bytes(data[0].get("body")).decode()
    if body.startswith("fail"):
        raise ValueError(f"failed on {body}")
    return [body]
"""
CHANGER = """
import os, signal, sys
from PIL import Image
import torch

Image.MAX_IMAGE_PIXELS = 1
signal.signal(signal.SIGTERM, signal.SIG_IGN)
os.environ["HANDLER_WAS_HERE"] = "1"
sys.path.append("/nowhere")
torch.set_num_threads(1)


def handle(data, context):
    return None if data is None else ["ok"] * len(data)
"""


def folder_with(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / f"{name}.py").write_text(text)
    return folder


def test_threads_each_get_their_own_answer_and_error(tmp_path):
    folder = folder_with(tmp_path, "buggy", BUGGY)
    with OfflineServer({"buggy": folder}, handler="buggy.py") as server:
        bodies = [f"fail {i}" if i % 2 else f"ok {i}" for i in range(300)]
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda b: (b, server.predict("buggy", b.encode())), bodies))
    for body, answer in answers:
        if body.startswith("fail"):
            assert answer.status == 503 and answer.error is not None  # "Prediction failed"
            assert f"failed on {body}" in answer.error.message, (body, answer.error)
        else:
            assert (answer.status, answer.text, answer.error) == (200, body, None)


@pytest.mark.parametrize("fault", [b"sysexit"])
def test_a_handler_that_exits_answers_worker_died_and_the_server_goes_on(tmp_path, fault):
    folder = folder_with(tmp_path, "faulty", FAULTY.read_text())
    with OfflineServer({"faulty": folder}, handler="faulty.py") as server:
        answer = server.predict("faulty", fault)
        assert (answer.status, answer.json()) == (500, DIED)
        assert server.predict("faulty", b"fine").status == 200


def test_a_handler_raising_keyboard_interrupt_is_contained(tmp_path):
    text = "def handle(data, context):\n    if data:\n        raise KeyboardInterrupt\n"
    folder = folder_with(tmp_path, "ctrlc", text)
    with OfflineServer({"ctrlc": folder}, handler="ctrlc.py") as server:
        answer = server.predict("ctrlc", b"x")
        assert (answer.status, answer.json()) == (500, DIED)


def test_an_import_that_exits_is_a_failed_load_not_a_dead_host(tmp_path):
    folder = folder_with(tmp_path, "quitter", "import sys\nsys.exit(3)\n")
    with OfflineServer({"quitter": folder}, handler="quitter.py") as server:
        assert server.predict("quitter", b"x").status == 503
        assert "SystemExit" in server.load_error("quitter").message


def test_an_isolated_model_survives_os_exit_and_a_hung_handler(tmp_path):
    folder = folder_with(tmp_path, "faulty", FAULTY.read_text())
    models = {"faulty": folder}
    with OfflineServer(models, handler="faulty.py", isolate=True, response_timeout=2) as server:
        assert (
            server.predict("faulty", b"fine").text
            == f"fine from {server.worker('faulty').process.pid}"
        )
        assert server.predict("faulty", b"exit").json() == DIED
        assert server.predict("faulty", b"fine").status == 200
        started = time.monotonic()
        answer = server.predict("faulty", b"hang")
        assert (answer.status, answer.json()) == (500, DIED)
        assert 2 <= time.monotonic() - started < 10
        assert server.predict("faulty", b"fine").status == 200
        child = server.worker("faulty").process
    assert not child.is_alive()


def test_close_puts_back_what_the_handler_changed_in_this_process(tmp_path):
    import torch
    from PIL import Image

    before = HostState.save()
    folder = folder_with(tmp_path, "changer", CHANGER)
    with OfflineServer({"changer": folder}, handler="changer.py") as server:
        assert server.predict("changer", b"x").status == 200
        assert os.environ.get("HANDLER_WAS_HERE") == "1"
    assert Image.MAX_IMAGE_PIXELS == before.pixels
    assert signal.getsignal(signal.SIGTERM) == before.handlers[signal.SIGTERM]
    assert "HANDLER_WAS_HERE" not in os.environ
    assert sys.path == before.path
    assert torch.get_num_threads() == before.threads
