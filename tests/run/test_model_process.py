"""A model's process (what the LitServe and Ray Serve engines run the handler in): batches go in
and answers come out as in the engine's own process; a worker that dies answers its batch
TorchServe's 500 "Worker died." and the next batch finds a new one."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch

from handlerkit.run.model_process import ModelProcess
from handlerkit.serving import frontend
from handlerkit.serving.model_folder import open_model
from handlerkit.serving.versions import Versions

pytestmark = pytest.mark.engines

EXITER = """
import os
import signal
import time


def handle(data, context):
    if data is None:
        return None
    bodies = [bytes(row.get("body")).decode() for row in data]
    if "exit" in bodies:
        os._exit(3)  # the worker process dies, as with a segfault
    if "kill" in bodies:
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer ends it
    if "hang" in bodies:
        time.sleep(3600)
    return [f"{body} from {os.getpid()}" for body in bodies]
"""


@pytest.fixture
def model(tmp_path):
    (tmp_path / "exiter.py").write_text(EXITER)
    torch.save({}, tmp_path / "empty.pt")
    folder = open_model(tmp_path, "exiter", handler=str(tmp_path / "exiter.py"))
    process = ModelProcess("exiter", folder.path, batch_size=2, gpu_id=None, response_timeout=3)
    yield process
    process.close()
    folder.remove()


def requests(*bodies: str) -> list[frontend.RequestInput]:
    jobs = [
        frontend.admit(
            "/predictions/exiter",
            b.encode(),
            {"content-type": "application/octet-stream"},
            Versions([("exiter", "1.0")]),
        )
        for b in bodies
    ]
    return [job.request for job in jobs]


def test_a_batch_is_answered_in_the_models_own_process(model):
    answers = model.run(requests("a", "b"))
    assert [a.status for a in answers] == [200, 200]
    first, second = (a.text.split(" from ") for a in answers)
    assert (first[0], second[0]) == ("a", "b")
    assert first[1] == second[1] == str(model.process.pid)  # one handle call, in the child


def test_a_dead_worker_fails_its_batch_and_the_next_batch_gets_a_new_one(model):
    died = model.process.pid
    answers = model.run(requests("a", "exit"))
    expected = {"code": 500, "type": "InternalServerException", "message": "Worker died."}
    assert [(a.status, a.json()) for a in answers] == [(500, expected)] * 2
    assert answers[0].body.endswith(b"\n")  # TorchServe's error body, as every other one
    after = model.run(requests("c"))
    assert [a.status for a in after] == [200]
    assert after[0].text == f"c from {model.process.pid}" and model.process.pid != died


def test_closing_stops_the_models_process(model):
    model.run(requests("a"))
    model.close()
    assert not model.process.is_alive() and model.process.exitcode is not None
    with pytest.raises(OSError):
        model.pipe.send([])  # this end is closed too


DIED = {"type": "InternalServerException", "message": "Worker died."}


def test_a_worker_killed_by_sigkill_answers_507_as_torchserve(model):
    # TorchServe 0.12, measured: a worker ended by SIGKILL (exit value 137) answers 507.
    answers = model.run(requests("kill"))
    assert [(a.status, a.json()) for a in answers] == [(507, {"code": 507, **DIED})]
    assert [a.status for a in model.run(requests("c"))] == [200]


def test_a_hung_handler_gets_torchservers_timeout_answer_and_the_next_batch_is_served(model):
    # TorchServe 0.12, measured with responseTimeout=3: 500 "Worker died." after 3 s.
    hung = model.process.pid
    started = time.monotonic()
    answers = model.run(requests("a", "hang"))
    assert 3 <= time.monotonic() - started < 10
    assert [(a.status, a.json()) for a in answers] == [(500, {"code": 500, **DIED})] * 2
    assert not model.process.is_alive()  # killed, as TorchServe kills its worker
    after = model.run(requests("c"))
    assert [a.status for a in after] == [200] and model.process.pid != hung


def _replica(folder: str, body: str, pids) -> None:
    """A spawned stand-in for a Ray replica: its own process group (Ray kills a dead replica's
    group), a ModelProcess that owns `folder`, then a batch that hangs or nothing at all."""
    os.setpgrp()
    process = ModelProcess("exiter", Path(folder), 2, None, 600, leftover=Path(folder))
    pids.put(process.process.pid)
    if body:
        process.run(requests(body))
    time.sleep(600)


@pytest.mark.parametrize("body", ["hang", ""], ids=["busy", "idle"])
def test_a_killed_replicas_model_process_removes_its_folder_and_ends(tmp_path, body):
    (tmp_path / "exiter.py").write_text(EXITER)
    torch.save({}, tmp_path / "empty.pt")
    folder = open_model(tmp_path, "exiter", handler=str(tmp_path / "exiter.py")).temporary
    context = multiprocessing.get_context("spawn")
    pids = context.Queue()
    replica = context.Process(target=_replica, args=(str(folder), body, pids))
    replica.start()
    child = 0
    try:
        child = pids.get(timeout=120)
        time.sleep(1.0)  # the batch is in the handler
        os.killpg(replica.pid, signal.SIGKILL)  # as Ray ends a dead replica's process group
        deadline = time.monotonic() + 10
        while (folder.exists() or _running(child)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not folder.exists() and not _running(child)
    finally:
        replica.kill()
        replica.join()
        if _running(child):
            os.kill(child, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
